"""Neuron kinds of the integer reference: one registration point, one update per kind.

A hidden layer's ``kind`` (the artifact's ``layers[l].kind``) selects its neuron model here. A kind is
a pure step function over integer arrays, Norse style::

    step(state, current, layer) -> (spikes, state)

with ``current`` the exact current ``I = Σ w + bias`` of one time step (``[B, n_out]`` int64), ``layer`` the
artifact :class:`~esl_hw.artifact.Layer` (its neuron parameters), ``spikes`` a bool array of the same
shape and ``state`` whatever the kind keeps between steps (for ``lif``, the potential after the
reset). :attr:`NeuronKind.initial_state` gives the state at the start of an inference and
:attr:`NeuronKind.potential` the membrane potential the reference records (``v`` after the reset).

Registered kinds (:data:`NEURON_KINDS`), docs/semantics.md, with ``k`` the leak shift, ``ks`` the
synaptic decay shift, θ the threshold and ``reset(u)`` = 0 (``reset: zero``) or ``u − θ``
(``reset: subtract``):

- ``lif``::

      u = clamp_vbits(v − (v >> k) + I)          (v + I without leak)
      spike = u ≥ θ ;  v = reset(u) where spike else u

- ``cubalif`` (current-based LIF; state ``(c, v)``, the synaptic current and the potential)::

      c = clamp_vbits(c − (c >> ks) + I)         (c + I without decay)
      u = clamp_vbits(v − (v >> k) + c)
      spike = u ≥ θ ;  v = reset(u) where spike else u

The output layer is not a neuron kind: it integrates ``acc += I`` and is handled by the reference
itself. This module imports numpy only (the artifact imports nothing from here, so it may later).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from esl_hw.errors import EslError

if TYPE_CHECKING:
    from esl_hw.artifact import Layer

__all__ = [
    "NEURON_KINDS",
    "NeuronKind",
    "cubalif_step",
    "fire",
    "leak",
    "lif_step",
    "neuron_kind",
    "zero_potential",
]


def leak(potential: np.ndarray, leak_shift: int | None) -> np.ndarray:
    """``v − (v >> k)`` with an arithmetic shift; ``v`` unchanged when there is no leak."""
    if leak_shift is None:
        return potential
    return potential - (potential >> leak_shift)


def _clamp(values: np.ndarray, bits: int) -> np.ndarray:
    return np.clip(values, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def fire(updated: np.ndarray, layer: Layer) -> tuple[np.ndarray, np.ndarray]:
    """``(spikes, potential after reset)`` of the clamped potentials ``u``: a spike where ``u ≥ θ``,
    whose potential becomes 0 (``reset: zero``) or ``u − θ`` (``reset: subtract``)."""
    fired = updated >= layer.threshold
    reset = updated - layer.threshold if layer.reset == "subtract" else 0
    return fired, np.where(fired, reset, updated)


def lif_step(potential: np.ndarray, current: np.ndarray, layer: Layer) -> tuple[np.ndarray, np.ndarray]:
    """One LIF update: return ``(spikes, potential after reset)`` for ``[B, n_out]`` int64 arrays."""
    return fire(_clamp(leak(potential, layer.leak_shift) + current, layer.v_bits), layer)


def cubalif_step(
    state: tuple[np.ndarray, np.ndarray], current: np.ndarray, layer: Layer
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """One CubaLIF update of ``state = (c, v)``: return ``(spikes, (c, v after reset))``."""
    synaptic, potential = state
    synaptic = _clamp(leak(synaptic, layer.syn_shift) + current, layer.v_bits)
    fired, potential = fire(_clamp(leak(potential, layer.leak_shift) + synaptic, layer.v_bits), layer)
    return fired, (synaptic, potential)


def zero_synaptic_and_potential(layer: Layer, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """The CubaLIF state at rest: ``(c, v)``, both zeros ``[batch, n_out]`` int64."""
    return zero_potential(layer, batch), zero_potential(layer, batch)


def _second(state: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return state[1]


def zero_potential(layer: Layer, batch: int) -> np.ndarray:
    """The state of a kind whose only state is the potential: zeros ``[batch, n_out]`` int64."""
    return np.zeros((batch, layer.n_out), dtype=np.int64)


def _identity(state: Any) -> np.ndarray:
    return state


@dataclass(frozen=True)
class NeuronKind:
    """One neuron model of the reference.

    Attributes
    ----------
    name : str
        The artifact's layer ``kind``.
    step : callable
        ``step(state, current, layer) -> (spikes, state)`` (module docstring).
    fields : tuple of str
        The neuron parameters the kind reads from its :class:`~esl_hw.artifact.Layer` (and the
        artifact's ``model.yaml`` entry holds besides ``kind``, ``n_in``, ``n_out``, ``w_bits``).
    initial_state : callable
        ``initial_state(layer, batch) -> state`` at the start of every inference (all zero).
    potential : callable
        ``potential(state) -> [B, n_out]`` int64: the membrane potential after the step's reset.
    """

    name: str
    step: Callable[[Any, np.ndarray, Layer], tuple[np.ndarray, Any]]
    fields: tuple[str, ...]
    initial_state: Callable[[Layer, int], Any] = zero_potential
    potential: Callable[[Any], np.ndarray] = _identity


#: The registered neuron kinds, by artifact layer kind.
NEURON_KINDS: dict[str, NeuronKind] = {
    "lif": NeuronKind("lif", lif_step, fields=("v_bits", "threshold", "leak_shift", "reset")),
    "cubalif": NeuronKind(
        "cubalif",
        cubalif_step,
        fields=("v_bits", "threshold", "leak_shift", "reset", "syn_shift"),
        initial_state=zero_synaptic_and_potential,
        potential=_second,
    ),
}


def neuron_kind(name: Any) -> NeuronKind:
    """The registered kind ``name``; an unknown name raises :class:`EslError` listing the known ones."""
    if not isinstance(name, str) or name not in NEURON_KINDS:
        raise EslError(f"unknown neuron kind {name!r} (known: {', '.join(sorted(NEURON_KINDS))})")
    return NEURON_KINDS[name]
