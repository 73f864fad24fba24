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
from esl_hw.app.report_schema import undocumented
from esl_hw.artifact_io import save_model
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


def test_a_model_no_setting_fits_is_refused_by_name_before_any_work(tmp_path: Path) -> None:
    from esl_hw.fpga.synth import DoesNotFit

    model_dir = Path(__file__).resolve().parent.parent / "bench" / "models" / "mnist_d0.05"  # 8-bit: 5 SPRAM
    args = _synth_args(model_dir, tmp_path / "out", target="ice40-up5k", lanes=None)
    with pytest.raises(
        DoesNotFit,
        match=r"^\S*mnist_d0\.05: model 784-800-10 .* does not fit iCE40UP5K: it needs 5 of 4 SPRAM",
    ):
        app_fpga.run_synth(args)
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
    out, err = capsys.readouterr()
    assert "Fmax (MHz)" in out and "latency (µs)" in out
    chosen = "1 lane, synapses in block RAM, rewiring unit out, streaming on, lane FIFO 32, spike FIFO 16, "
    chosen += "spike-mask FIFO one step"
    assert f"esl-hw synth: settings (chosen for the target): {chosen}" in out
    text = (tmp_path / "out" / "report.md").read_text()
    assert "icarus co-simulation, mean of 2 random images" in text and "rewiring unit left out" in text
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["rewiring"] is False and undocumented("synth", report) == []
    assert report["streaming"] is True and "streamed inferences on" in text
    assert report["settings"]["chosen"] == chosen and report["cycles_per_inference"] > 0
    assert report["provenance"]["command_line"] == ["esl-hw"]  # a Namespace without argv: no arguments
    assert "## Provenance" in text and "| `fmax_mhz` |" in text
    # progress on stderr: the co-simulation's build and run, each tool with its time
    for stage in ("build: icarus", "cosim: icarus 2/2 images", "yosys done in", "nextpnr-ecp5 done in"):
        assert stage in err, err
    assert (tmp_path / "out" / "yosys.log").stat().st_size > 10_000, "the full Yosys log"


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


def test_sample_images_are_the_test_images_of_data_whatever_their_size(tmp_path: Path) -> None:
    from data_support import tiny_splits, write_npz_dataset

    from esl_hw.datasets import load_embedded

    splits = tiny_splits(np.random.default_rng(5), shape=(8, 8), classes=3, train=20, test=10)
    data = write_npz_dataset(tmp_path / "data", splits)
    model = random_model(np.random.default_rng(4), (64, 12, 3))
    images, where = app_fpga.sample_images(model, 4, data)
    assert np.array_equal(images, splits["test"][0][:4].reshape(4, 64)) and where == f"test images ({data})"
    with pytest.raises(EslError, match=r"images have 64 pixels \(8x8\), the model has 40 inputs"):
        app_fpga.sample_images(random_model(np.random.default_rng(4), (40, 12, 4)), 4, data)
    mnist = random_model(np.random.default_rng(4), (784, 12, 10))
    images, where = app_fpga.sample_images(mnist, 2)  # without --data: the embedded MNIST subset
    assert np.array_equal(images, load_embedded().test.images[:2]) and "embedded" in where


class _Stop(Exception):
    """Ends a command once the images it co-simulates are seen."""


def test_synth_cosimulates_the_test_images_of_data(tmp_path: Path, monkeypatch) -> None:
    from data_support import tiny_splits, write_npz_dataset

    import esl_hw.sim

    splits = tiny_splits(np.random.default_rng(5), shape=(8, 8), classes=3, train=20, test=10)
    data = write_npz_dataset(tmp_path / "data", splits)
    model_dir = save_model(random_model(np.random.default_rng(4), (64, 12, 3)), tmp_path / "model")
    seen = []

    def run_cosim(model, images, **options):
        seen.append(images)
        raise _Stop

    monkeypatch.setattr(esl_hw.sim, "run_cosim", run_cosim)
    with pytest.raises(_Stop):
        app_fpga.run_synth(_synth_args(model_dir, tmp_path / "synth", samples=3, data=data))
    assert len(seen) == 1 and np.array_equal(seen[0], splits["test"][0][:3].reshape(3, 64))
    assert not (tmp_path / "synth").exists()


def test_run_writes_its_report_with_provenance(model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from test_fpga_driver import FakeDevice

    from esl_hw.artifact_io import load_model
    from esl_hw.fpga import driver

    monkeypatch.setattr(driver, "open_serial", lambda port, baud: FakeDevice(load_model(model_dir), depth=8))
    argv = ["run", str(model_dir), "--port", "/dev/fake", "--samples", "2", "--out", str(tmp_path / "out")]
    args = argparse.Namespace(model=model_dir, port="/dev/fake", baud=115200, samples=2, data=None,
                              timeout=5.0, load_synapses=False, out=tmp_path / "out", force=False,
                              argv=argv)  # fmt: skip
    assert app_fpga.run_run(args) == 0
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    assert undocumented("run", report) == [] and report["samples"] == 2 and report["mismatches"] == 0
    assert report["port"] == "/dev/fake" and report["images"] == "random images"
    assert report["provenance"]["command_line"] == ["esl-hw", *argv]
    assert "| `mismatches` | 0 | images |" in (tmp_path / "out" / "run.md").read_text()


def test_bitstream_report_gets_provenance_even_when_the_top_does_not_fit(
    model_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    from esl_hw.fpga import boards
    from esl_hw.fpga.synth import DoesNotFit

    def build(model, board, out_dir, **options):
        (Path(out_dir) / "board.json").write_text(json.dumps({"board": board, "clock_mhz": 12.0}))
        raise DoesNotFit("board top does not fit")

    monkeypatch.setattr(boards, "build_bitstream", build)
    args = argparse.Namespace(model=model_dir, board="icebreaker", out=tmp_path / "b", force=False,
                              baud=115200, lanes=1, no_rewiring=True, argv=["bitstream", "M"])  # fmt: skip
    with pytest.raises(DoesNotFit):
        app_fpga.run_bitstream(args)
    report = json.loads((tmp_path / "b" / "board.json").read_text())
    assert report["provenance"]["command_line"] == ["esl-hw", "bitstream", "M"]
    assert "| `clock_mhz` | 12 | MHz |" in (tmp_path / "b" / "board.md").read_text()


def test_bitstream_passes_the_clock_options_and_keeps_a_top_that_misses_its_clock(
    model_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    from esl_hw.app.cli import build_parser
    from esl_hw.fpga import boards
    from esl_hw.fpga.synth import TimingFailure

    seen = {}

    def build(model, board, out_dir, **options):
        seen.update(options)
        (Path(out_dir) / "board.json").write_text(json.dumps({"board": board, "clock_mhz": 34.5}))
        raise TimingFailure("timing not met on icebreaker")

    monkeypatch.setattr(boards, "build_bitstream", build)
    argv = ["bitstream", str(model_dir), "--board", "icebreaker", "--freq", "35", "--core-report",
            str(tmp_path / "synth"), "--out", str(tmp_path / "b")]  # fmt: skip
    args = build_parser().parse_args(argv)
    with pytest.raises(TimingFailure):
        app_fpga.run_bitstream(args)
    assert seen["freq_mhz"] == 35 and seen["core_report"] == tmp_path / "synth"
    assert seen["allow_timing_failure"] is False
    assert json.loads((tmp_path / "b" / "board.json").read_text())["clock_mhz"] == 34.5  # kept
