"""bench/fixed_costs.py: its networks, the fit and the Markdown page (the Verilator run is the bench)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parent.parent / "bench" / "fixed_costs.py"
_SPEC = importlib.util.spec_from_file_location("bench_fixed_costs", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = bench  # dataclasses look their module up
_SPEC.loader.exec_module(bench)


def test_er_densities_match_the_trainer() -> None:
    # esl_hw.train.sparse_rules.er_densities([(784, 128), (128, 10)], 0.1): the output layer is
    # capped at 1 and leaves its budget to the hidden layer.
    assert bench.er_densities((784, 128, 10), 0.1) == pytest.approx([0.0885204081632653, 1.0])


def test_networks_are_seeded_and_shaped() -> None:
    model = bench.network((784, 128, 10), 8)
    assert [model.n_inputs, *(layer.n_out for layer in model.layers)] == [784, 128, 10]
    assert model.timesteps == 8 and bench.network((784, 128, 10), 8).synapses == model.synapses
    tiny = bench.network((1, 1, 1), 2)
    assert tiny.synapses == 2
    images, source = bench.input_images(16, 3)
    assert images.shape == (4, 16) and not images[0].any() and source == "random pixels"


def test_fit_gives_the_fixed_cycles_per_step_and_per_inference() -> None:
    rows = [{"timesteps": t, "zero_input_cycles": 21 + 6 * t, "groups": 1} for t in (1, 2, 8)]
    assert bench.fit(rows) == pytest.approx(
        {
            "cycles_per_step": 6,
            "sweep_groups": 1,
            "fixed_per_step": 5,
            "fixed_per_inference": 21,
            "max_residual": 0,
        },
        abs=1e-9,
    )
    assert bench.fit(rows[:1]) is None


def test_floors_of_a_silent_image() -> None:
    model = bench.network((4, 3, 2), 5)
    floor, event_floor = bench.floors(model, np.zeros((1, 4), dtype=np.uint8), 1)
    # No event: the sweep of 3 neurons per step is the floor; each layer still takes its marker.
    assert floor.tolist() == [15.0] and event_floor.tolist() == [15.0]


def test_markdown_page() -> None:
    run = {
        "timesteps": 8,
        "samples": 5,
        "groups": 8,
        "zero_input_cycles": 113.0,
        "cycles_per_inference": 971.0,
        "cycle_floor": 599.2,
        "cycles_over_floor": 1.621,
        "event_floor_over_floor": 1.3,
        "cycles_over_event_floor": 1.246,
        "overhead_per_step": 46.5,
        "mismatches": 0,
    }
    report = {
        "command": "c",
        "date": "d",
        "machine": "m",
        "cpus": 2,
        "load_average": "1 / 2 / 3",
        "networks": [{"name": "784-128-10 L16", "runs": [run], "fit": None}],
    }
    page = bench.markdown(report)
    assert "| 784-128-10 L16 | 8 | 113 | - | 8 | - | - | - |" in page
    assert "| 784-128-10 L16 | 8 | 5 | 971.0 | 599.2 | 1.621 | 1.300 | 1.246 | 46.5 | 0 |" in page
