"""bench/cosim_speed.py: the Markdown page (the Verilator run is the bench) and the committed result."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))  # cosim_speed imports bench/cycles.py
_SPEC = importlib.util.spec_from_file_location("bench_cosim_speed", ROOT / "bench" / "cosim_speed.py")
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)


def _report(**row_extra) -> dict:
    row = {
        "lanes": 16,
        "samples": 10000,
        "mismatches": 0,
        "cycles_per_inference": 4063.7,
        "simulated_cycles_per_second": 95977.5,
        "images_per_second": 23.6,
        "projected_test_set_minutes": 7.06,
        "wall_seconds_with_builds": 600.0,
        **row_extra,
    }
    return {
        "model": "m",
        "synapses": 5,
        "data": "d",
        "command": "c",
        "date": "today",
        "jobs": 2,
        "note": "quiet",
        "test_images": 10000,
        "reference_seconds_whole_test_set": 2.54,
        "reference_accuracy": 0.9813,
        "results": [row],
    }


def test_markdown_table() -> None:
    page = bench.markdown(_report(rtl_accuracy=0.9813))
    assert "| 16 | cocotb | 10000 | 0 | 98.13% | 4064 | 9.6e+04 | - | 23.6 | 7.1 | - | 10.0 |" in page
    assert "quiet" in page and "2.54 s, accuracy 98.13%" in page and "Load average" not in page
    assert "| 16 | cocotb | 10000 | 0 | - | 4064 |" in bench.markdown(_report())


def test_markdown_shows_the_mode_per_process_speed_build_and_load() -> None:
    report = _report(mode="binary", process_cycles_per_second=[301234.0, 298765.0], build_seconds=48.0)
    report.update(load_before=[0.5, 1.25, 2.0], load_after=[2.1, 1.9, 2.0], cpus=2)
    page = bench.markdown(report)
    assert (
        "| 16 | binary | 10000 | 0 | - | 4064 | 9.6e+04 | 3.01e+05, 2.99e+05 | 23.6 | 7.1 | 0.8 | 10.0 |"
        in page
    )
    assert "before the run 0.50, 1.25, 2.00, after it 2.10, 1.90, 2.00 (2 CPUs)" in page


def test_previous_flags_drop_the_split_and_the_make_variable(monkeypatch) -> None:
    from esl_hw.sim import build

    current = (build.VERILATOR_BINARY_ARGS, build.VERILATOR_BINARY_MAKE_ARGS)
    monkeypatch.setattr(build, "VERILATOR_BINARY_ARGS", current[0])
    monkeypatch.setattr(build, "VERILATOR_BINARY_MAKE_ARGS", current[1])
    bench.use_previous_flags()
    assert "--output-split-cfuncs" not in build.VERILATOR_BINARY_ARGS and not build.VERILATOR_BINARY_MAKE_ARGS
    assert len(build.VERILATOR_BINARY_ARGS) == len(current[0]) - 2 and "-O3" in build.VERILATOR_BINARY_ARGS
    page = bench.markdown({**_report(), "flags": "previous"})
    assert "flags of before 2026-12-06" in page and "flags of before" not in bench.markdown(_report())


def test_load_average_is_three_figures() -> None:
    assert len(bench.load_average()) == 3


def test_committed_result_is_the_whole_test_set_bit_exact() -> None:
    report = json.loads((ROOT / "docs" / "benchmarks" / "cosim_speed.json").read_text())
    row = report["results"][0]
    assert row["samples"] == report["test_images"] == 10000
    assert row["mismatches"] == 0 and row["predictions_match_reference"]
    assert bench.markdown(report) == (ROOT / "docs" / "benchmarks" / "cosim_speed.md").read_text()
