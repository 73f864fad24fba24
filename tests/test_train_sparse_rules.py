"""Tests for esl_hw.train.sparse_rules: densities (ER/ERK/uniform, overrides), schedule, rules."""

from __future__ import annotations

import math

import pytest
import torch

from esl_hw.errors import EslError
from esl_hw.train.sparse import SparseEngine
from esl_hw.train.sparse_rules import (
    GROW_RULES,
    PRUNE_RULES,
    GrowContext,
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


def _er(shape: tuple[int, int]) -> float:
    return (shape[0] + shape[1]) / (shape[0] * shape[1])


def test_er_densities_cap_dense_layers_and_meet_the_budget() -> None:
    shapes = [(784, 128), (128, 10)]
    densities = er_densities(shapes, 0.1)
    sizes = [a * b for a, b in shapes]
    assert densities[1] == 1.0  # ER would exceed 1 for the small output layer
    total = sum(d * s for d, s in zip(densities, sizes, strict=True))
    assert total == pytest.approx(0.1 * sum(sizes))
    assert densities[0] == pytest.approx((0.1 * sum(sizes) - sizes[1]) / sizes[0])


def test_er_densities_are_proportional_to_the_er_factor() -> None:
    shapes = [(300, 200), (200, 100), (100, 50)]
    densities = er_densities(shapes, 0.2)
    ratios = [d / _er(shape) for d, shape in zip(densities, shapes, strict=True)]
    assert ratios == pytest.approx([ratios[0]] * 3)
    sizes = [a * b for a, b in shapes]
    assert sum(d * s for d, s in zip(densities, sizes, strict=True)) == pytest.approx(0.2 * sum(sizes))


def test_er_densities_respect_dense_layers() -> None:
    shapes = [(300, 200), (200, 100)]
    assert er_densities(shapes, 0.8, dense=[0]) == pytest.approx([1.0, 0.2])
    with pytest.raises(EslError, match="too low"):
        er_densities(shapes, 0.5, dense=[0])


def test_er_from_epsilon_follows_the_formula() -> None:
    shapes = [(784, 128), (128, 10)]
    densities = er_densities_from_epsilon(shapes, 5.0)
    assert densities[0] == pytest.approx(5.0 * _er(shapes[0]))
    assert densities[1] == pytest.approx(min(1.0, 5.0 * _er(shapes[1])))
    assert er_densities_from_epsilon(shapes, 5.0, dense=[0])[0] == 1.0


def test_cosine_schedule_values() -> None:
    assert cosine_fraction(0, 0.3, 1000) == pytest.approx(0.3)
    assert cosine_fraction(500, 0.3, 1000) == pytest.approx(0.15)
    assert cosine_fraction(250, 0.3, 1000) == pytest.approx(0.15 * (1 + math.cos(math.pi / 4)))
    assert cosine_fraction(1000, 0.3, 1000) == 0.0
    assert cosine_fraction(1500, 0.3, 1000) == 0.0


def test_prune_magnitude_takes_the_smallest_magnitudes() -> None:
    weight = torch.tensor([0.5, -0.1, 0.0, 0.3, -0.05, 2.0])
    active = torch.tensor([0, 1, 3, 4, 5])  # 2 is inactive and must never be chosen
    assert sorted(prune_magnitude(weight, active, 2).tolist()) == [1, 4]


def test_prune_set_takes_each_sign_closest_to_zero() -> None:
    weight = torch.tensor([0.5, -0.1, 0.2, 0.3, -0.05, 2.0, -3.0, 0.9])
    active = torch.arange(8)
    # 5 non-negative of 8 active, count 4 -> round(2.5)=2 from positives, 2 from negatives
    chosen = sorted(prune_set(weight, active, 4).tolist())
    assert chosen == sorted([2, 3, 4, 1])


def test_grow_random_draws_distinct_candidates() -> None:
    candidates = torch.arange(10, 30)
    context = GrowContext(candidates, 7, torch.Generator().manual_seed(1), torch.zeros(40), None)
    grown = grow_random(context)
    assert len(set(grown.tolist())) == 7
    assert set(grown.tolist()) <= set(candidates.tolist())


def test_unknown_rule_names_list_the_known_ones() -> None:
    known = "known: gradient, hardware-random, momentum, random, random-unfired"
    with pytest.raises(EslError, match=f"unknown grow rule 'rigl' \\({known}\\)"):
        get_rule(GROW_RULES, "grow", "rigl")
    weight = torch.nn.Parameter(torch.ones(4, 4))
    with pytest.raises(EslError, match="known: magnitude, set"):
        SparseEngine([("w", weight)], None, [0.5], 100, prune="biggest")
    assert set(PRUNE_RULES) == {"set", "magnitude"}


def test_erk_uses_every_kernel_dimension() -> None:
    shapes = [(64, 32, 3, 3), (128, 64, 3, 3), (256, 128, 3, 3)]
    densities = scaled_densities(shapes, 0.3, "erk")
    raw = [sum(shape) / math.prod(shape) for shape in shapes]
    sizes = [math.prod(shape) for shape in shapes]
    free = [i for i, d in enumerate(densities) if d < 1.0]
    assert len(free) == 3
    ratios = [densities[i] / raw[i] for i in free]
    assert ratios == pytest.approx([ratios[0]] * len(free))
    assert sum(d * s for d, s in zip(densities, sizes, strict=True)) == pytest.approx(0.3 * sum(sizes))


def test_uniform_densities_share_the_budget_equally() -> None:
    shapes = [(300, 200), (200, 100), (100, 10)]
    assert scaled_densities(shapes, 0.2, "uniform") == pytest.approx([0.2, 0.2, 0.2])
    sizes = [math.prod(shape) for shape in shapes]
    densities = scaled_densities(shapes, 0.2, "uniform", dense=[2])
    assert densities[2] == 1.0 and densities[0] == pytest.approx(densities[1])
    assert sum(d * s for d, s in zip(densities, sizes, strict=True)) == pytest.approx(0.2 * sum(sizes))


def test_overrides_are_kept_and_the_rest_meets_the_budget() -> None:
    shapes = [(300, 200), (200, 100), (100, 10)]
    sizes = [math.prod(shape) for shape in shapes]
    densities = scaled_densities(shapes, 0.2, "er", dense=[2], overrides={1: 0.05})
    assert densities[1] == 0.05 and densities[2] == 1.0
    assert sum(d * s for d, s in zip(densities, sizes, strict=True)) == pytest.approx(0.2 * sum(sizes))
    with pytest.raises(EslError, match="layer 1 density 1.5 outside"):
        scaled_densities(shapes, 0.2, overrides={1: 1.5})
    with pytest.raises(EslError, match="no such layer"):
        scaled_densities(shapes, 0.2, overrides={7: 0.5})
    with pytest.raises(EslError, match="dense layer 3: no such layer"):
        scaled_densities(shapes, 0.2, dense=[3])
    with pytest.raises(EslError, match="unknown sparse init 'xavier'"):
        scaled_densities(shapes, 0.2, "xavier")
    for bad in (0.0, -0.1, 1.01):
        with pytest.raises(EslError, match="outside \\(0, 1\\]"):
            scaled_densities(shapes, bad)


def _context(count: int, **tensors) -> GrowContext:
    candidates = torch.tensor([0, 2, 3, 5, 6, 7])  # 1 and 4 are active
    return GrowContext(candidates, count, torch.Generator().manual_seed(0), torch.zeros(8), **tensors)


def test_grow_gradient_takes_the_largest_gradient_magnitudes() -> None:
    grad = torch.tensor([0.1, 9.0, -0.5, 0.2, 8.0, 0.0, -0.7, 0.3])  # 1 and 4 active: never chosen
    assert sorted(grow_gradient(_context(2, grad=grad)).tolist()) == [2, 6]
    tie = torch.tensor([0.5, 0.0, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0])
    assert grow_gradient(_context(2, grad=tie)).tolist() == [0, 2]  # ties: lowest index
    with pytest.raises(EslError, match="gradient growth needs the dense gradient"):
        grow_gradient(_context(2))


def test_grow_momentum_takes_the_largest_momentum_magnitudes() -> None:
    momentum = torch.tensor([-3.0, 9.0, 0.1, 2.0, 9.0, -0.2, 0.0, 1.0])
    assert sorted(grow_momentum(_context(3, momentum=momentum)).tolist()) == [0, 3, 7]
    with pytest.raises(EslError, match="momentum growth needs optimizer momentum"):
        grow_momentum(_context(1))


def test_grow_random_unfired_prefers_never_active_connections() -> None:
    ever = torch.tensor([True, True, True, False, True, False, True, True])  # unfired candidates: 3, 5
    chosen = grow_random_unfired(_context(2, ever_active=ever)).tolist()
    assert sorted(chosen) == [3, 5]
    for seed in range(5):
        context = _context(4, ever_active=ever)
        context.generator.manual_seed(seed)
        chosen = grow_random_unfired(context).tolist()
        assert len(set(chosen)) == 4 and {3, 5} <= set(chosen)
        assert set(chosen) <= {0, 2, 3, 5, 6, 7}
    one = grow_random_unfired(_context(1, ever_active=ever)).tolist()
    assert one[0] in (3, 5)


def test_random_unfired_explores_every_connection_in_the_engine() -> None:
    weight = torch.nn.Parameter(torch.randn(10, 10))
    engine = SparseEngine(
        [("w", weight)], None, [0.2], 1000, grow="random-unfired", alpha=0.5, delta_t=1, t_end=1.0
    )
    for _ in range(12):
        with torch.no_grad():
            weight.add_(torch.randn(10, 10))
        engine.step()
    assert bool(engine.ever_active[0].all())
    assert int(engine.masks[0].sum()) == 20
