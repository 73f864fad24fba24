"""LIF dynamics as pure functions: one step, and a whole sequence with a hand-written BPTT backward.

Parameters per layer (:class:`LIFParams`): threshold ``θ``, the scale ``s`` from the layer's units to
float units (1 in float mode), the leak, the clamp range (QAT: the signed ``v_bits`` range; float:
none) and the surrogate. One step, on input current ``I`` and post-reset potential ``v``::

    a = v − floor(v / 2^k)   (QAT; straight-through gradient, ∂a/∂v = β = 1 − 2^−k)
    a = β v                  (float)
    u = clamp(a + I)                        (QAT only; gradient 1 inside the range, 0 outside)
    z = H(s (u − θ))                        (surrogate gradient σ'(s (u − θ)) · s)
    v' = u (1 − z)                          (reset to zero, reset detached)
    v' = u − θ z                            (reset by subtraction, ``reset="subtract"``)

``cubalif`` (current-based LIF) first low-passes the current into its synaptic current
``c = clamp(c − floor(c / 2^ks) + I)`` (float: ``α c + I``) and feeds ``c`` to the step above.

:func:`lif_step` is that step for any autograd use (the reference). :func:`lif_sequence` runs all
``T`` steps of a layer at once, given the currents ``I[T, B, N]`` of every step (a layer's input
does not depend on its own state, so layers can be run one after the other over all steps): the
forward runs without building a graph and the backward is the BPTT recursion, from ``t = T−1``
down with ``g_v = 0``::

    g_u = (g_z[t] · σ'_t · s + g_v · (1 − z_t)) · inrange_t ;  g_I[t] = g_u ;  g_v = β · g_u

The forward values are exactly those of :func:`lif_step` (``floor(v / 2^k)`` computed as
``floor(v · 2^−k)``, the same number; ``z = [u ≥ θ]``, which is ``[s (u − θ) ≥ 0]`` for ``s > 0``),
so the QAT integers stay bit-exact with the integer semantics, and the gradients are the same
products and sums. The fused sequence covers ``lif`` with reset to zero (what the trainer trains);
subtractive reset and ``cubalif`` run step by step with plain autograd (models imported from
artifacts or NIR, not trained here). :func:`lif_integer_step` is the same step on int64 tensors
(``v >> k``, no gradient): the exact integer mode of :class:`esl_hw.train.model.LIFNet`.

Neuron kinds (:data:`NEURON_KINDS`, mirroring :mod:`esl_hw.neuron_kinds` of the reference): a layer's
``kind`` selects its parameter factory, autograd step, fused sequence and integer step here; an
unknown kind raises :class:`EslError` naming the known ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from esl_hw.errors import EslError


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
    reset: str = "zero"
    syn_shift: int | None = None

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError(f"LIF scale must be positive, got {self.scale!r}")

    @property
    def beta(self) -> float:
        return 1.0 if self.leak_shift is None else 1.0 - 2.0**-self.leak_shift

    @property
    def alpha(self) -> float:
        """The synaptic current's decay ``1 − 2^−ks`` (``cubalif``; 1 without decay)."""
        return 1.0 if self.syn_shift is None else 1.0 - 2.0**-self.syn_shift


def surrogate_derivative(shifted: torch.Tensor, slope: float, kind: str) -> torch.Tensor:
    """``σ'(x)``: fast sigmoid ``1/(1 + slope |x|)^2`` or arctan ``slope/2 / (1 + (π/2 slope x)^2)``."""
    if kind == "atan":
        return slope / 2.0 / (1.0 + (math.pi / 2.0 * slope * shifted) ** 2)
    return 1.0 / (1.0 + slope * shifted.abs()) ** 2


def surrogate_derivative_(shifted: torch.Tensor, slope: float, kind: str) -> torch.Tensor:
    """:func:`surrogate_derivative` in place in ``shifted`` (the same operations, the same roundings)."""
    if kind == "atan":
        shifted.mul_(math.pi / 2.0 * slope)
        return shifted.mul_(shifted).add_(1.0).reciprocal_().mul_(slope / 2.0)
    return shifted.abs_().mul_(slope).add_(1.0).pow_(2).reciprocal_()


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


def lif_params(
    threshold: float,
    *,
    scale: float = 1.0,
    leak_shift: int | None = None,
    v_bits: int | None = None,
    quantise: bool = False,
    slope: float = 5.0,
    surrogate: str = "fast_sigmoid",
    reset: str = "zero",
    syn_shift: int | None = None,
) -> LIFParams:
    """One layer's :class:`LIFParams`: ``quantise`` (QAT and integer mode) floors the leak and clamps
    to the signed ``v_bits`` range; otherwise the leak is ``β v`` and nothing is clamped."""
    low = high = None
    if quantise:
        if v_bits is None:
            raise ValueError("lif_params: quantise needs v_bits (the clamp range)")
        low, high = float(-(1 << (v_bits - 1))), float((1 << (v_bits - 1)) - 1)
    return LIFParams(
        threshold=threshold,
        scale=scale,
        leak_shift=leak_shift,
        floor_leak=quantise,
        low=low,
        high=high,
        slope=slope,
        surrogate=surrogate,
        reset=reset,
        syn_shift=syn_shift,
    )


def _decay(value: torch.Tensor, shift: int | None, params: LIFParams) -> torch.Tensor:
    """``x − (x >> k)`` on integers, ``x − floor(x / 2^k)`` (straight-through) in QAT,
    ``(1 − 2^−k) x`` in float; ``x`` without a shift."""
    if shift is None:
        return value
    if not value.is_floating_point():
        return value - (value >> shift)
    if params.floor_leak:
        soft = value / (1 << shift)
        return value - straight_through(torch.floor(soft), soft)
    return value * (1.0 - 2.0**-shift)


def _leak(potential: torch.Tensor, params: LIFParams) -> torch.Tensor:
    """The membrane leak: :func:`_decay` by the leak shift ``k``."""
    return _decay(potential, params.leak_shift, params)


def _clamp(updated: torch.Tensor, params: LIFParams) -> torch.Tensor:
    if params.low is None:
        return updated
    if updated.is_floating_point():
        return torch.clamp(updated, params.low, params.high)
    return torch.clamp(updated, int(params.low), int(params.high))


def _membrane(current: torch.Tensor, potential: torch.Tensor, params: LIFParams) -> torch.Tensor:
    """``u = clamp(leak(v) + I)`` (no clamp in float mode): the update both steps share."""
    return _clamp(_leak(potential, params) + current, params)


def lif_step(
    current: torch.Tensor, potential: torch.Tensor, params: LIFParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z, v')`` of one step (autograd through every operation; the reference for the sequence)."""
    updated = _membrane(current, potential, params)
    shifted = (updated - params.threshold) * params.scale
    fire = spike(shifted, (shifted >= 0).to(updated.dtype), params.slope, params.surrogate)
    if params.reset == "subtract":
        return fire, updated - fire.detach() * params.threshold
    return fire, updated * (1.0 - fire.detach())


@torch.no_grad()
def lif_integer_step(
    current: torch.Tensor, potential: torch.Tensor, params: LIFParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(spikes, v')`` of one exact integer step on int64 tensors (``params`` from :func:`lif_params`
    with ``quantise``, an integer threshold)::

        u = clamp(v − (v >> k) + I) ;  spike = u ≥ θ ;  v' = reset(u) where spike else u

    with ``reset(u)`` 0, or ``u − θ`` for ``reset="subtract"``.
    """
    updated = _membrane(current, potential, params)
    threshold = int(params.threshold)
    fired = updated >= threshold
    return fired, torch.where(fired, updated - threshold if params.reset == "subtract" else 0, updated)


def cubalif_step(
    current: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], params: LIFParams
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """``(z, (c', v'))`` of one CubaLIF step with autograd: ``c' = clamp(decay_ks(c) + I)`` drives
    :func:`lif_step`."""
    synaptic, potential = state
    synaptic = _clamp(_decay(synaptic, params.syn_shift, params) + current, params)
    fire, potential = lif_step(synaptic, potential, params)
    return fire, (synaptic, potential)


@torch.no_grad()
def cubalif_integer_step(
    current: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], params: LIFParams
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """The exact integer CubaLIF step on int64 tensors::

    c = clamp(c − (c >> ks) + I) ;  then lif_integer_step(c, v)
    """
    synaptic, potential = state
    synaptic = _clamp(_decay(synaptic, params.syn_shift, params) + current, params)
    fired, potential = lif_integer_step(synaptic, potential, params)
    return fired, (synaptic, potential)


class _LIFSequence(torch.autograd.Function):
    """All ``T`` steps of a layer, step by step (a step's tensors stay in cache), with float
    elementwise operations only (on CPU, bool-valued kernels are several times slower). The forward
    keeps the spikes and ``a + I`` of every step (fresh large buffers are costly: their pages are
    faulted in on first use); the backward runs the reverse-time recursion by hand."""

    @staticmethod
    def forward(ctx, currents: torch.Tensor, params: LIFParams) -> torch.Tensor:
        spikes = torch.empty_like(currents)
        totals = torch.empty_like(currents)  # a + I, before the clamp
        potential = torch.zeros_like(currents[0])
        inverse = 2.0 ** -(params.leak_shift or 0)  # v / 2^k == v · 2^−k exactly
        for step, (current, total, fire) in enumerate(zip(currents, totals, spikes, strict=True)):
            if step and params.leak_shift is not None:
                if params.floor_leak:
                    potential = potential - torch.floor(potential * inverse)
                else:
                    potential = potential * params.beta
            updated = torch.add(potential, current, out=total)
            if params.low is not None:
                updated = updated.clamp(params.low, params.high)
            torch.ge(updated, params.threshold, out=fire)  # s (u − θ) ≥ 0 for s > 0
            potential = torch.addcmul(updated, updated, fire, value=-1.0)  # u (1 − z), exact
        ctx.params = params
        ctx.totals = totals  # not saved_tensors: the backward overwrites it with the gradient
        ctx.save_for_backward(spikes)
        return spikes

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_spikes: torch.Tensor) -> tuple[torch.Tensor, None]:
        params: LIFParams = ctx.params
        (spikes,) = ctx.saved_tensors
        if ctx.totals is None:
            raise RuntimeError("lif_sequence: backward through the same graph twice is not supported")
        totals, ctx.totals = ctx.totals, None
        # Everything but the recursion runs over all steps at once, in place:
        #   A_t = g_z[t] σ'_t s inrange_t,  C_t = β (1 − z_t) inrange_t,  g_I[t] = A_t + C_t g_I[t+1]
        # (the same roundings as step by step: the factors 0/1 and β (1 − z) ∈ {0, β} are exact).
        inrange = None
        if params.low is not None:
            updated = totals.clamp(params.low, params.high)
            inrange = torch.empty_like(totals)
            for step in range(totals.shape[0]):  # step by step: a float-valued eq is slow on big tensors
                torch.eq(totals[step], updated[step], out=inrange[step])
        else:
            updated = totals.clone()
        grad = torch.sub(updated, params.threshold, out=totals).mul_(params.scale)  # s (u − θ)
        surrogate_derivative_(grad, params.slope, params.surrogate)
        grad.mul_(grad_spikes).mul_(params.scale)
        carry = torch.mul(spikes, -params.beta, out=updated).add_(params.beta)
        if inrange is not None:
            grad.mul_(inrange)
            carry.mul_(inrange)
        product = torch.empty_like(grad[0])  # C_t g_I[t+1] rounded on its own (addcmul may fuse)
        for step in range(grad.shape[0] - 2, -1, -1):
            grad[step].add_(torch.mul(carry[step], grad[step + 1], out=product))
        return grad, None


def lif_sequence(currents: torch.Tensor, params: LIFParams) -> torch.Tensor:
    """Spikes ``[T, B, N]`` (0/1 in ``currents``' dtype) of a LIF layer driven by ``currents``
    (fused for reset to zero; step by step with autograd for reset by subtraction)."""
    if params.reset != "zero":
        return lif_sequence_reference(currents, params)
    return _LIFSequence.apply(currents, params)


def cubalif_sequence(currents: torch.Tensor, params: LIFParams) -> torch.Tensor:
    """Spikes ``[T, B, N]`` of a CubaLIF layer driven by ``currents``, step by step with autograd."""
    state = (torch.zeros_like(currents[0]), torch.zeros_like(currents[0]))
    out = []
    for current in currents:
        fire, state = cubalif_step(current, state, params)
        out.append(fire)
    return torch.stack(out)


def lif_sequence_reference(currents: torch.Tensor, params: LIFParams) -> torch.Tensor:
    """:func:`lif_sequence` step by step with :func:`lif_step` (plain autograd; for tests)."""
    potential = torch.zeros_like(currents[0])
    out = []
    for current in currents:
        fire, potential = lif_step(current, potential, params)
        out.append(fire)
    return torch.stack(out)


def zero_state(batch: int, size: int) -> torch.Tensor:
    """The integer state of a kind whose only state is the potential: zeros ``[batch, size]`` int64."""
    return torch.zeros(batch, size, dtype=torch.int64)


def _identity(state: Any) -> torch.Tensor:
    return state


def zero_synaptic_and_potential(batch: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The CubaLIF integer state at rest: ``(c, v)``, zeros ``[batch, size]`` int64."""
    return zero_state(batch, size), zero_state(batch, size)


def _second(state: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return state[1]


@dataclass(frozen=True)
class TorchNeuronKind:
    """One neuron model of the torch backend (the artifact's layer ``kind``).

    Attributes
    ----------
    name : str
        The artifact's layer ``kind``.
    params : callable
        ``params(threshold, *, scale, leak_shift, v_bits, quantise, slope, surrogate, reset,
        syn_shift)``: one layer's
        parameters for the three functions below (:func:`lif_params`).
    step : callable
        ``step(current, state, params) -> (z, state)`` with autograd (the reference of ``sequence``).
    sequence : callable
        ``sequence(currents [T, B, N], params) -> spikes [T, B, N]``: all steps at once, fast (training).
    integer_step : callable
        ``integer_step(current, state, params) -> (spikes bool, state)`` on int64 tensors, exact.
    initial_state : callable
        ``initial_state(batch, size)``: the integer state at the start of an inference (all zero).
    potential : callable
        ``potential(state) -> [B, N]`` int64: the potential after the step's reset (recorded).
    """

    name: str
    params: Callable[..., Any]
    step: Callable[[torch.Tensor, Any, Any], tuple[torch.Tensor, Any]]
    sequence: Callable[[torch.Tensor, Any], torch.Tensor]
    integer_step: Callable[[torch.Tensor, Any, Any], tuple[torch.Tensor, Any]]
    initial_state: Callable[[int, int], Any] = zero_state
    potential: Callable[[Any], torch.Tensor] = _identity


#: The registered neuron kinds of the torch backend, by artifact layer kind.
NEURON_KINDS: dict[str, TorchNeuronKind] = {
    "lif": TorchNeuronKind("lif", lif_params, lif_step, lif_sequence, lif_integer_step),
    "cubalif": TorchNeuronKind(
        "cubalif",
        lif_params,
        cubalif_step,
        cubalif_sequence,
        cubalif_integer_step,
        initial_state=zero_synaptic_and_potential,
        potential=_second,
    ),
}


def neuron_kind(name: Any) -> TorchNeuronKind:
    """The registered kind ``name``; an unknown name raises :class:`EslError` listing the known ones."""
    if not isinstance(name, str) or name not in NEURON_KINDS:
        raise EslError(f"unknown neuron kind {name!r} (known: {', '.join(sorted(NEURON_KINDS))})")
    return NEURON_KINDS[name]
