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
