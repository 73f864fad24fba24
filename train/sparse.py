"""ESL sparse engine: sparse initialisation, then periodic prune-and-regrow at constant density.

Every ``delta_t`` iterations ``t`` until ``T_end = t_end · total_iterations`` each sparse layer
drops the fraction

    α_t = α/2 · (1 + cos(π t / T_end))

of its active connections by a *prune rule* and regrows as many at inactive positions by a *grow
rule* (:mod:`esl_hw.train.sparse_rules`: SET or magnitude pruning; gradient, momentum, random or
random-unfired growth; or the chip's joint prune-and-regrow ``hardware-random``,
:mod:`esl_hw.train.hardware_rewiring`, which decides both on the integer weights). Regrown weights
start at 0 and the optimizer state at pruned and regrown positions (Adam ``exp_avg``/``exp_avg_sq``,
SGD ``momentum_buffer``: every state tensor shaped like the weight) is zeroed. Masks are applied to
the weights after every optimizer step, so the number of active connections per layer never changes
(checked at every update).

With ``redistribute`` (``magnitude`` or ``momentum``, :mod:`esl_hw.train.redistribution`) the
*global* number of active connections is kept instead, while the number pruned and regrown per layer
follows the rule, so density moves between layers; ``none`` (the default) is the per-layer update
above, unchanged.

The engine works on any model: it takes ``(name, weight)`` pairs (or :meth:`SparseEngine.from_module`
picks the linear and conv weights of a module) and the optimizer, and the training loop calls
:meth:`SparseEngine.step` right after ``optimizer.step()``, like a learning-rate scheduler. The
gradient and momentum rules need *dense* gradients: the model must not multiply its weights by the
mask in a way that blocks the gradient at inactive positions (the engine zeroes inactive weights
itself; :class:`esl_hw.train.model.LIFNet` masks with a straight-through gradient).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from esl_hw.errors import EslError
from esl_hw.rewiring import DEFAULT_SEED
from esl_hw.train.hardware_rewiring import HardwareRewiring
from esl_hw.train.redistribution import NONE, REDISTRIBUTE_NAMES, check_redistribute, layer_state, plan_update
from esl_hw.train.sparse_rules import (
    GROW_RULES,
    HARDWARE_RANDOM,
    INIT_NAMES,
    PRUNE_RULES,
    GrowContext,
    GrowRule,
    PruneRule,
    cosine_fraction,
    er_densities,
    er_densities_from_epsilon,
    get_rule,
    grow_gradient,
    grow_momentum,
    grow_random,
    grow_random_unfired,
    prune_magnitude,
    prune_set,
    scaled_densities,
)

__all__ = [
    "GROW_RULES",
    "HARDWARE_RANDOM",
    "INIT_NAMES",
    "PRUNE_RULES",
    "REDISTRIBUTE_NAMES",
    "GrowContext",
    "LayerUpdate",
    "SparseEngine",
    "UpdateStats",
    "cosine_fraction",
    "er_densities",
    "er_densities_from_epsilon",
    "get_rule",
    "grow_gradient",
    "grow_momentum",
    "grow_random",
    "grow_random_unfired",
    "prune_magnitude",
    "prune_set",
    "scaled_densities",
]

log = logging.getLogger(__name__)


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
    lanes, lfsr_seed:
        ``hardware-random`` only: lanes of the target core and the initial LFSR state.
    integer_weights:
        ``hardware-random`` only: returns the integer weights ``[n_in, n_out]`` of every layer, as
        export writes them (e.g. :meth:`esl_hw.train.model.LIFNet.integer_weights`).
    redistribute:
        ``none`` (each layer keeps its count), ``magnitude`` or ``momentum`` (the global count is kept,
        layers' counts move: :mod:`esl_hw.train.redistribution`); not with ``hardware-random``.
    fixed:
        Indices of layers whose count ``redistribute`` leaves as it is (e.g. layers kept dense).
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
        lanes: int = 1,
        lfsr_seed: int = DEFAULT_SEED,
        integer_weights: Callable[[], Sequence[torch.Tensor]] | None = None,
        redistribute: str = NONE,
        fixed: Sequence[int] = (),
    ) -> None:
        if len(densities) != len(params):
            raise ValueError(f"{len(params)} weights but {len(densities)} densities")
        if delta_t < 1 or not 0.0 < t_end <= 1.0 or not 0.0 <= alpha <= 1.0:
            raise EslError(f"bad ESL schedule: delta_t={delta_t}, t_end={t_end}, alpha={alpha}")
        for (name, _), density in zip(params, densities, strict=True):
            if not 0.0 < density <= 1.0:
                raise EslError(f"{name}: density {density} outside (0, 1]")
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
            chosen = self._synchronise(torch.randperm(weight.numel(), generator=self.generator)[:target])
            mask.zero_()
            mask.view(-1)[chosen.to(mask.device)] = True
        self.ever_active = [mask.clone() for mask in self.masks]
        self.integer_weights = integer_weights
        self.redistribute = check_redistribute(redistribute)
        if redistribute != NONE and grow == HARDWARE_RANDOM:
            raise EslError(
                f"redistribute {redistribute!r} moves synapses between layers, but grow rule "
                f"{HARDWARE_RANDOM!r} keeps each layer's synapse count (the chip's rewiring unit)"
            )
        for index in fixed:
            if not 0 <= index < len(self.weights):
                raise EslError(f"fixed layer {index}: no such layer (0..{len(self.weights) - 1})")
        self.movable = [index not in fixed for index in range(len(self.weights))]
        self.rewiring = self._hardware_rewiring(grow, prune, lanes, lfsr_seed)
        self.apply_masks()

    def _hardware_rewiring(self, grow: str, prune: str, lanes: int, seed: int) -> HardwareRewiring | None:
        """The ``hardware-random`` state, after checking what the rule needs; None for other rules."""
        if grow != HARDWARE_RANDOM:
            return None
        if prune != "magnitude":
            raise EslError(
                f"grow rule {HARDWARE_RANDOM!r} prunes the smallest integer |w| itself: "
                f"it needs prune rule 'magnitude', got {prune!r}"
            )
        if self.integer_weights is None:
            raise EslError(f"grow rule {HARDWARE_RANDOM!r} needs integer_weights (the quantised weights)")
        return HardwareRewiring(self.masks, lanes, seed)

    @classmethod
    def from_module(
        cls,
        module: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None,
        total_iterations: int,
        *,
        density: float,
        init: str = "er",
        dense: Sequence[str] = (),
        overrides: Mapping[str, float] | None = None,
        **schedule: Any,
    ) -> SparseEngine:
        """An engine over the weights of every ``Linear`` and ``Conv1d/2d/3d`` of ``module``.

        ``dense`` names layers (module names, e.g. ``"fc2"``) kept dense (never rewired: they are left
        out of the engine); ``overrides`` maps module names to fixed densities; the other layers share
        the remaining budget by ``init`` (``er``, ``erk`` or ``uniform``) so that the overall density of
        all these layers is ``density``. ``schedule`` goes to the constructor (``prune``, ``grow``,
        ``alpha``, ``delta_t``, ``t_end``, ``generator``).
        """
        kinds = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
        layers = [(name, sub.weight) for name, sub in module.named_modules() if isinstance(sub, kinds)]
        names = [name for name, _ in layers]
        for name in [*dense, *(overrides or {})]:
            if name not in names:
                raise EslError(f"no linear or conv layer named {name!r} (layers: {', '.join(names)})")
        index = {name: i for i, name in enumerate(names)}
        densities = scaled_densities(
            [tuple(weight.shape) for _, weight in layers],
            density,
            init,
            dense=[index[name] for name in dense],
            overrides={index[name]: value for name, value in (overrides or {}).items()},
        )
        chosen = [i for i, name in enumerate(names) if name not in dense]
        return cls(
            [(f"{names[i]}.weight", layers[i][1]) for i in chosen],
            optimizer,
            [densities[i] for i in chosen],
            total_iterations,
            **schedule,
        )

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
            weight.mul_(mask.view(torch.uint8))  # same values as by the bool mask, several times faster

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
        """Prune ``α_t`` of each layer's active connections and regrow as many elsewhere (with
        ``redistribute``: as many over all layers, :meth:`_update_redistributed`)."""
        fraction = self.fraction()
        if self.redistribute != NONE:
            return self._update_redistributed(fraction)
        integers = None if self.rewiring is None else list(self.integer_weights())
        layers = []
        for index, (name, mask) in enumerate(zip(self.names, self.masks, strict=True)):
            flat_mask = mask.view(-1)
            active = int(flat_mask.sum())
            count = min(round(fraction * active), flat_mask.numel() - active)
            pruned = grown = torch.zeros(0, dtype=torch.long)
            if count and integers is not None:
                pruned, grown = self.rewiring.rewire(index, integers[index], count)
            elif count:
                pruned, grown = self._prune_and_grow(index, count)
            if count:
                self._rewire(index, pruned, grown)
            layers.append(self._layer_update(index, len(pruned), len(grown)))
            if layers[-1].active != active:
                raise RuntimeError(f"{name}: density changed from {active} to {layers[-1].active}")
        stats = UpdateStats(self.iteration, fraction, tuple(layers))
        log.debug("ESL update %s", stats)
        return stats

    @torch.no_grad()
    def _update_redistributed(self, fraction: float) -> UpdateStats:
        """Prune and regrow per layer as :func:`~esl_hw.train.redistribution.plan_update` says: the
        total number of active connections is kept exactly, each layer's moves."""
        states = [
            layer_state(self.redistribute, weight, mask, movable, self.optimizer, name)
            for name, weight, mask, movable in zip(
                self.names, self.weights, self.masks, self.movable, strict=True
            )
        ]
        pruned_counts, grown_counts = plan_update(self.redistribute, fraction, states)
        plan = self._synchronise(torch.tensor([*pruned_counts, *grown_counts], dtype=torch.long)).tolist()
        pruned_counts, grown_counts = plan[: len(states)], plan[len(states) :]
        layers = []
        for index, (name, state) in enumerate(zip(self.names, states, strict=True)):
            pruned, grown = pruned_counts[index], grown_counts[index]
            if pruned or grown:
                self._rewire(index, *self._prune_and_grow(index, pruned, grown))
            layers.append(self._layer_update(index, pruned, grown))
            if layers[-1].active != state.active - pruned + grown:
                raise RuntimeError(
                    f"{name}: {layers[-1].active} active after pruning {pruned}, growing {grown}"
                )
        before, after = sum(state.active for state in states), sum(layer.active for layer in layers)
        if after != before:
            raise RuntimeError(f"redistribution changed the connection count from {before} to {after}")
        stats = UpdateStats(self.iteration, fraction, tuple(layers))
        log.debug("ESL update %s", stats)
        return stats

    def _rewire(self, index: int, pruned: torch.Tensor, grown: torch.Tensor) -> None:
        """Deactivate the flat positions ``pruned`` of layer ``index``, activate ``grown`` (after: a
        position in both ends active), zero their weights and optimizer state."""
        flat_mask, weight = self.masks[index].view(-1), self.weights[index]
        pruned, grown = pruned.to(flat_mask.device), grown.to(flat_mask.device)
        flat_mask[pruned] = False
        flat_mask[grown] = True
        weight.data.view(-1)[pruned] = 0.0
        weight.data.view(-1)[grown] = 0.0
        self._reset_optimizer_state(weight, torch.cat([pruned, grown]))

    def _layer_update(self, index: int, pruned: int, grown: int) -> LayerUpdate:
        """Record layer ``index`` after an update (``ever_active`` takes in its mask first)."""
        mask = self.masks[index]
        self.ever_active[index] |= mask
        active = int(mask.sum())
        return LayerUpdate(
            name=self.names[index],
            density=active / mask.numel(),
            active=active,
            pruned=pruned,
            grown=grown,
            ever_active=int(self.ever_active[index].sum()),
        )

    def _prune_and_grow(
        self, index: int, count: int, grow_count: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat indices ``(pruned, grown)`` of layer ``index`` by the prune and grow rules: ``count``
        pruned; ``count`` grown at positions inactive before the update, or with ``grow_count``
        (redistribution) that many at positions inactive after the prune (a pruned one may return)."""
        weight, flat_mask = self.weights[index], self.masks[index].view(-1)
        flat_weight = weight.data.view(-1)
        active = torch.nonzero(flat_mask).squeeze(1)
        pruned = self.prune_rule(flat_weight, active, count)
        inactive = ~flat_mask
        if grow_count is not None:
            inactive[pruned.to(inactive.device)] = True
        context = GrowContext(
            candidates=torch.nonzero(inactive).squeeze(1),
            count=count if grow_count is None else grow_count,
            generator=self.generator,
            weight=flat_weight,
            grad=None if weight.grad is None else weight.grad.view(-1),
            momentum=self._momentum(weight),
            ever_active=self.ever_active[index].view(-1),
            name=self.names[index],
        )
        grown = self.grow_rule(context)
        return self._synchronise(pruned), self._synchronise(grown)

    @staticmethod
    def _synchronise(positions: torch.Tensor) -> torch.Tensor:
        """Under ``torch.distributed``, every rank takes rank 0's choice of ``positions``.

        With DDP the gradients, hence weights, momenta and random streams, already agree on every
        rank, so this changes nothing; it guarantees identical masks even if a rule saw rank-local
        data. Every rank prunes and grows the same number, so the tensors have the same length.
        """
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            positions = positions.contiguous().clone()
            torch.distributed.broadcast(positions, src=0)
        return positions

    def _momentum(self, weight: torch.Tensor) -> torch.Tensor | None:
        """The optimizer's first moment of ``weight`` (flat), or None when it keeps none."""
        if self.optimizer is None:
            return None
        state = self.optimizer.state.get(weight, {})
        for key in ("momentum_buffer", "exp_avg"):
            value = state.get(key)
            if torch.is_tensor(value) and value.shape == weight.shape:
                return value.view(-1)
        return None

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
            **({} if self.rewiring is None else {"rewiring": self.rewiring.state_dict()}),
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
        if self.rewiring is not None:
            if "rewiring" not in state:
                raise EslError(f"sparse state has no {HARDWARE_RANDOM!r} state (saved with another rule)")
            self.rewiring.load_state_dict(state["rewiring"])
            for index, mask in enumerate(self.masks):
                self.rewiring.check(index, mask)
        self.apply_masks()
