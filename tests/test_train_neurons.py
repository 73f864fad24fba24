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
    if name == "qat":
        assert (base > 127).any()  # the clamp's zero gradient is exercised


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
