"""Artifact model in memory: derived widths, layers from dense matrices, checks on construction."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import random_layer, random_model

from esl_hw import limits
from esl_hw.artifact import Encoder, Model, layer_from_dense, signed_bits_for
from esl_hw.errors import EslError


def test_layer_from_dense_keeps_masked_zero_weights() -> None:
    dense = np.array([[0, 3], [-2, 0]])
    mask = np.array([[True, True], [True, False]])
    layer = layer_from_dense(dense, "output", 4, mask=mask)
    assert layer.row_ptr.tolist() == [0, 2, 3]
    assert layer.col.tolist() == [0, 1, 0] and layer.weight.tolist() == [0, 3, -2]
    assert np.array_equal(layer.dense_weight(), dense)


def test_widths_bound_the_extreme_currents() -> None:
    dense = np.array([[7, -8], [7, -8], [-8, 7]])
    layer = layer_from_dense(dense, "output", 4)
    assert layer.current_range() == (-16, 14)
    assert layer.current_bits() == 5
    hidden = layer_from_dense(np.ones((2, 3), dtype=int), "lif", 4, 8, 3, 1)
    model = Model((hidden, layer), timesteps=5)
    assert model.acc_bits() == signed_bits_for(-80, 70) == 8
    assert signed_bits_for(-1, 0) == 1 and signed_bits_for(0, 1) == 2


# ---------------------------------------------------------------- derived widths from CSR


@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (12, 8), (30, 17), (3, 40)])
def test_current_range_equals_the_dense_formula(rng: np.random.Generator, shape: tuple[int, int]) -> None:
    for density in (0.0, 0.2, 0.7, 1.0):
        w_bits = int(rng.integers(2, 33))
        low, high = -(1 << (w_bits - 1)), (1 << (w_bits - 1)) - 1
        mask = rng.random(shape) < density
        dense = rng.integers(low, high + 1, shape, dtype=np.int64) * mask
        layer = layer_from_dense(dense, "output", w_bits, mask=mask)
        expected = (
            int(np.minimum(dense, 0).sum(axis=0).min(initial=0)),
            int(np.maximum(dense, 0).sum(axis=0).max(initial=0)),
        )
        assert layer.current_range() == expected
        assert np.array_equal(layer.dense_weight(), dense)


def test_dense_weight_refuses_a_matrix_beyond_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    layer = layer_from_dense(np.ones((4, 5), dtype=np.int64), "output", 4)
    monkeypatch.setattr(limits, "MAX_DENSE_CELLS", 19)
    with pytest.raises(EslError, match="dense matrix of 20 cells exceeds the limit 19"):
        layer.dense_weight()
    assert layer.current_range() == (0, 4)


# ---------------------------------------------------------------- models built in code


def test_metadata_problems_are_refused_on_construction(rng: np.random.Generator) -> None:
    layers = random_model(rng, (6, 4, 2)).layers
    with pytest.raises(EslError, match="metadata.rewiring.lfsr_states must list 2"):
        Model(layers, 3, metadata={"rewiring": {"lanes": 1, "lfsr_states": [5]}})
    with pytest.raises(EslError, match="metadata must be a mapping"):
        Model(layers, 3, metadata=[])  # type: ignore[arg-type]
    with pytest.raises(EslError, match="timesteps=True outside 1..4096"):
        Model(layers, True)
    with pytest.raises(EslError, match="encoder phase0='x' outside 0..255"):
        Model(layers, 3, encoder=Encoder(phase0="x"))  # type: ignore[arg-type]
    with pytest.raises(EslError, match="w_bits=6.0 outside 2..32"):
        Model((dataclasses.replace(layers[0], w_bits=6.0), layers[1]), 3)


def test_repr_is_one_short_line_with_shape_and_synapses(rng: np.random.Generator) -> None:
    model = random_model(rng, sizes=(30, 12, 7, 4), timesteps=3)
    text = repr(model)
    assert text == (f"Model(30-12-7-4, T=3, {model.synapses} synapses, density {model.density:.4f})")
    hidden, output = model.layers[0], model.layers[-1]
    assert repr(hidden) == (
        f"Layer(lif 30->12, {hidden.nnz} synapses, w_bits=6, v_bits=10, "
        f"threshold={hidden.threshold}, leak_shift=2, reset=zero)"
    )
    assert repr(output) == f"Layer(output 7->4, {output.nnz} synapses, w_bits=6)"


def test_layers_built_in_code_are_checked_for_the_v2_fields(rng: np.random.Generator) -> None:
    good = random_layer(rng, 6, 4)
    output = random_layer(rng, 4, 2, kind="output")
    cases = [
        (dataclasses.replace(good, reset="soft"), "reset 'soft' unknown"),
        (dataclasses.replace(good, syn_shift=1), "a lif layer has no syn_shift"),
        (dataclasses.replace(good, kind="cubalif", syn_shift=0), r"syn_shift=0 outside 1\.\.9"),
        (dataclasses.replace(good, bias=np.zeros(3, np.int64)), "bias has 3 values for 4 neurons"),
        (dataclasses.replace(good, bias=[1, 2, 3, 4]), "bias must be a 1-D integer numpy array"),
        (dataclasses.replace(good, bias=np.zeros(4)), "bias must be a 1-D integer numpy array"),
    ]
    for layer, message in cases:
        with pytest.raises(EslError, match=message):
            Model((layer, output), 3)
    with pytest.raises(EslError, match="an output layer has no reset"):
        Model((good, dataclasses.replace(output, reset="subtract")), 3)
    with pytest.raises(EslError, match="layer 1: kind is 'lif', expected 'output'"):
        Model((good, dataclasses.replace(output, kind="lif")), 3)


def test_current_range_includes_the_bias_and_accumulators_are_bounded() -> None:
    dense = np.array([[3, -2], [4, 0]])
    layer = layer_from_dense(dense, "output", 4, bias=np.array([10, -20]))
    assert layer.synaptic_range() == (-2, 7)
    assert layer.current_range() == (-22, 17)  # neuron 0: 10..17, neuron 1: -22..-20
    hidden = layer_from_dense(np.ones((1, 2), np.int64), "lif", 4, 8, 5, None)
    assert Model((hidden, layer), 3).acc_bits() == signed_bits_for(-66, 51)
    huge = layer_from_dense(np.ones((2, 1), np.int64), "output", 4, bias=np.array([(1 << 31) - 1]))
    hidden = layer_from_dense(np.ones((1, 2), np.int64), "lif", 4, 8, 5, None)
    Model((hidden, huge), 4096)  # 2^12 · (2^31 + 1): 44 bits
    with pytest.raises(EslError, match=r"accumulators need 65 bits over 4096 steps, more than the limit 64"):
        wide = layer_from_dense(
            np.full((1 << 20, 1), -(1 << 31), np.int64), "output", 32, bias=np.array([-(1 << 31)])
        )
        Model((layer_from_dense(np.ones((1, 1 << 20), np.int64), "lif", 4, 8, 5, None), wide), 4096)
