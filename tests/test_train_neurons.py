"""Tests for esl_hw.train.neurons: the fused LIF sequence equals the step-by-step reference."""

from __future__ import annotations

import pytest
import torch

from esl_hw.train.neurons import (
    LIFParams,
    lif_sequence,
    lif_sequence_reference,
    lif_step,
    surrogate_derivative,
)

PARAMS = {
    "qat": LIFParams(threshold=40.0, scale=0.02, leak_shift=2, floor_leak=True, low=-128.0, high=127.0),
    "float": LIFParams(threshold=0.8, leak_shift=1),
    "no-leak-atan": LIFParams(threshold=0.8, surrogate="atan", slope=2.0),
}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_sequence_forward_and_gradients_equal_the_reference(name: str) -> None:
    params = PARAMS[name]
    torch.manual_seed(0)
    scale = 60.0 if name == "qat" else 0.6
    base = torch.round(torch.randn(6, 5, 7) * scale) if name == "qat" else torch.randn(6, 5, 7) * scale
    weights = torch.randn(6, 5, 7)
    fused_in = base.clone().requires_grad_()
    reference_in = base.clone().requires_grad_()
    fused = lif_sequence(fused_in, params)
    reference = lif_sequence_reference(reference_in, params)
    assert torch.equal(fused, reference)
    assert 0 < float(fused.detach().mean()) < 1
    (fused * weights).sum().backward()
    (reference * weights).sum().backward()
    assert torch.allclose(fused_in.grad, reference_in.grad, atol=1e-6)
    assert torch.equal(fused_in.grad, _step_by_step_gradient(base, weights, params))
    if name == "qat":
        assert (base > 127).any()  # the clamp's zero gradient is exercised


def _step_by_step_gradient(currents: torch.Tensor, weights: torch.Tensor, params: LIFParams) -> torch.Tensor:
    """The BPTT recursion of the module docstring one step at a time, in the order it is written
    there: the fused backward (vectorised over the steps) must give these numbers bit for bit."""
    spikes = lif_sequence(currents, params)
    totals = torch.empty_like(currents)  # a + I of every step, as the forward computes them
    potential = torch.zeros_like(currents[0])
    for step in range(currents.shape[0]):
        if step and params.leak_shift is not None and params.floor_leak:
            potential = potential - torch.floor(potential * 2.0**-params.leak_shift)
        elif step and params.leak_shift is not None:
            potential = potential * params.beta
        totals[step] = potential + currents[step]
        updated = totals[step] if params.low is None else totals[step].clamp(params.low, params.high)
        potential = updated * (1 - spikes[step])
    grad = torch.empty_like(currents)
    grad_potential = torch.zeros_like(currents[0])
    for step in range(currents.shape[0] - 1, -1, -1):
        updated = totals[step] if params.low is None else totals[step].clamp(params.low, params.high)
        shifted = (updated - params.threshold) * params.scale
        value = weights[step] * surrogate_derivative(shifted, params.slope, params.surrogate) * params.scale
        value = value + grad_potential * (1.0 - spikes[step])
        if params.low is not None:
            value = value * (totals[step] == updated).float()
        grad[step] = value
        grad_potential = value * params.beta
    return grad


def test_step_resets_to_zero_and_leaks_by_shift() -> None:
    params = LIFParams(threshold=10.0, leak_shift=1, floor_leak=True, low=-100.0, high=100.0)
    fire, potential = lif_step(torch.tensor([4.0, 12.0]), torch.tensor([-3.0, 0.0]), params)
    assert fire.tolist() == [0.0, 1.0]
    assert potential.tolist() == [-3.0 - (-2.0) + 4.0, 0.0]  # -3 - floor(-3/2) + 4 = 3


def test_surrogates_peak_at_the_threshold() -> None:
    x = torch.tensor([-1.0, 0.0, 1.0])
    for kind in ("fast_sigmoid", "atan"):
        values = surrogate_derivative(x, 5.0, kind)
        assert values[1] == values.max() and values[0] == pytest.approx(float(values[2]))


def test_sequence_backward_twice_is_refused() -> None:
    currents = torch.randn(3, 2, 4, requires_grad=True)
    spikes = lif_sequence(currents, PARAMS["float"])
    spikes.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward through the same graph twice"):
        spikes.sum().backward()


def test_scale_must_be_positive() -> None:
    with pytest.raises(ValueError, match="scale must be positive, got 0.0"):
        LIFParams(threshold=1.0, scale=0.0)


def test_integer_step_is_the_reference_step_at_any_width() -> None:
    import numpy as np

    from esl_hw.artifact import layer_from_dense
    from esl_hw.neuron_kinds import lif_step as reference_step
    from esl_hw.train.neurons import lif_integer_step, lif_params

    rng = np.random.default_rng(0)
    for v_bits, leak_shift in ((2, 1), (2, None), (5, 2), (16, None), (16, 15), (48, 3), (48, None)):
        top = (1 << (v_bits - 1)) - 1
        for threshold in (1, max(1, top // 3), top):
            layer = layer_from_dense(
                np.ones((1, 64), dtype=np.int64), "lif", 2, v_bits, threshold, leak_shift
            )
            potential = rng.integers(-top - 1, top + 1, (3, 64))
            current = rng.integers(-4 * top - 4, 4 * top + 4, (3, 64))
            want_spikes, want_potential = reference_step(potential, current, layer)
            params = lif_params(threshold, leak_shift=leak_shift, v_bits=v_bits, quantise=True)
            spikes, after = lif_integer_step(torch.from_numpy(current), torch.from_numpy(potential), params)
            assert after.dtype == torch.int64
            np.testing.assert_array_equal(spikes.numpy(), want_spikes)
            np.testing.assert_array_equal(after.numpy(), want_potential)


def test_qat_step_values_are_the_integer_step() -> None:
    from esl_hw.train.neurons import lif_integer_step, lif_params

    params = lif_params(9, scale=0.1, leak_shift=2, v_bits=6, quantise=True)
    potential = torch.arange(-32, 32).reshape(4, 16)
    current = torch.arange(64).reshape(4, 16) % 23 - 11
    fire, after = lif_step(current.float(), potential.float(), params)
    spikes, exact = lif_integer_step(current, potential, params)
    assert torch.equal(fire.bool(), spikes) and torch.equal(after.long(), exact)


def test_torch_neuron_kinds_mirror_the_reference_registry() -> None:
    from esl_hw import neuron_kinds as reference
    from esl_hw.errors import EslError
    from esl_hw.train.neurons import NEURON_KINDS, lif_integer_step, neuron_kind

    assert set(NEURON_KINDS) == set(reference.NEURON_KINDS) == {"lif", "cubalif"}
    lif = neuron_kind("lif")
    assert (lif.step, lif.sequence, lif.integer_step) == (lif_step, lif_sequence, lif_integer_step)
    assert torch.equal(lif.initial_state(2, 3), torch.zeros(2, 3, dtype=torch.int64))
    with pytest.raises(EslError, match=r"unknown neuron kind 'izhikevich' \(known: cubalif, lif\)"):
        neuron_kind("izhikevich")


@pytest.mark.parametrize(
    ("kind", "reset"), [("lif", "subtract"), ("cubalif", "zero"), ("cubalif", "subtract")]
)
def test_v2_kinds_qat_sequence_equals_the_integer_steps_and_has_gradients(kind: str, reset: str) -> None:
    """QAT spikes of subtractive reset and CubaLIF (the step-by-step autograd path) equal the exact
    integer steps on the same integer currents, and gradients reach every step's current."""
    from esl_hw.train.neurons import lif_params, neuron_kind

    generator = torch.Generator().manual_seed(5)
    currents = torch.randint(-40, 60, (9, 4, 7), generator=generator)
    params = lif_params(50.0, leak_shift=2, v_bits=8, quantise=True, reset=reset, syn_shift=1)
    chosen = neuron_kind(kind)
    state = chosen.initial_state(4, 7)
    expected = []
    for current in currents:
        fired, state = chosen.integer_step(current, state, params)
        expected.append(fired)
    floats = currents.double().requires_grad_()
    spikes = chosen.sequence(floats, params)
    assert torch.equal(spikes.bool(), torch.stack(expected)) and bool(spikes.any())
    spikes.sum().backward()
    assert floats.grad is not None and bool((floats.grad[0] != 0).any())
