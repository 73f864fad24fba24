"""Post-training quantisation of a NIR graph's float network (:mod:`esl_hw.interchange.nir_quantise`):
exact where the float network is representable, the scale and its limits, the leak as a shift with
its error, calibration, and the error bounds reported."""

from __future__ import annotations

import numpy as np
import pytest

from esl_hw.encoding import encode
from esl_hw.errors import EslError
from esl_hw.interchange.nir_float import FloatLayer, FloatNetwork, LayerActivity, run_float, simulate
from esl_hw.interchange.nir_quantise import (
    DEFAULT_HEADROOM,
    LEAK_ERROR_LIMIT,
    quantise,
    retention_shift,
)
from esl_hw.reference import run


def hidden(weight, beta=1.0, reset="zero", bias=None, kind="lif", alpha=None) -> FloatLayer:
    weight = np.asarray(weight, dtype=np.float64)
    n = weight.shape[0]
    return FloatLayer(
        kind,
        weight,
        None if bias is None else np.asarray(bias, dtype=np.float64),
        source="test",
        beta=np.full(n, beta),
        alpha=None if alpha is None else np.full(n, alpha),
        reset=reset,
        threshold=np.ones(n),
    )


def output(weight, bias=None) -> FloatLayer:
    weight = np.asarray(weight, dtype=np.float64)
    return FloatLayer("output", weight, None if bias is None else np.asarray(bias, dtype=np.float64), "out")


@pytest.mark.parametrize(
    ("beta", "shift", "error"),
    [
        (0.875, 3, 0.0),
        (0.5, 1, 0.0),
        (0.9, 3, 0.25),
        (0.95, 4, 0.25),
        (1.0, None, 0.0),
        (1 - 2.0**-40, None, 1.0),
    ],
)
def test_retention_shift(beta: float, shift, error: float) -> None:
    found = retention_shift(np.full(3, beta), 16, "β", "layer 0")
    assert found.shift == shift and np.isclose(found.error, error)


def test_retention_shift_refusals() -> None:
    with pytest.raises(EslError, match=r"k = 1.*off by 44%.*at most 34%"):
        retention_shift(np.array([0.1]), 16, "β", "layer 0")
    with pytest.raises(EslError, match="need different shifts"):
        retention_shift(np.array([0.5, 0.875]), 16, "β", "layer 0")
    assert LEAK_ERROR_LIMIT > 1 / 3  # the worst nearest power of two is accepted


def test_an_exactly_representable_network_is_bit_exact() -> None:
    """Weights and bias on a grid of 1/64 with a largest weight of 127/64: the scale is 64, every
    integer is exact, and with zero reset and no leak the integer model computes the float one (the
    output layer's whole-number weights keep the scale 1)."""
    rng = np.random.default_rng(5)
    weight = rng.integers(-127, 128, (6, 10)) / 64
    weight[0, 0] = 127 / 64
    net = FloatNetwork(
        (hidden(weight, bias=rng.integers(-20, 20, 6) / 64), output(rng.integers(-9, 9, (3, 6)))),
        readout="current",
        dt=1e-4,
    )
    result = quantise(net, w_bits=8, v_bits=16, timesteps=5)
    first = result.model.layers[0]
    assert result.layers[0]["scale"] == 64 and first.threshold == 65 and first.leak_shift is None
    assert np.array_equal(first.dense_weight().T, weight * 64)
    spikes = encode(rng.integers(0, 256, (20, 10), dtype=np.uint8), 5)
    integer = run(result.model, spikes)
    floating = simulate(net, spikes)
    assert result.layers[1]["limited_by"] == "integer values" and result.layers[1]["scale"] == 1
    assert np.array_equal(integer.outputs, floating.outputs) and floating.activity[0].spikes > 0


def test_leak_reset_bias_and_cubalif_reach_the_layer() -> None:
    net = FloatNetwork(
        (hidden([[0.5, 0.25]], beta=0.75, reset="subtract", bias=[0.1], kind="cubalif", alpha=0.5),),
        readout="spikes",
        dt=1e-4,
    )
    result = quantise(net, w_bits=6, v_bits=12, timesteps=3)
    layer, counter = result.model.layers
    assert (layer.kind, layer.leak_shift, layer.syn_shift, layer.reset) == ("cubalif", 2, 1, "subtract")
    assert layer.bias is not None and layer.w_bits == 6 and layer.v_bits == 12
    assert counter.kind == "output" and counter.weight.tolist() == [1] and counter.col.tolist() == [0]
    report = result.layers[0]
    assert report["leak_shift"] == 2 and report["syn_shift"] == 1 and report["leak_error"] == 0
    assert report["weight_error"] == pytest.approx(0.5 / report["scale"])
    assert report["current_error_bound"] == pytest.approx(0.5 * 3 / report["scale"])  # 2 inputs + bias
    assert result.model.metadata["readout"] == "spikes" and result.layers[1]["kind"] == "output"


def test_the_scale_keeps_weights_bias_and_potentials_in_range() -> None:
    small = hidden([[0.01, -0.005]])
    assert quantise(FloatNetwork((small,), "spikes", 1e-4)).layers[0]["limited_by"] == "potential"
    assert quantise(FloatNetwork((small,), "spikes", 1e-4)).layers[0]["headroom"] == pytest.approx(
        32767 / ((32767 - 1) / DEFAULT_HEADROOM)
    )
    busy = LayerActivity(u_min=-3.0, u_max=100.0, samples=10)
    report = quantise(FloatNetwork((small,), "spikes", 1e-4), activity=[busy]).layers[0]
    assert report["calibrated"] and report["scale"] == pytest.approx(32766 / 125)
    assert report["calibration_potential"] == [-3.0, 100.0]
    biased = hidden([[0.001]], bias=[1e7])
    assert quantise(FloatNetwork((biased,), "spikes", 1e-4), v_bits=48).layers[0]["limited_by"] == "bias"


def test_too_few_bits_and_bad_widths_are_refused() -> None:
    net = FloatNetwork((hidden([[0.5]]),), "spikes", 1e-4)
    with pytest.raises(EslError, match="integer units per threshold.*--v-bits"):
        quantise(net, v_bits=4)
    with pytest.raises(EslError, match="--w-bits"):
        quantise(net, w_bits=33)
    with pytest.raises(EslError, match="--v-bits"):
        quantise(net, v_bits=60)


def test_a_far_leak_is_warned_about() -> None:
    result = quantise(FloatNetwork((hidden([[0.5]], beta=0.9),), "spikes", 1e-4))
    assert len(result.warnings) == 1 and "β = 0.9 becomes 1 − 2^−3 = 0.875" in result.warnings[0]


def test_calibrated_import_tracks_the_float_network() -> None:
    """A random 20-12-4 network with leak and subtract reset: the integer model predicts like the float
    network on most inputs, and calibration does not lose accuracy."""
    rng = np.random.default_rng(11)
    net = FloatNetwork(
        (hidden(rng.normal(0, 0.3, (12, 20)), beta=0.875, reset="subtract", bias=rng.normal(0, 0.05, 12)),
         output(rng.normal(0, 1, (4, 12)))),
        readout="current",
        dt=1e-4,
    )  # fmt: skip
    images = rng.integers(0, 256, (200, 20), dtype=np.uint8)
    floating = run_float(net, images, 8)
    for activity in (None, floating.activity):
        model = quantise(net, timesteps=8, activity=activity).model
        integer = run(model, encode(images, 8)).predictions
        assert np.mean(integer == floating.predictions) > 0.9
