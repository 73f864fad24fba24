"""Output layer core: exact accumulation over T steps, readout, argmax with ties to the lowest index."""

from __future__ import annotations

import numpy as np
import pytest
from rtl_support import random_layer, simulate_layer, step_events

from esl_hw.artifact import Model, layer_from_dense
from esl_hw.reference import argmax_lowest
from esl_hw.rtl_gen.output import OutputLayerCore, output_layout
from esl_hw.rtl_gen.plan import plan_model


def output_core(layer, timesteps: int, lanes: int = 1) -> OutputLayerCore:
    hidden = layer_from_dense(np.eye(layer.n_in, dtype=np.int64), "lif", 2, v_bits=4, threshold=1)
    return OutputLayerCore(plan_model(Model((hidden, layer), timesteps=timesteps), lanes)[1])


def check_output(
    layer, spikes: np.ndarray, gaps: bool, seed: int = 0, inferences: int = 1, lanes: int = 1
) -> None:
    timesteps = len(spikes)
    core = output_core(layer, timesteps, lanes)
    records, _ = simulate_layer(core, step_events(spikes) * inferences, gaps, seed)
    want = spikes.astype(np.int64).sum(axis=0) @ layer.dense_weight()
    if layer.bias is not None:  # added every step: T times
        want = want + timesteps * layer.bias
    words = [(index, int(want[index]), int(index == layer.n_out - 1)) for index in range(layer.n_out)]
    assert records["out"] == words * inferences
    assert [prediction for _, prediction in records["done"]] == [int(argmax_lowest(want))] * inferences


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("gaps", [False, True])
def test_output_core_accumulates_exactly(seed, gaps) -> None:
    rng = np.random.default_rng(seed)
    layer = random_layer(rng, 12, 7, 0.5, "output", w_bits=8)
    spikes = rng.random((5, 12)) < 0.5
    check_output(layer, spikes, gaps=gaps, seed=seed, inferences=2, lanes=[1, 2, 4, 8][seed])


def test_argmax_ties_go_to_the_lowest_index() -> None:
    dense = np.array([[1, 5, -2, 5, 5], [0, 0, 0, 0, 0]])
    layer = layer_from_dense(dense, "output", 4, mask=np.ones_like(dense, dtype=bool))
    for lanes in (1, 2, 4):
        check_output(layer, np.array([[1, 0], [1, 1], [1, 0]], dtype=bool), gaps=False, lanes=lanes)


def test_all_negative_and_silent_outputs() -> None:
    dense = -np.arange(1, 9).reshape(2, 4)
    layer = layer_from_dense(dense, "output", 5)
    check_output(layer, np.array([[1, 1], [0, 1]], dtype=bool), gaps=True)
    check_output(layer, np.zeros((3, 2), dtype=bool), gaps=False)


def test_output_layout_rejects_zero_width() -> None:
    with pytest.raises(ValueError, match="value_bits=0"):
        output_layout(3, 0)


def test_output_core_many_random_layers() -> None:
    rng = np.random.default_rng(99)
    for case in range(20):
        layer = random_layer(
            rng,
            int(rng.integers(1, 12)),
            int(rng.integers(1, 9)),
            float(rng.random()),
            "output",
            int(rng.integers(2, 10)),
        )
        spikes = rng.random((int(rng.integers(1, 6)), layer.n_in)) < rng.random()
        check_output(layer, spikes, gaps=bool(case % 2), seed=case, lanes=[1, 2, 4, 8, 16][case % 5])


@pytest.mark.parametrize("lanes", [1, 2, 4])
def test_output_bias_is_added_every_step(lanes) -> None:
    """``Σ_t S_t + T·bias``: the bias decides the argmax here (a tie without it), silent inputs
    give ``T·bias`` alone, and the accumulators hold sums whose range the bias shifts away from
    (a large positive bias on a neuron with negative weights)."""
    dense = np.array([[3, 3, -9, 0], [1, 1, -9, 0]])
    bias = np.array([0, 1, 60, -7])
    layer = layer_from_dense(dense, "output", 5, mask=np.ones_like(dense, dtype=bool), bias=bias)
    spikes = np.array([[1, 1], [1, 0], [0, 0], [1, 1]], dtype=bool)
    check_output(layer, spikes, gaps=lanes == 2, seed=lanes, inferences=2, lanes=lanes)
    check_output(layer, np.zeros((3, 2), dtype=bool), gaps=False, lanes=lanes)
    core = output_core(layer, 4, lanes)
    core._MustUse__silence = True  # only its plan is read
    plan = core.plan
    assert plan.bias_init() == [0, 4, 240, -28]


def test_output_core_with_bias_many_random_layers() -> None:
    rng = np.random.default_rng(98)
    for case in range(10):
        w_bits = int(rng.integers(2, 10))
        n_out = int(rng.integers(1, 9))
        bias = rng.integers(-(1 << (w_bits + 2)), 1 << (w_bits + 2), n_out)
        layer = random_layer(
            rng, int(rng.integers(1, 12)), n_out, float(rng.random()), "output", w_bits, bias=bias
        )
        spikes = rng.random((int(rng.integers(1, 6)), layer.n_in)) < rng.random()
        check_output(layer, spikes, gaps=bool(case % 2), seed=case, lanes=[1, 2, 4, 8, 16][case % 5])
