"""CLI entry points of the FPGA flow: argument handling and their errors (exit 2 in the CLI)."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import random_model

from esl_hw.app import fpga as app_fpga
from esl_hw.artifact import save_model
from esl_hw.errors import EslError
from esl_hw.fpga.tools import available


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    model = random_model(np.random.default_rng(4), (40, 12, 4), timesteps=4)
    return save_model(model, tmp_path / "model")


def _synth_args(model_dir: Path, out: Path, **changes) -> argparse.Namespace:
    values = dict(model=model_dir, target="ecp5-25k", out=out, freq=None, lanes=1, force=False,
                  allow_timing_failure=False, samples=0, simulator="verilator", data=None,
                  no_rewiring=False, synapses="auto", lane_fifo_depth=None)  # fmt: skip
    values.update(changes)
    return argparse.Namespace(**values)


def test_unknown_target_fails_before_any_work(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(EslError, match="unknown FPGA target 'ice40-hx8k'"):
        app_fpga.run_synth(_synth_args(model_dir, tmp_path / "out", target="ice40-hx8k"))
    assert not (tmp_path / "out").exists()


def test_spram_on_a_target_without_it_fails_before_any_work(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(EslError, match="LFE5U-25F has no SPRAM|ecp5-25k has no SPRAM"):
        app_fpga.run_synth(_synth_args(model_dir, tmp_path / "out", synapses="spram"))
    with pytest.raises(EslError, match="fifo_depth must be an integer >= 2, got 1"):
        app_fpga.run_synth(_synth_args(model_dir, tmp_path / "out", lane_fifo_depth=1))
    assert not (tmp_path / "out").exists()


def test_existing_output_needs_force(model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("")
    with pytest.raises(EslError, match="pass --force"):
        app_fpga.run_synth(_synth_args(model_dir, tmp_path / "out"))


@pytest.mark.skipif(
    not (available("yosys") and available("nextpnr-ecp5")), reason="yowasp tools not installed"
)
@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog not installed")
def test_synth_with_cycles_from_cosimulation(model_dir: Path, tmp_path: Path, capsys) -> None:
    args = _synth_args(model_dir, tmp_path / "out", samples=2, simulator="icarus", freq=20, no_rewiring=True)
    assert app_fpga.run_synth(args) == 0
    out = capsys.readouterr().out
    assert "Fmax (MHz)" in out and "latency (µs)" in out
    text = (tmp_path / "out" / "report.md").read_text()
    assert "icarus co-simulation, mean of 2 random images" in text and "rewiring unit left out" in text
    assert json.loads((tmp_path / "out" / "report.json").read_text())["rewiring"] is False


def test_absent_serial_port_is_a_clear_error(model_dir: Path) -> None:
    args = argparse.Namespace(model=model_dir, port="/dev/esl-hw-absent", baud=115200, samples=1, data=None,
                              timeout=1.0, out=None)  # fmt: skip
    with pytest.raises(EslError, match="cannot open serial port '/dev/esl-hw-absent'"):
        app_fpga.run_run(args)


def test_unknown_board(model_dir: Path, tmp_path: Path) -> None:
    args = argparse.Namespace(
        model=model_dir, board="de10", out=tmp_path / "b", force=False, baud=115200, lanes=1
    )
    with pytest.raises(EslError, match="unknown board 'de10'"):
        app_fpga.run_bitstream(args)


def test_sample_images() -> None:
    model = random_model(np.random.default_rng(4), (40, 12, 4))
    images, where = app_fpga.sample_images(model, 3)
    assert images.shape == (3, 40) and images.dtype == np.uint8 and where == "random images"
