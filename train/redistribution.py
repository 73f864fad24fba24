"""Density redistribution across layers: how many synapses each layer prunes and regrows at an update.

With ``redistribute: none`` (the default) every layer prunes ``k_l = round(α_t · A_l)`` of its ``A_l``
active synapses and regrows as many, so every layer keeps its density (the engine does not call this
module). The other rules keep the *global* count ``Σ_l A_l`` exactly, while the number regrown per
layer, and so each layer's density, moves:

``momentum`` (sparse momentum, Dettmers & Zettlemoyer 2019, "Sparse Networks from Scratch: Faster
Training without Losing Performance", Algorithm 1; ``sparselearning/core.py``): each layer prunes
``p_l = round(α_t · A_l)`` by its prune rule; the ``K = Σ_l p_l`` freed synapses are regrown in
shares ``g_l ∝ M_l``, where ``M_l`` is the mean ``|m|`` over the layer's active weights (the
reference's statistic: SGD's ``momentum_buffer``, Adam's ``exp_avg / (√exp_avg_sq + 1e-8)``).

``magnitude`` (Dynamic Sparse Reparameterization, Mostafa & Wang 2019, "Parameter Efficient Training
of Deep Convolutional Neural Networks by Dynamic Sparse Reparameterization"): a *global* magnitude
prune, ``K = round(α_t · Σ_l A_l)`` synapses of smallest ``|w|`` over all layers together (ties: layer
order, then flat index), so layers with small weights lose more; the ``K`` are regrown in shares
``g_l ∝ R_l = A_l − p_l``, the layer's surviving synapses (DSR's reallocation). A layer whose
pruned fraction is above the network's shrinks, one below it grows.

Common to both (:func:`plan_update`): the shares are apportioned to integers by
:func:`apportion` (largest remainder, sum exact); a layer regrows at most its free slots after the
prune, ``size − A_l + p_l`` (as sparselearning's ``max_regrowth``: the grow rule draws from every
position inactive after the prune, so a full layer can keep its count and a just-pruned synapse may
come back at weight 0), and the excess goes to the other layers in proportion to their shares
(water-filling); a layer keeps at least :data:`MIN_SYNAPSES` synapse, so none is ever emptied and
none exceeds full; a layer not ``movable`` (the engine's ``fixed``: ``dense_layers`` and
``layer_density`` in a run) neither prunes nor regrows. The prune and grow *rules* then pick which
synapses (with ``prune: magnitude`` the global prune's choice exactly; with ``prune: set`` the
global ranking sets the counts and SET picks within the layer).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

from esl_hw.errors import EslError

NONE = "none"
REDISTRIBUTE_NAMES = (NONE, "magnitude", "momentum")
#: The fewest synapses a layer keeps under redistribution (it is never emptied).
MIN_SYNAPSES = 1
T = TypeVar("T")
#: The ``ε`` of Adam's normalised momentum ``exp_avg / (√exp_avg_sq + ε)`` (sparselearning's).
ADAM_EPS = 1e-8


def check_redistribute(name: str) -> str:
    """``name`` if it is a redistribution rule; otherwise :class:`EslError` listing the known ones."""
    if name not in REDISTRIBUTE_NAMES:
        raise EslError(f"unknown redistribute rule {name!r} (known: {', '.join(REDISTRIBUTE_NAMES)})")
    return name


@dataclass(frozen=True)
class LayerState:
    """What :func:`plan_update` needs of one layer before an update.

    ``size``: possible connections; ``active``: active ones; ``movable``: False for a layer whose
    count is fixed; ``magnitudes``: ``|w|`` of the active weights in flat-index order (``magnitude`` rule);
    ``momentum``: mean ``|m|`` over the active weights (``momentum`` rule).
    """

    size: int
    active: int
    movable: bool = True
    magnitudes: torch.Tensor | None = None
    momentum: float | None = None


def apportion(total: int, weights: Sequence[float], caps: Sequence[int]) -> list[int]:
    """Integers ``n_l ≤ caps[l]`` summing to ``total``, in proportion to ``weights`` (water-filling).

    A layer whose share reaches its cap gets the cap and the rest is shared again among the others;
    the shares left are rounded down and the remainder goes to the largest fractional parts (ties:
    lowest index). Where every layer with room has weight 0 the room itself is the weight.
    """
    if total < 0 or total > sum(caps) or min(caps, default=0) < 0:
        raise ValueError(f"cannot apportion {total} over caps {list(caps)}")
    if any(not math.isfinite(weight) or weight < 0 for weight in weights):
        raise ValueError(f"weights must be finite and non-negative, got {list(weights)}")
    counts = [0] * len(caps)
    remaining = total
    while remaining:
        open_ = [i for i, cap in enumerate(caps) if counts[i] < cap]
        share = [weights[i] for i in open_]
        if sum(share) <= 0:
            share = [caps[i] - counts[i] for i in open_]
        ideal = {i: remaining * part / sum(share) for i, part in zip(open_, share, strict=True)}
        full = [i for i in open_ if ideal[i] >= caps[i] - counts[i]]
        if full:
            for i in full:
                remaining -= caps[i] - counts[i]
                counts[i] = caps[i]
            continue
        for i in open_:
            counts[i] += math.floor(ideal[i])
            remaining -= math.floor(ideal[i])
        for i in sorted(open_, key=lambda i: (math.floor(ideal[i]) - ideal[i], i)):
            if remaining and counts[i] < caps[i]:
                counts[i] += 1
                remaining -= 1
    return counts


def smallest_counts(magnitudes: Sequence[torch.Tensor], total: int, caps: Sequence[int]) -> list[int]:
    """Per layer, how many of the ``total`` smallest values over all ``magnitudes`` it holds.

    The values are ranked together (ties: layer order, then position); a layer contributes at most
    ``caps[l]``, its further values are passed over. ``total`` must not exceed ``Σ caps``.
    """
    if total > sum(caps):
        raise ValueError(f"cannot take {total} over caps {list(caps)}")
    values = torch.cat([values.detach().reshape(-1).float().cpu() for values in magnitudes])
    layer = torch.cat([torch.full((len(values),), i) for i, values in enumerate(magnitudes)])
    layer = layer[torch.sort(values, stable=True).indices]
    rank = torch.empty_like(layer)
    for index in range(len(magnitudes)):
        chosen = layer == index
        rank[chosen] = torch.arange(int(chosen.sum()))
    taken = layer[rank < torch.tensor(list(caps), dtype=torch.long)[layer]][:total]
    return torch.bincount(taken, minlength=len(magnitudes)).tolist()


def plan_update(rule: str, fraction: float, layers: Sequence[LayerState]) -> tuple[list[int], list[int]]:
    """``(pruned, grown)`` per layer for one update with drop fraction ``fraction`` by ``rule``.

    ``Σ pruned == Σ grown``; a layer keeps at least :data:`MIN_SYNAPSES` (or what it has) and regrows
    at most its free slots after the prune, ``size − active + pruned``; layers not ``movable`` get 0
    and 0 (see the module docstring).
    """
    if check_redistribute(rule) == NONE:
        raise ValueError("redistribute 'none' keeps each layer's count: the engine prunes per layer")
    spare = [max(0, layer.active - MIN_SYNAPSES) if layer.movable else 0 for layer in layers]
    if rule == "magnitude":
        wanted = round(fraction * sum(layer.active for layer in layers if layer.movable))
        empty = torch.zeros(0)
        magnitudes = [_need(layer.magnitudes, "magnitudes") if layer.movable else empty for layer in layers]
        pruned = smallest_counts(magnitudes, min(wanted, sum(spare)), spare)
        shares = [float(layer.active - count) for layer, count in zip(layers, pruned, strict=True)]
    else:
        pruned = [min(round(fraction * layer.active), cap) for layer, cap in zip(layers, spare, strict=True)]
        shares = [_need(layer.momentum, "momentum") if layer.movable else 0.0 for layer in layers]
    shares = [share if layer.movable else 0.0 for share, layer in zip(shares, layers, strict=True)]
    room = [
        layer.size - layer.active + count if layer.movable else 0
        for layer, count in zip(layers, pruned, strict=True)
    ]
    return pruned, apportion(sum(pruned), shares, room)


def _need(value: T | None, what: str) -> T:
    if value is None:
        raise ValueError(f"a movable layer needs its {what} for this rule")
    return value


def momentum_statistic(optimizer: torch.optim.Optimizer | None, weight: torch.Tensor) -> torch.Tensor | None:
    """sparselearning's momentum of ``weight``: SGD's ``momentum_buffer``, Adam's
    ``exp_avg / (√exp_avg_sq + 1e-8)``, else the first tensor ``exp_avg``; None when there is none."""
    state = {} if optimizer is None else optimizer.state.get(weight, {})
    value = state.get("momentum_buffer")
    if torch.is_tensor(value) and value.shape == weight.shape:
        return value
    first, second = state.get("exp_avg"), state.get("exp_avg_sq")
    if not (torch.is_tensor(first) and first.shape == weight.shape):
        return None
    if torch.is_tensor(second) and second.shape == weight.shape:
        return first / (second.sqrt() + ADAM_EPS)
    return first


def layer_state(
    rule: str,
    weight: torch.Tensor,
    mask: torch.Tensor,
    movable: bool,
    optimizer: torch.optim.Optimizer | None = None,
    name: str = "layer",
) -> LayerState:
    """The :class:`LayerState` of one layer (only the statistic ``rule`` reads is computed)."""
    flat_mask = mask.view(-1)
    active = int(flat_mask.sum())
    magnitudes = momentum = None
    if movable and rule == "magnitude":
        magnitudes = weight.detach().view(-1)[flat_mask].abs()
    elif movable and rule == "momentum":
        statistic = momentum_statistic(optimizer, weight)
        if statistic is None:
            raise EslError(
                f"{name}: redistribute 'momentum' needs optimizer momentum (SGD with momentum or Adam) "
                "after at least one optimizer step"
            )
        momentum = float(statistic.view(-1)[flat_mask].abs().mean()) if active else 0.0
        if not math.isfinite(momentum):
            raise EslError(f"{name}: redistribute 'momentum' got a non-finite mean momentum {momentum}")
    return LayerState(flat_mask.numel(), active, movable, magnitudes, momentum)
