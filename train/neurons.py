"""LIF dynamics as pure functions: one step, and a whole sequence with a hand-written BPTT backward.

Parameters per layer (:class:`LIFParams`): threshold ``θ``, the scale ``s`` from the layer's units to
float units (1 in float mode), the leak, the clamp range (QAT: the signed ``v_bits`` range; float:
none) and the surrogate. One step, on input current ``I`` and post-reset potential ``v``::

    a = v − floor(v / 2^k)   (QAT; straight-through gradient, ∂a/∂v = β = 1 − 2^−k)
    a = β v                  (float)
    u = clamp(a + I)                        (QAT only; gradient 1 inside the range, 0 outside)
    z = H(s (u − θ))                        (surrogate gradient σ'(s (u − θ)) · s)
    v' = u (1 − z)                          (hard reset, reset detached)

:func:`lif_step` is that step for any autograd use (the reference). :func:`lif_sequence` runs all
``T`` steps of a layer at once, given the currents ``I[T, B, N]`` of every step (a layer's input
does not depend on its own state, so layers can be run one after the other over all steps): the
forward runs without building a graph and the backward is the BPTT recursion, from ``t = T−1``
down with ``g_v = 0``::

    g_u = (g_z[t] · σ'_t · s + g_v · (1 − z_t)) · inrange_t ;  g_I[t] = g_u ;  g_v = β · g_u

The forward values are exactly those of :func:`lif_step` (same operations in the same order), so
the QAT integers stay bit-exact with the integer semantics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LIFParams:
    """One layer's neuron parameters (see the module docstring)."""

    threshold: float
    scale: float = 1.0
    leak_shift: int | None = None
    floor_leak: bool = False
    low: float | None = None
    high: float | None = None
    slope: float = 5.0
    surrogate: str = "fast_sigmoid"

    @property
    def beta(self) -> float:
        return 1.0 if self.leak_shift is None else 1.0 - 2.0**-self.leak_shift


def surrogate_derivative(shifted: torch.Tensor, slope: float, kind: str) -> torch.Tensor:
    """``σ'(x)``: fast sigmoid ``1/(1 + slope |x|)^2`` or arctan ``slope/2 / (1 + (π/2 slope x)^2)``."""
    if kind == "atan":
        return slope / 2.0 / (1.0 + (math.pi / 2.0 * slope * shifted) ** 2)
    return 1.0 / (1.0 + slope * shifted.abs()) ** 2


class _SpikeFunction(torch.autograd.Function):
    """Heaviside forward (given as ``fire``); surrogate derivative of ``shifted`` backward."""

    @staticmethod
    def forward(ctx, shifted: torch.Tensor, fire: torch.Tensor, slope: float, kind: str) -> torch.Tensor:
        ctx.save_for_backward(shifted)
        ctx.slope, ctx.kind = slope, kind
        return fire

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (shifted,) = ctx.saved_tensors
        return grad_output * surrogate_derivative(shifted, ctx.slope, ctx.kind), None, None, None


def spike(shifted: torch.Tensor, fire: torch.Tensor, slope: float, kind: str) -> torch.Tensor:
    """Spikes ``fire`` (0/1) with the surrogate gradient of ``shifted`` (≈ v − θ in float units)."""
    return _SpikeFunction.apply(shifted, fire, slope, kind)


def straight_through(hard: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """Exactly ``hard`` in the forward pass, the gradient of ``soft`` backward."""
    return hard.detach() + (soft - soft.detach())


def _leak(potential: torch.Tensor, params: LIFParams) -> torch.Tensor:
    if params.leak_shift is None:
        return potential
    if params.floor_leak:
        soft = potential / (1 << params.leak_shift)
        return potential - straight_through(torch.floor(soft), soft)
    return potential * params.beta


def lif_step(
    current: torch.Tensor, potential: torch.Tensor, params: LIFParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z, v')`` of one step (autograd through every operation; the reference for the sequence)."""
    updated = _leak(potential, params) + current
    if params.low is not None:
        updated = torch.clamp(updated, params.low, params.high)
    shifted = (updated - params.threshold) * params.scale
    fire = spike(shifted, (shifted >= 0).to(updated.dtype), params.slope, params.surrogate)
    return fire, updated * (1.0 - fire.detach())


class _LIFSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, currents: torch.Tensor, params: LIFParams) -> torch.Tensor:
        steps = currents.shape[0]
        potential = torch.zeros_like(currents[0])
        spikes = torch.empty_like(currents)
        shifted_all = torch.empty_like(currents)
        inrange = torch.ones_like(currents, dtype=torch.bool) if params.low is not None else None
        for step in range(steps):
            if params.leak_shift is not None:
                if params.floor_leak:
                    potential = potential - torch.floor(potential / (1 << params.leak_shift))
                else:
                    potential = potential * params.beta
            updated = potential + currents[step]
            if inrange is not None:
                inrange[step] = (updated >= params.low) & (updated <= params.high)
                updated = torch.clamp(updated, params.low, params.high)
            shifted = (updated - params.threshold) * params.scale
            fire = (shifted >= 0).to(updated.dtype)
            shifted_all[step], spikes[step] = shifted, fire
            potential = updated * (1.0 - fire)
        ctx.params = params
        ctx.save_for_backward(spikes, shifted_all, *(() if inrange is None else (inrange,)))
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor) -> tuple[torch.Tensor, None]:
        params: LIFParams = ctx.params
        spikes, shifted_all, *rest = ctx.saved_tensors
        inrange = rest[0] if rest else None
        grad_currents = torch.empty_like(grad_spikes)
        grad_potential = torch.zeros_like(grad_spikes[0])
        for step in range(grad_spikes.shape[0] - 1, -1, -1):
            surrogate = surrogate_derivative(shifted_all[step], params.slope, params.surrogate)
            grad_updated = grad_spikes[step] * surrogate * params.scale
            grad_updated = grad_updated + grad_potential * (1.0 - spikes[step])
            if inrange is not None:
                grad_updated = grad_updated * inrange[step]
            grad_currents[step] = grad_updated
            grad_potential = grad_updated * params.beta
        return grad_currents, None


def lif_sequence(currents: torch.Tensor, params: LIFParams) -> torch.Tensor:
    """Spikes ``[T, B, N]`` (0/1 in ``currents``' dtype) of a LIF layer driven by ``currents``."""
    return _LIFSequence.apply(currents, params)


def lif_sequence_reference(currents: torch.Tensor, params: LIFParams) -> torch.Tensor:
    """:func:`lif_sequence` step by step with :func:`lif_step` (plain autograd; for tests)."""
    potential = torch.zeros_like(currents[0])
    out = []
    for current in currents:
        fire, potential = lif_step(current, potential, params)
        out.append(fire)
    return torch.stack(out)
