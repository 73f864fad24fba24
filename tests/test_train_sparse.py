"""Tests for esl_hw.train.sparse: ER densities, schedule, rules, constant density, optimizer reset, resume."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from esl_hw.errors import EslError
from esl_hw.train.sparse import (
    GROW_RULES,
    PRUNE_RULES,
    GrowContext,
    SparseEngine,
    cosine_fraction,
    er_densities,
    er_densities_from_epsilon,
    get_rule,
    grow_random,
    prune_magnitude,
    prune_set,
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
    with pytest.raises(EslError, match="unknown grow rule 'momentum' \\(known: random\\)"):
        get_rule(GROW_RULES, "grow", "momentum")
    weight = torch.nn.Parameter(torch.ones(4, 4))
    with pytest.raises(EslError, match="known: magnitude, set"):
        SparseEngine([("w", weight)], None, [0.5], 100, prune="biggest")
    assert set(PRUNE_RULES) == {"set", "magnitude"}


def _setup(optimizer_name: str = "adam", seed: int = 0, density: float = 0.2):
    torch.manual_seed(seed)
    weights = [torch.nn.Parameter(torch.randn(40, 30)), torch.nn.Parameter(torch.randn(30, 10))]
    if optimizer_name == "adam":
        optimizer = torch.optim.Adam(weights, lr=0.01)
    else:
        optimizer = torch.optim.SGD(weights, lr=0.01, momentum=0.9)
    engine = SparseEngine(
        [("a", weights[0]), ("b", weights[1])],
        optimizer,
        [density, 2 * density],
        total_iterations=100,
        alpha=0.3,
        delta_t=5,
        t_end=0.75,
        generator=torch.Generator().manual_seed(seed),
    )
    return weights, optimizer, engine


def _train_step(weights, optimizer, engine):
    data = torch.randn(8, 40)
    loss = ((data @ weights[0]).tanh() @ weights[1]).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return engine.step()


def test_density_stays_constant_and_weights_follow_the_masks() -> None:
    weights, optimizer, engine = _setup()
    counts = [int(mask.sum()) for mask in engine.masks]
    assert counts == [round(0.2 * 1200), round(0.4 * 300)]
    updates = []
    for _ in range(100):
        stats = _train_step(weights, optimizer, engine)
        if stats is not None:
            updates.append(stats)
        assert [int(mask.sum()) for mask in engine.masks] == counts
        for weight, mask in zip(weights, engine.masks, strict=True):
            assert not weight[~mask].any()
    # updates every 5 iterations strictly before T_end = 75
    assert [u.iteration for u in updates] == list(range(5, 75, 5))
    for update in updates:
        for layer, count in zip(update.layers, counts, strict=True):
            assert layer.active == count
            assert layer.pruned == layer.grown == round(update.fraction * count)
            assert layer.ever_active >= count
    assert updates[0].fraction == pytest.approx(cosine_fraction(5, 0.3, 75))
    assert updates[-1].layers[0].ever_active > counts[0]


@pytest.mark.parametrize("optimizer_name", ["adam", "sgd"])
def test_regrown_weights_are_zero_and_optimizer_state_is_reset(optimizer_name: str) -> None:
    weights, optimizer, engine = _setup(optimizer_name)
    for _ in range(3):
        _train_step(weights, optimizer, engine)
    before = [mask.clone() for mask in engine.masks]
    for weight in weights:
        with torch.no_grad():
            weight.add_(torch.where(weight != 0, torch.sign(weight) * 0.01, 0.0))  # no exact zeros left
        for value in optimizer.state[weight].values():
            if torch.is_tensor(value) and value.shape == weight.shape:
                value.fill_(1.0)
    engine.update()
    for weight, old, new in zip(weights, before, engine.masks, strict=True):
        grown, pruned = new & ~old, old & ~new
        assert grown.any() and pruned.any()
        assert (weight[grown] == 0).all()
        assert (weight[pruned] == 0).all()
        kept = old & new
        assert (weight[kept] != 0).all()
        states = [
            v for v in optimizer.state[weight].values() if torch.is_tensor(v) and v.shape == weight.shape
        ]
        assert states
        for value in states:
            assert (value[grown] == 0).all()
            assert (value[pruned] == 0).all()
            assert (value[kept] == 1).all()


def test_prune_removes_the_smallest_active_weights() -> None:
    weights, optimizer, engine = _setup()
    engine.prune_rule = PRUNE_RULES["magnitude"]
    before_mask = engine.masks[0].clone()
    before = weights[0].detach().clone()
    engine.update()
    pruned = before_mask & ~engine.masks[0]
    kept = before_mask & engine.masks[0]
    assert before[pruned].abs().max() <= before[kept].abs().min()


def test_state_dict_round_trip_resumes_identically() -> None:
    weights_a, optimizer_a, engine_a = _setup(seed=1)
    for _ in range(12):
        _train_step(weights_a, optimizer_a, engine_a)
    state = engine_a.state_dict()
    weights_b, optimizer_b, engine_b = _setup(seed=2)
    with torch.no_grad():
        for a, b in zip(weights_a, weights_b, strict=True):
            b.copy_(a)
    optimizer_b.load_state_dict(copy.deepcopy(optimizer_a.state_dict()))
    engine_b.load_state_dict(state)
    assert engine_b.iteration == 12
    for a, b in zip(engine_a.masks, engine_b.masks, strict=True):
        assert torch.equal(a, b)
    torch.manual_seed(5)
    for _ in range(10):
        _train_step(weights_a, optimizer_a, engine_a)
    torch.manual_seed(5)
    for _ in range(10):
        _train_step(weights_b, optimizer_b, engine_b)
    for a, b in zip(
        engine_a.masks + engine_a.ever_active, engine_b.masks + engine_b.ever_active, strict=True
    ):
        assert torch.equal(a, b)


def test_load_state_dict_refuses_other_layers() -> None:
    _, _, engine = _setup()
    state = engine.state_dict()
    state["names"] = ["x", "y"]
    with pytest.raises(EslError, match="sparse state is for layers"):
        engine.load_state_dict(state)


def test_same_seed_same_masks_and_masks_updated_in_place() -> None:
    masks = [torch.zeros(40, 30, dtype=torch.bool), torch.zeros(30, 10, dtype=torch.bool)]
    weights = [torch.nn.Parameter(torch.randn(40, 30)), torch.nn.Parameter(torch.randn(30, 10))]
    engine = SparseEngine(
        list(zip("ab", weights, strict=True)),
        None,
        [0.2, 0.4],
        100,
        delta_t=1,
        generator=torch.Generator().manual_seed(0),
        masks=masks,
    )
    _, _, reference = _setup(seed=0)
    for own, mask, other in zip(masks, engine.masks, reference.masks, strict=True):
        assert own is mask
        assert torch.equal(own, other)
    engine.update()
    assert engine.masks[0] is masks[0]
