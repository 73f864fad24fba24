"""bench/cycles.py: the paper-shaped model and the Markdown table (the Verilator run is the bench)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_PATH = Path(__file__).resolve().parent.parent / "bench" / "cycles.py"
_SPEC = importlib.util.spec_from_file_location("bench_cycles", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)
markdown, paper_shaped_model = bench.markdown, bench.paper_shaped_model


def test_paper_shaped_model() -> None:
    model = paper_shaped_model()
    assert [model.n_inputs, *(layer.n_out for layer in model.layers)] == [784, 800, 10]
    assert abs(model.density - 0.162) < 0.002
    assert paper_shaped_model().synapses == model.synapses  # seeded


def test_markdown_table() -> None:
    row = {
        "lanes": 4,
        "cycles_per_inference": 1100.0,
        "cycles_p99": 1500.0,
        "cycle_floor": 1000.0,
        "cycles_over_floor": 1.1,
        "worst_sample_over_floor": 1.2,
        "mismatches": 0,
    }
    report = {
        "model": "m",
        "synapses": 5,
        "density": 0.5,
        "timesteps": 8,
        "samples": 3,
        "data": "d",
        "command": "c",
        "date": "today",
        "results": [row],
    }
    assert "| 4 | 1100.0 | 1500 | 1000.0 | 1.100 | 1.200 | - | - | 0 |" in markdown(report)
    row.update(overlap_floor=880.0, cycles_over_overlap_floor=1.25)
    assert "| 4 | 1100.0 | 1500 | 1000.0 | 1.100 | 1.200 | 880.0 | 1.250 | 0 |" in markdown(report)
