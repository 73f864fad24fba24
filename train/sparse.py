"""ESL sparse engine: Erdős–Rényi initialisation, then periodic prune-and-regrow at constant density.

Every ``delta_t`` iterations ``t`` until ``T_end = t_end · total_iterations`` each sparse layer
drops the fraction

    α_t = α/2 · (1 + cos(π t / T_end))

of its active connections by a *prune rule* and regrows as many at inactive positions by a *grow
rule*. Regrown weights start at 0 and the optimizer state at pruned and regrown positions (Adam
``exp_avg``/``exp_avg_sq``, SGD ``momentum_buffer``: every state tensor shaped like the weight) is
zeroed. Masks are applied to the weights after every optimizer step, so the number of active
connections per layer never changes.

ER densities: ``density_l = ε · Σ shape_l / Π shape_l`` (``(n_in + n_out)/(n_in · n_out)`` for a
linear layer), with ε chosen so that ``Σ_l density_l · size_l = density · Σ_l size_l``; a layer
whose ER density would exceed 1 is made dense and ε recomputed (RigL's ER scaling).

The engine works on any model: it takes ``(name, weight)`` pairs and the optimizer, and the training
loop calls :meth:`SparseEngine.step` right after ``optimizer.step()``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from esl_hw.errors import EslError

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- ER densities and the schedule


def _er_raw(shape: Sequence[int]) -> float:
    return sum(shape) / math.prod(shape)


def er_densities(shapes: Sequence[Sequence[int]], density: float, dense: Sequence[int] = ()) -> list[float]:
    """Per-layer densities whose connection total is ``density · Σ sizes`` (ER scaling, capped at 1)."""
    if not 0.0 < density <= 1.0:
        raise EslError(f"density {density} outside (0, 1]")
    sizes = [math.prod(shape) for shape in shapes]
    dense_set = set(dense)
    while True:
        budget = density * sum(sizes) - sum(sizes[i] for i in dense_set)
        divisor = sum(_er_raw(shapes[i]) * sizes[i] for i in range(len(shapes)) if i not in dense_set)
        if divisor == 0:
            break
        if budget <= 0:
            raise EslError(f"density {density} is too low for the dense layers {sorted(dense_set)}")
        epsilon = budget / divisor
        over = [i for i in range(len(shapes)) if i not in dense_set and epsilon * _er_raw(shapes[i]) > 1]
        if not over:
            break
        dense_set.update(over)
    return [1.0 if i in dense_set else min(1.0, epsilon * _er_raw(shapes[i])) for i in range(len(shapes))]


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


# ---------------------------------------------------------------- prune and grow rules


def prune_magnitude(weight: torch.Tensor, active: torch.Tensor, count: int) -> torch.Tensor:
    """The ``count`` active positions of smallest ``|w|`` (ties: lowest flat index first)."""
    order = torch.sort(weight[active].abs(), stable=True).indices
    return active[order[:count]]


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
    pos_order = torch.sort(weight[positive], stable=True).indices[:from_positive]
    neg_order = torch.sort(-weight[negative], stable=True).indices[:from_negative]
    return torch.cat([positive[pos_order], negative[neg_order]])


@dataclass
class GrowContext:
    """What a grow rule may look at: inactive ``candidates`` (flat indices) and the layer's tensors."""

    candidates: torch.Tensor
    count: int
    generator: torch.Generator
    weight: torch.Tensor
    grad: torch.Tensor | None


def grow_random(context: GrowContext) -> torch.Tensor:
    """``count`` candidates drawn uniformly without replacement."""
    order = torch.randperm(len(context.candidates), generator=context.generator)
    return context.candidates[order[: context.count]]


PruneRule = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]
GrowRule = Callable[[GrowContext], torch.Tensor]
PRUNE_RULES: dict[str, PruneRule] = {"set": prune_set, "magnitude": prune_magnitude}
GROW_RULES: dict[str, GrowRule] = {"random": grow_random}


def get_rule(registry: dict[str, Any], kind: str, name: str) -> Any:
    """Look ``name`` up in ``registry``; an unknown name raises :class:`EslError` listing the known ones."""
    if name not in registry:
        raise EslError(f"unknown {kind} rule {name!r} (known: {', '.join(sorted(registry))})")
    return registry[name]


# ---------------------------------------------------------------- the engine


@dataclass(frozen=True)
class LayerUpdate:
    """One layer's part of an update: density after it, connections pruned and grown, ever active."""

    name: str
    density: float
    active: int
    pruned: int
    grown: int
    ever_active: int


@dataclass(frozen=True)
class UpdateStats:
    """One prune-and-regrow update at ``iteration`` with drop fraction ``fraction``."""

    iteration: int
    fraction: float
    layers: tuple[LayerUpdate, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "fraction": self.fraction,
            "layers": [vars(layer) for layer in self.layers],
        }


class SparseEngine:
    """Masks for a list of weights, kept at constant density and rewired by ESL.

    Parameters
    ----------
    params:
        ``(name, weight)`` pairs of the sparse layers.
    optimizer:
        The optimizer that updates them; its state is zeroed where connections change.
    densities:
        Target density per layer (see :func:`er_densities`).
    total_iterations:
        Optimizer steps in the whole run; ``t_end`` is a fraction of it.
    prune, grow:
        Rule names in :data:`PRUNE_RULES` and :data:`GROW_RULES`.
    alpha, delta_t, t_end:
        Initial drop fraction, iterations between updates, fraction of training with updates.
    generator:
        Random source for masks and random growth (deterministic runs).
    masks:
        Existing bool tensors (e.g. a model's mask buffers) to hold the masks, updated in place.
    """

    def __init__(
        self,
        params: Sequence[tuple[str, torch.nn.Parameter]],
        optimizer: torch.optim.Optimizer | None,
        densities: Sequence[float],
        total_iterations: int,
        *,
        prune: str = "set",
        grow: str = "random",
        alpha: float = 0.3,
        delta_t: int = 100,
        t_end: float = 0.75,
        generator: torch.Generator | None = None,
        masks: Sequence[torch.Tensor] | None = None,
    ) -> None:
        if len(densities) != len(params):
            raise ValueError(f"{len(params)} weights but {len(densities)} densities")
        if delta_t < 1 or not 0.0 < t_end <= 1.0 or not 0.0 <= alpha <= 1.0:
            raise EslError(f"bad ESL schedule: delta_t={delta_t}, t_end={t_end}, alpha={alpha}")
        self.names = [name for name, _ in params]
        self.weights = [weight for _, weight in params]
        self.optimizer = optimizer
        self.prune_rule: PruneRule = get_rule(PRUNE_RULES, "prune", prune)
        self.grow_rule: GrowRule = get_rule(GROW_RULES, "grow", grow)
        self.alpha, self.delta_t = alpha, delta_t
        self.end_iteration = t_end * total_iterations
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.iteration = 0
        self.targets = [max(1, round(d * w.numel())) for d, w in zip(densities, self.weights, strict=True)]
        if masks is None:
            masks = [torch.zeros_like(w, dtype=torch.bool) for w in self.weights]
        self.masks = list(masks)
        for mask, weight, target in zip(self.masks, self.weights, self.targets, strict=True):
            chosen = torch.randperm(weight.numel(), generator=self.generator)[:target]
            mask.zero_()
            mask.view(-1)[chosen] = True
        self.ever_active = [mask.clone() for mask in self.masks]
        self.apply_masks()

    # ------------------------------------------------------------ queries

    def densities(self) -> list[float]:
        return [float(mask.sum()) / mask.numel() for mask in self.masks]

    def overall_density(self) -> float:
        return sum(int(mask.sum()) for mask in self.masks) / sum(mask.numel() for mask in self.masks)

    def fraction(self) -> float:
        """Drop fraction ``α_t`` at the current iteration."""
        return cosine_fraction(self.iteration, self.alpha, self.end_iteration)

    # ------------------------------------------------------------ training-time calls

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Zero every inactive weight."""
        for mask, weight in zip(self.masks, self.weights, strict=True):
            weight.mul_(mask)

    def step(self) -> UpdateStats | None:
        """Advance one iteration (call after ``optimizer.step()``); rewire when it is due."""
        self.iteration += 1
        stats = None
        if self.iteration % self.delta_t == 0 and self.iteration < self.end_iteration:
            stats = self.update()
        self.apply_masks()
        return stats

    @torch.no_grad()
    def update(self) -> UpdateStats:
        """Prune ``α_t`` of each layer's active connections and regrow as many elsewhere."""
        fraction = self.fraction()
        layers = []
        for index, (name, weight, mask) in enumerate(zip(self.names, self.weights, self.masks, strict=True)):
            flat_mask, flat_weight = mask.view(-1), weight.data.view(-1)
            active = torch.nonzero(flat_mask).squeeze(1)
            inactive = torch.nonzero(~flat_mask).squeeze(1)
            count = min(round(fraction * len(active)), len(inactive))
            pruned = self.prune_rule(flat_weight, active, count) if count else active[:0]
            grown = active[:0]
            if count:
                grad = None if weight.grad is None else weight.grad.view(-1)
                context = GrowContext(inactive, count, self.generator, flat_weight, grad)
                grown = self.grow_rule(context)
                flat_mask[pruned] = False
                flat_mask[grown] = True
                flat_weight[pruned] = 0.0
                flat_weight[grown] = 0.0
                self._reset_optimizer_state(weight, torch.cat([pruned, grown]))
            self.ever_active[index] |= mask
            if int(flat_mask.sum()) != len(active):
                raise RuntimeError(f"{name}: density changed from {len(active)} to {int(flat_mask.sum())}")
            layers.append(
                LayerUpdate(
                    name=name,
                    density=len(active) / flat_mask.numel(),
                    active=len(active),
                    pruned=len(pruned),
                    grown=len(grown),
                    ever_active=int(self.ever_active[index].sum()),
                )
            )
        stats = UpdateStats(self.iteration, fraction, tuple(layers))
        log.debug("ESL update %s", stats)
        return stats

    def _reset_optimizer_state(self, weight: torch.Tensor, positions: torch.Tensor) -> None:
        if self.optimizer is None:
            return
        for value in self.optimizer.state.get(weight, {}).values():
            if torch.is_tensor(value) and value.shape == weight.shape:
                value.view(-1)[positions] = 0

    # ------------------------------------------------------------ resume

    def state_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "iteration": self.iteration,
            "masks": [mask.clone() for mask in self.masks],
            "ever_active": [mask.clone() for mask in self.ever_active],
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore masks (in place), counters and the random state; weights are masked again."""
        if list(state["names"]) != self.names:
            raise EslError(f"sparse state is for layers {state['names']}, not {self.names}")
        for mask, ever, saved, saved_ever in zip(
            self.masks, self.ever_active, state["masks"], state["ever_active"], strict=True
        ):
            if saved.shape != mask.shape:
                raise EslError(f"sparse state mask {tuple(saved.shape)} does not fit {tuple(mask.shape)}")
            mask.copy_(saved)
            ever.copy_(saved_ever)
        self.iteration = int(state["iteration"])
        self.generator.set_state(state["generator"])
        self.apply_masks()
