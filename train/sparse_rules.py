"""Density initialisation, the drop-fraction schedule and the prune/grow rules of the ESL engine.

Initial densities (``init``), with ``size_l = Π shape_l``:

- ``er`` / ``erk``: ``density_l = ε · Σ shape_l / Π shape_l``. For a linear layer ``[n_in, n_out]`` this
  is Erdős–Rényi, ``ε (n_in + n_out) / (n_in n_out)``; for a conv kernel ``[c_out, c_in, k_h, k_w]``
  it is ERK, ``ε (c_out + c_in + k_h + k_w) / (c_out c_in k_h k_w)`` (RigL). The same formula serves
  both; ``erk`` is an alias that documents the intent.
- ``uniform``: every sparse layer gets the same density.

Given an overall ``density``, ε is chosen so that ``Σ_l density_l · size_l = density · Σ_l size_l``;
layers kept dense and layers with a density override are fixed first, and a layer whose density
would exceed 1 is made dense and ε recomputed (RigL's ER scaling).

Drop fraction at iteration ``t`` (cosine annealing, RigL/ESL)::

    α_t = α/2 · (1 + cos(π t / T_end))     for t < T_end, else 0

Rules work on flat tensors. A *prune rule* ``(weight, active, count) -> indices`` picks ``count`` of
the ``active`` flat indices to drop. A *grow rule* ``(context) -> indices`` picks ``context.count`` of
the inactive ``context.candidates``. ``hardware-random`` is the exception: a joint prune-and-regrow on
the integer weights (:mod:`esl_hw.train.hardware_rewiring`) that the engine runs in place of both
rules, with ``magnitude`` as its prune rule. Rules live in :data:`PRUNE_RULES` and :data:`GROW_RULES`;
:func:`get_rule` turns an unknown name into an :class:`EslError` listing the known ones. Ties are
broken towards the lowest flat index, so every rule is deterministic given the generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from esl_hw.errors import EslError

INIT_NAMES = ("er", "erk", "uniform")


# ---------------------------------------------------------------- densities


def _er_raw(shape: Sequence[int]) -> float:
    return sum(shape) / math.prod(shape)


def _check_density(density: float, what: str = "density") -> None:
    if not 0.0 < density <= 1.0:
        raise EslError(f"{what} {density} outside (0, 1]")


def scaled_densities(
    shapes: Sequence[Sequence[int]],
    density: float,
    init: str = "er",
    dense: Sequence[int] = (),
    overrides: Mapping[int, float] | None = None,
) -> list[float]:
    """Per-layer densities whose connection total is ``density · Σ sizes``.

    ``init`` picks the raw factor per layer (``er``/``erk``: ``Σ shape / Π shape``; ``uniform``: 1);
    layers in ``dense`` get 1 and layers in ``overrides`` their given density; the others share the
    remaining budget in proportion to their raw factor, capped at 1.
    """
    _check_density(density)
    if init not in INIT_NAMES:
        raise EslError(f"unknown sparse init {init!r} (known: {', '.join(INIT_NAMES)})")
    sizes = [math.prod(shape) for shape in shapes]
    for index in dense:
        if not 0 <= index < len(shapes):
            raise EslError(f"dense layer {index}: no such layer (0..{len(shapes) - 1})")
    fixed: dict[int, float] = {index: 1.0 for index in dense}
    for index, value in (overrides or {}).items():
        if not 0 <= index < len(shapes):
            raise EslError(f"density override for layer {index}: no such layer (0..{len(shapes) - 1})")
        _check_density(value, f"layer {index} density")
        fixed.setdefault(index, value)
    raw = [1.0 if init == "uniform" else _er_raw(shape) for shape in shapes]
    epsilon = 0.0
    while True:
        free = [i for i in range(len(shapes)) if i not in fixed]
        budget = density * sum(sizes) - sum(fixed[i] * sizes[i] for i in fixed)
        if not free:
            break
        if budget <= 0:
            raise EslError(f"density {density} is too low for the fixed layers {sorted(fixed)}")
        epsilon = budget / sum(raw[i] * sizes[i] for i in free)
        over = [i for i in free if epsilon * raw[i] > 1]
        if not over:
            break
        fixed.update({i: 1.0 for i in over})
    return [fixed.get(i, min(1.0, epsilon * raw[i])) for i in range(len(shapes))]


def er_densities(shapes: Sequence[Sequence[int]], density: float, dense: Sequence[int] = ()) -> list[float]:
    """ER/ERK densities with overall ``density`` (see :func:`scaled_densities`)."""
    return scaled_densities(shapes, density, "er", dense)


def er_densities_from_epsilon(
    shapes: Sequence[Sequence[int]], epsilon: float, dense: Sequence[int] = ()
) -> list[float]:
    """Per-layer densities ``min(1, ε · Σ shape / Π shape)``; layers listed in ``dense`` are dense."""
    return [1.0 if i in dense else min(1.0, epsilon * _er_raw(shape)) for i, shape in enumerate(shapes)]


def cosine_fraction(iteration: int, alpha: float, end_iteration: float) -> float:
    """``α/2 · (1 + cos(π t / T_end))`` for ``t < T_end``, else 0."""
    if iteration >= end_iteration:
        return 0.0
    return alpha / 2.0 * (1.0 + math.cos(math.pi * iteration / end_iteration))


# ---------------------------------------------------------------- prune rules


def _smallest(values: torch.Tensor, count: int) -> torch.Tensor:
    """Positions of the ``count`` smallest ``values`` (ties: lowest position first)."""
    return torch.sort(values, stable=True).indices[:count]


def _largest(values: torch.Tensor, count: int) -> torch.Tensor:
    """Positions of the ``count`` largest ``values`` (ties: lowest position first)."""
    return torch.sort(values, descending=True, stable=True).indices[:count]


def prune_magnitude(weight: torch.Tensor, active: torch.Tensor, count: int) -> torch.Tensor:
    """The ``count`` active positions of smallest ``|w|`` (ties: lowest flat index first)."""
    return active[_smallest(weight[active].abs(), count)]


def prune_set(weight: torch.Tensor, active: torch.Tensor, count: int) -> torch.Tensor:
    """SET: the smallest non-negative and the largest negative weights, each sign pruned in proportion.

    ``count · n_pos / n_active`` (rounded) come from the non-negative weights, closest to zero first,
    the rest from the negative ones, closest to zero first.
    """
    values = weight[active]
    positive, negative = active[values >= 0], active[values < 0]
    from_positive = min(len(positive), round(count * len(positive) / max(len(active), 1)))
    from_negative = min(len(negative), count - from_positive)
    from_positive = count - from_negative
    from_pos = positive[_smallest(weight[positive], from_positive)]
    from_neg = negative[_smallest(-weight[negative], from_negative)]
    return torch.cat([from_pos, from_neg])


# ---------------------------------------------------------------- grow rules


@dataclass
class GrowContext:
    """What a grow rule may look at (all flat, shaped like the layer's weight).

    ``candidates``: inactive flat indices; ``count``: how many to grow; ``grad``: the dense gradient
    of the last backward pass; ``momentum``: the optimizer's first moment (SGD ``momentum_buffer``,
    Adam ``exp_avg``); ``ever_active``: bool, positions that have been active at some point.
    """

    candidates: torch.Tensor
    count: int
    generator: torch.Generator
    weight: torch.Tensor
    grad: torch.Tensor | None = None
    momentum: torch.Tensor | None = None
    ever_active: torch.Tensor | None = None
    name: str = "layer"


def grow_random(context: GrowContext) -> torch.Tensor:
    """``count`` candidates drawn uniformly without replacement."""
    order = torch.randperm(len(context.candidates), generator=context.generator)
    return context.candidates[order[: context.count]]


def grow_gradient(context: GrowContext) -> torch.Tensor:
    """RigL: the candidates with the largest dense-gradient magnitude ``|∂L/∂w|``."""
    if context.grad is None:
        raise EslError(
            f"{context.name}: gradient growth needs the dense gradient (weight.grad is None; "
            "call the engine after backward and before zero_grad(set_to_none=True))"
        )
    return context.candidates[_largest(context.grad[context.candidates].abs(), context.count)]


def grow_momentum(context: GrowContext) -> torch.Tensor:
    """sparse_learning: the candidates with the largest optimizer momentum magnitude ``|m|``."""
    if context.momentum is None:
        raise EslError(
            f"{context.name}: momentum growth needs optimizer momentum (SGD with momentum or Adam) "
            "after at least one optimizer step"
        )
    return context.candidates[_largest(context.momentum[context.candidates].abs(), context.count)]


def grow_random_unfired(context: GrowContext) -> torch.Tensor:
    """Random growth that first exhausts the connections never active so far, then the others.

    Candidates that have never been active are drawn uniformly first; only when fewer than ``count``
    remain are the rest drawn uniformly from the previously active ones, so training explores every
    parameter over time.
    """
    if context.ever_active is None:
        return grow_random(context)
    fresh_flag = ~context.ever_active[context.candidates]
    fresh, seen = context.candidates[fresh_flag], context.candidates[~fresh_flag]
    fresh = fresh[torch.randperm(len(fresh), generator=context.generator)[: context.count]]
    rest = context.count - len(fresh)
    seen = seen[torch.randperm(len(seen), generator=context.generator)[:rest]]
    return torch.cat([fresh, seen])


HARDWARE_RANDOM = "hardware-random"


def grow_hardware_random(context: GrowContext) -> torch.Tensor:
    """Registry entry of the chip's joint prune-and-regrow (:mod:`esl_hw.train.hardware_rewiring`).

    It decides pruning and growth together on the integer weights, so :class:`SparseEngine` runs it
    in place of both rules; it cannot be called as a plain grow rule.
    """
    raise EslError(
        f"{context.name}: {HARDWARE_RANDOM!r} is a joint prune-and-regrow on the integer weights; "
        "SparseEngine runs it (grow='hardware-random', prune='magnitude', integer_weights=...)"
    )


PruneRule = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]
GrowRule = Callable[[GrowContext], torch.Tensor]
PRUNE_RULES: dict[str, PruneRule] = {"set": prune_set, "magnitude": prune_magnitude}
GROW_RULES: dict[str, GrowRule] = {
    "gradient": grow_gradient,
    "momentum": grow_momentum,
    "random": grow_random,
    "random-unfired": grow_random_unfired,
    HARDWARE_RANDOM: grow_hardware_random,
}


def get_rule(registry: dict[str, Any], kind: str, name: str) -> Any:
    """Look ``name`` up in ``registry``; an unknown name raises :class:`EslError` listing the known ones."""
    if name not in registry:
        raise EslError(f"unknown {kind} rule {name!r} (known: {', '.join(sorted(registry))})")
    return registry[name]
