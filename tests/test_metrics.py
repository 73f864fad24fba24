"""Synaptic-op counts, cycle floors and the energy estimate."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_model

from esl_hw.errors import EslError
from esl_hw.metrics import (
    EnergyConstants,
    confusion_matrix,
    cycle_floor,
    energy_per_inference,
    lane_busy_cycles,
    overlapped_cycle_floor,
    serial_cycle_floor,
    swept_neurons,
    synaptic_ops,
)
from esl_hw.reference import run


def test_synaptic_ops_count_the_fanout_of_every_received_spike(rng: np.random.Generator) -> None:
    model = random_model(rng, (9, 6, 5, 3), timesteps=4)
    spikes = rng.random((4, 3, 9)) < 0.5
    trace = run(model, spikes)
    ops = synaptic_ops(model, spikes, trace)
    assert ops.shape == (3, 3)
    for sample in range(3):
        inputs = [spikes[:, sample], *(layer[:, sample] for layer in trace.spikes)]
        for index, layer in enumerate(model.layers):
            fanout = np.diff(layer.row_ptr)
            expected = sum(int(fanout[j]) for step in inputs[index] for j in np.flatnonzero(step))
            assert ops[sample, index] == expected


def test_floors_per_layer_core_and_serial(rng: np.random.Generator) -> None:
    model = random_model(rng, (20, 12, 7, 4), timesteps=5)
    assert swept_neurons(model) == [12, 7, 0]
    assert cycle_floor(model, [100, 10, 300]) == 300
    assert cycle_floor(model, [100, 10, 30]) == 100 + 5 * 12
    assert cycle_floor(model, [100, 10, 30], lanes=4) == pytest.approx(160 / 4)
    assert serial_cycle_floor(model, 1000) == 1000 + 5 * 19
    assert serial_cycle_floor(model, 1000, lanes=2) == pytest.approx(1095 / 2)
    # Overlapped sweeps: each layer needs the larger of its integration and its sweeps.
    assert overlapped_cycle_floor(model, [100, 10, 30]) == 100  # max(100, 60), max(10, 35), 30
    assert overlapped_cycle_floor(model, [40, 10, 30]) == 5 * 12
    assert overlapped_cycle_floor(model, [40, 10, 300], lanes=4) == pytest.approx(75)
    # One lane rule (esl_hw.limits.check_lanes): a count the hardware refuses has no floor either.
    with pytest.raises(EslError, match="lanes must be a power of two in 1..64, got 0"):
        cycle_floor(model, [1, 1, 1], lanes=0)
    with pytest.raises(EslError, match="lanes must be a power of two, got 3"):
        overlapped_cycle_floor(model, [1, 1, 1], lanes=3)
    with pytest.raises(EslError, match="lanes = 128 exceeds the hardware limit 64 by 64"):
        serial_cycle_floor(model, 1, lanes=128)


def test_energy_adds_synaptic_and_memory_parts() -> None:
    energy = energy_per_inference(1000, 200, EnergyConstants(e_sop=1e-12, e_mem_access=2e-12))
    assert energy["synaptic_j"] == pytest.approx(1e-9)
    assert energy["memory_j"] == pytest.approx(4e-10)
    assert energy["total_j"] == pytest.approx(1.4e-9)
    assert energy_per_inference(1, 0)["total_j"] == pytest.approx(0.9e-12)


@pytest.mark.parametrize("lanes", [1, 2, 4])
def test_lane_busy_cycles_count_each_lanes_synapses_and_sweep(rng: np.random.Generator, lanes: int) -> None:
    model = random_model(rng, (9, 6, 5, 3), timesteps=4)
    spikes = rng.random((4, 3, 9)) < 0.5
    trace = run(model, spikes)
    busy = lane_busy_cycles(model, spikes, trace, lanes)
    assert busy.shape == (3, 3, 4, lanes)
    inputs = [spikes, *trace.spikes]
    for sample in range(3):
        for index, layer in enumerate(model.layers):
            for step in range(4):
                for lane in range(lanes):
                    expected = 0
                    for row in np.flatnonzero(inputs[index][step, sample]):
                        columns = layer.col[layer.row_ptr[row] : layer.row_ptr[row + 1]]
                        expected += int(np.sum(columns % lanes == lane))
                    if layer.kind == "lif":
                        expected += len(range(lane, layer.n_out, lanes))
                    assert busy[sample, index, step, lane] == expected
    # summed over steps and lanes: the numerator of the cycle floor, SOPs_l + T·N_l
    totals = synaptic_ops(model, spikes, trace) + 4 * np.array(swept_neurons(model))
    assert np.array_equal(busy.sum(axis=(2, 3)), totals)


def test_confusion_matrix_counts_label_prediction_pairs() -> None:
    labels = np.array([0, 1, 2, 2, 1, 0, 2])
    predictions = np.array([0, 2, 2, 2, 1, -1, 0])
    counts = confusion_matrix(labels, predictions, 3)
    assert counts.tolist() == [[1, 0, 0], [0, 1, 1], [1, 0, 2]]  # the -1 (never completed) is left out
    with pytest.raises(ValueError, match="labels must lie in 0..2"):
        confusion_matrix(np.array([3]), np.array([0]), 3)
    with pytest.raises(ValueError, match="differ in shape"):
        confusion_matrix(labels, predictions[:3], 3)
