"""Cycle floor and energy estimate."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_model

from esl_hw.metrics import EnergyConstants, cycle_floor, energy_per_inference, swept_neurons


def test_cycle_floor_counts_sops_and_sweeps_per_lane(rng: np.random.Generator) -> None:
    model = random_model(rng, (20, 12, 7, 4), timesteps=5)
    assert swept_neurons(model) == 19
    assert cycle_floor(model, 1000) == 1000 + 5 * 19
    assert cycle_floor(model, 1000, lanes=4) == pytest.approx((1000 + 95) / 4)
    with pytest.raises(ValueError, match="lanes"):
        cycle_floor(model, 10, lanes=0)


def test_energy_adds_synaptic_and_memory_parts() -> None:
    energy = energy_per_inference(1000, 200, EnergyConstants(e_sop=1e-12, e_mem_access=2e-12))
    assert energy["synaptic_j"] == pytest.approx(1e-9)
    assert energy["memory_j"] == pytest.approx(4e-10)
    assert energy["total_j"] == pytest.approx(1.4e-9)
    assert energy_per_inference(1, 0)["total_j"] == pytest.approx(0.9e-12)
