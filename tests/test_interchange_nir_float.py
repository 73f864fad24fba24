"""The discrete-time float network of a NIR graph (:mod:`esl_hw.interchange.nir_float`): the Euler step
and snnTorch's conventions, the folding of gains, leak voltage and thresholds, and the simulation."""

from __future__ import annotations

import numpy as np
import pytest

from esl_hw.errors import EslError
from esl_hw.interchange import nir_float
from esl_hw.interchange.nir_float import SNNTORCH_DT, discretise, run_float, simulate
from esl_hw.interchange.nir_read import NirNetwork, NirNeurons, NirStage, NirSynapses

DT = SNNTORCH_DT


def neurons(kind: str, n: int, v_reset=None, **params: float) -> NirNeurons:
    return NirNeurons("n", kind, {key: np.full(n, float(value)) for key, value in params.items()}, v_reset)


def leaky(n: int, beta: float, threshold: float = 1.0, **extra: float) -> NirNeurons:
    """A LIF as snnTorch exports snn.Leaky(beta): τ = dt/(1−β), R = τ/dt."""
    tau = DT / (1 - beta)
    params = {"tau": tau, "r": tau / DT, "v_leak": 0.0, "v_threshold": threshold, **extra}
    return neurons("LIF", n, **params)


def network(weight, neuron: NirNeurons | None, bias=None, readout_weight=None, **extra) -> NirNetwork:
    weight = np.asarray(weight, dtype=np.float64)
    stages = [NirStage(NirSynapses("fc", weight, None if bias is None else np.asarray(bias, float)), neuron)]
    if readout_weight is not None:
        stages.append(NirStage(NirSynapses("out", np.asarray(readout_weight, float), None), None))
    return NirNetwork(weight.shape[1], tuple(stages), **extra)


def test_snntorch_leaky_gives_its_beta_and_unit_gain() -> None:
    weight = np.array([[0.5, -1.0], [2.0, 0.25]])
    layer = discretise(network(weight, leaky(2, 0.875, threshold=2.0))).layers[0]
    assert layer.kind == "lif" and np.allclose(layer.beta, 0.875) and layer.reset == "subtract"
    assert np.allclose(layer.weight, weight / 2.0) and layer.bias is None


def test_gain_and_leak_voltage_fold_into_weights_and_bias() -> None:
    lif = neurons("LIF", 1, tau=4 * DT, r=8.0, v_leak=0.5, v_threshold=4.0)  # gain R·dt/τ = 2
    layer = discretise(network([[1.0]], lif, bias=[0.1])).layers[0]
    assert np.allclose(layer.beta, 0.75) and np.allclose(layer.weight, [[2.0 / 4.0]])
    assert np.allclose(layer.bias, [(2.0 * 0.1 + 0.25 * 0.5) / 4.0])


def test_if_and_cubalif() -> None:
    integrate = discretise(network([[1.0]], neurons("IF", 1, r=3.0, v_threshold=2.0))).layers[0]
    assert np.allclose(integrate.beta, 1.0) and np.allclose(integrate.weight, [[1.5]])
    cuba = neurons("CubaLIF", 1, tau_syn=2 * DT, tau_mem=4 * DT, r=4.0, v_leak=0.0, v_threshold=1.0, w_in=2.0)
    layer = discretise(network([[1.0]], cuba)).layers[0]
    assert layer.kind == "cubalif" and np.allclose(layer.alpha, 0.5) and np.allclose(layer.beta, 0.75)
    assert np.allclose(layer.weight, [[2.0 * 0.5 * 4.0 * 0.25]])  # w_in·dt/τs · R·dt/τm


@pytest.mark.parametrize(
    ("neuron", "fragment"),
    [
        (neurons("LIF", 1, tau=DT / 2, r=1.0, v_leak=0.0, v_threshold=1.0), "shorter than the step dt"),
        (neurons("LIF", 1, tau=np.inf, r=1.0, v_leak=0.0, v_threshold=1.0), "tau is infinite"),
        (neurons("LIF", 1, tau=-1.0, r=1.0, v_leak=0.0, v_threshold=1.0), "tau must be positive"),
        (leaky(1, 0.5, threshold=0.0), "v_threshold must be positive"),
        (leaky(1, 0.5, v_reset=None), None),
        (NirNeurons("n", "LIF", leaky(1, 0.5).params, np.array([0.3])), "v_reset = 0.3"),
        (
            neurons("CubaLIF", 1, tau_syn=DT, tau_mem=DT, r=1.0, v_leak=0.1, v_threshold=1.0, w_in=1.0),
            "v_leak ≠ 0",
        ),
    ],
)
def test_what_the_integer_contract_cannot_take_is_refused(neuron, fragment) -> None:
    if fragment is None:
        discretise(network([[1.0]], neuron))
        return
    with pytest.raises(EslError, match=fragment):
        discretise(network([[1.0]], neuron))


def test_the_reset_follows_the_file_and_the_option() -> None:
    def reset(neuron, option="auto", **extra):
        return discretise(network([[1.0]], neuron, **extra), reset=option).layers[0].reset

    old, new = leaky(1, 0.5), NirNeurons("n", "LIF", leaky(1, 0.5).params, np.zeros(1))
    assert reset(old) == "subtract" and reset(new) == "zero"  # nir 1.0.4 equations / nir 1.0.5+ v_reset
    assert reset(old, "zero") == "zero" and reset(new, "subtract") == "subtract"
    assert reset(old, esl_hw={"resets": ["zero"]}) == "zero"  # what esl-hw's export recorded
    with pytest.raises(EslError, match="metadata resets"):
        reset(old, esl_hw={"resets": ["sideways"]})
    with pytest.raises(EslError, match="reset must be one of"):
        reset(old, "later")


@pytest.mark.parametrize(("reset", "expected"), [("subtract", 0.625), ("zero", 0.6)])
def test_one_leaky_neuron_by_hand(reset: str, expected: float) -> None:
    """β = 0.5, w = 0.6, input every step: u = 0.6, 0.9, 1.05 (spike), then 0.05·0.5 + 0.6 or 0.6."""
    net = discretise(network([[0.6]], leaky(1, 0.5), readout_weight=[[1.0]]), reset=reset)
    hidden = net.layers[0]
    run = simulate(net, np.ones((4, 1, 1), dtype=bool))
    assert run.outputs.tolist() == [[1.0]] and run.activity[0].spikes == 1
    assert np.isclose(run.activity[0].u_max, 1.05) and hidden.reset == reset
    state = {"v": np.zeros((1, 1)), "c": np.zeros((1, 1))}
    seen = nir_float.LayerActivity()
    trace = [nir_float._step(hidden, state, np.array([[0.6]]), seen)[0, 0] for _ in range(4)]
    assert trace == [False, False, True, False] and np.isclose(state["v"][0, 0], expected)


def test_the_threshold_is_strict() -> None:
    """An IF with input 0.5 reaches exactly 1.0 at step 2 and fires only at step 3 (v > threshold)."""
    net = discretise(network([[0.5]], neurons("IF", 1, r=1.0, v_threshold=1.0)))
    state = {"v": np.zeros((1, 1)), "c": np.zeros((1, 1))}
    seen = nir_float.LayerActivity()
    fired = [bool(nir_float._step(net.layers[0], state, np.array([[0.5]]), seen)[0, 0]) for _ in range(4)]
    assert fired == [False, False, True, False] and net.readout == "spikes"


def test_run_float_in_batches_equals_one_run(monkeypatch) -> None:
    rng = np.random.default_rng(3)
    net = discretise(network(rng.normal(0, 0.4, (5, 8)), leaky(5, 0.75), bias=rng.normal(0, 0.1, 5),
                             readout_weight=rng.normal(0, 1, (3, 5))))  # fmt: skip
    images = rng.integers(0, 256, (10, 8), dtype=np.uint8)
    whole = run_float(net, images, 6)
    monkeypatch.setattr(nir_float, "BATCH", 3)
    parts = run_float(net, images, 6)
    assert np.allclose(whole.outputs, parts.outputs) and (whole.predictions == parts.predictions).all()
    assert whole.activity[0].spikes == parts.activity[0].spikes and parts.activity[0].samples == 10
    assert whole.activity[0].u_max == parts.activity[0].u_max and net.readout == "current"
