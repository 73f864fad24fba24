"""The FPGA benchmark script: its random paper-shaped models and its Markdown table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parent.parent / "bench" / "synth.py"
_SPEC = importlib.util.spec_from_file_location("bench_synth", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)


def test_random_paper_model_has_the_shape_and_density() -> None:
    model = bench.random_paper_model(0.1, 4, hidden=100)
    assert [layer.n_out for layer in model.layers] == [100, 10] and model.n_inputs == 784
    assert model.density == pytest.approx(0.1, abs=0.01)
    assert all(layer.w_bits == 4 for layer in model.layers) and model.metadata["kind"] == "random"


def test_markdown_lists_rows_and_prior_art() -> None:
    result = {
        "row": {"name": "x", "label": "random 784-800-10", "accuracy": None},
        "device": "LFE5U-85F",
        "lanes": 4,
        "utilisation": {"luts": {"used": 5000}, "bram": {"used": 80}},
        "fmax_mhz": 60.5,
        "cycles_per_inference": 2500.0,
        "latency_us": 41.3,
        "energy_j": None,
        "memories_in_block_ram": True,
        "status": "ok",
        "cycles_source": "cycle floor",
    }
    text = bench.markdown([result])
    assert (
        "| random 784-800-10 | - (random) | LFE5U-85F | 4 | 5000 | - | 80 | - | 60.5 | 2500 | 41.3 |" in text
    )
    assert "Spiker+" in text and "780" in text and "6,358 LUT" in text


def test_notes_judge_the_targets_from_the_rows() -> None:
    def row(lanes: int, fmax: float, latency: float) -> dict:
        return {
            "row": {"name": f"p{lanes}", "label": "random 784-800-10", "model": ["paper", 0.1, 8]},
            "device": "LFE5U-85F", "lanes": lanes, "fmax_mhz": fmax, "latency_us": latency, "memories": [],
        }  # fmt: skip

    slow = bench.notes([row(1, 104.0, 900.0), row(8, 99.0, 90.0)])
    assert any("784-800-10 at >= 100 MHz and <= 100 µs per inference: not met" in line for line in slow)
    assert any("99.0 to 104.0 MHz over 2 rows (1 at or above 100 MHz)" in line for line in slow)
    fast = bench.notes([row(1, 104.0, 900.0), row(8, 101.0, 90.0)])
    assert any(": met (best: random 784-800-10, 8 lanes, 101.0 MHz, 90.0 µs)" in line for line in fast)
