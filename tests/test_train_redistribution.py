"""Tests for esl_hw.train.redistribution: the per-layer prune/regrow counts of ``magnitude`` and
``momentum`` keep the global count, follow their rule, respect the caps and the floor."""

from __future__ import annotations

import random

import pytest
import torch

from esl_hw.errors import EslError
from esl_hw.train.redistribution import (
    MIN_SYNAPSES,
    LayerState,
    apportion,
    check_redistribute,
    layer_state,
    momentum_statistic,
    plan_update,
    smallest_counts,
)


def test_apportion_is_proportional_exact_and_hands_the_excess_on() -> None:
    assert apportion(10, [1.0, 1.0], [10, 10]) == [5, 5]
    assert apportion(10, [3.0, 1.0], [10, 10]) == [8, 2]  # 7.5 and 2.5: ties to the lowest index
    # layer 0 wants 90 but has room for 20: the 70 go to the others, in proportion 2 : 1
    assert apportion(100, [9.0, 0.6, 0.3], [20, 100, 100]) == [20, 53, 27]
    assert apportion(7, [0.0, 0.0, 0.0], [1, 2, 4]) == [1, 2, 4]  # no weight: by room
    assert apportion(3, [0.0, 1.0], [5, 1]) == [2, 1]  # the zero-weight layer takes what is left
    assert apportion(0, [1.0, 2.0], [0, 0]) == [0, 0]
    with pytest.raises(ValueError, match="cannot apportion 5"):
        apportion(5, [1.0, 1.0], [2, 2])
    with pytest.raises(ValueError, match="finite and non-negative"):
        apportion(1, [float("nan"), 1.0], [2, 2])


def test_apportion_invariants_over_random_cases() -> None:
    rng = random.Random(0)
    for _ in range(500):
        n = rng.randint(1, 6)
        caps = [rng.randint(0, 50) for _ in range(n)]
        weights = [rng.choice([0.0, rng.random(), 10 * rng.random()]) for _ in range(n)]
        total = rng.randint(0, sum(caps))
        counts = apportion(total, weights, caps)
        assert sum(counts) == total
        assert all(0 <= count <= cap for count, cap in zip(counts, caps, strict=True))


def test_smallest_counts_ranks_all_layers_together_within_caps() -> None:
    magnitudes = [torch.tensor([0.1, 0.5, 0.9]), torch.tensor([0.2, 0.3]), torch.tensor([0.05])]
    assert smallest_counts(magnitudes, 3, [3, 2, 1]) == [1, 1, 1]  # 0.05, 0.1, 0.2
    assert smallest_counts(magnitudes, 4, [3, 2, 1]) == [1, 2, 1]
    assert smallest_counts(magnitudes, 3, [3, 1, 0]) == [2, 1, 0]  # 0.05 and 0.3 passed over
    ties = [torch.tensor([1.0, 1.0]), torch.tensor([1.0])]
    assert smallest_counts(ties, 2, [2, 1]) == [2, 0]  # ties: layer order first
    with pytest.raises(ValueError, match="cannot take 3"):
        smallest_counts(ties, 3, [1, 1])


def _momentum_layers(momenta: list[float], actives: list[int], sizes: list[int]) -> list[LayerState]:
    return [
        LayerState(size, active, True, momentum=momentum)
        for momentum, active, size in zip(momenta, actives, sizes, strict=True)
    ]


def test_momentum_regrowth_follows_the_mean_momentum_share() -> None:
    layers = _momentum_layers([3.0, 1.0, 0.0], [100, 100, 100], [1000, 1000, 1000])
    pruned, grown = plan_update("momentum", 0.2, layers)
    assert pruned == [20, 20, 20]  # each layer prunes round(α_t · active)
    assert grown == [45, 15, 0]  # the 60 regrown in shares 3 : 1 : 0
    assert sum(grown) == sum(pruned)


def test_momentum_share_is_capped_at_the_free_slots_and_the_excess_goes_to_the_others() -> None:
    layers = _momentum_layers([10.0, 1.0, 1.0], [95, 100, 100], [100, 1000, 1000])
    pruned, grown = plan_update("momentum", 0.3, layers)
    assert pruned == [28, 30, 30]
    assert grown[0] == 100 - 95 + 28  # its share is 73 of 88: capped at its free slots, so it ends full
    assert grown[1:] == [28, 27] and sum(grown) == sum(pruned)  # the other 55 shared 1 : 1


def test_magnitude_prunes_globally_and_regrows_in_proportion_to_the_survivors() -> None:
    small = torch.linspace(0.01, 0.1, 50)  # layer 0: all its weights small
    large = torch.linspace(1.0, 2.0, 50)
    layers = [LayerState(500, 50, True, magnitudes=small), LayerState(500, 50, True, magnitudes=large)]
    pruned, grown = plan_update("magnitude", 0.3, layers)
    assert pruned == [30, 0]  # the 30 smallest |w| of the network are all in layer 0
    # survivors 20 and 50: DSR regrows 30 · 20/70 and 30 · 50/70
    assert grown == [9, 21]
    assert 50 - 30 + 9 < 50 < 50 + 21  # layer 0 shrinks, layer 1 grows, total kept


def test_floor_and_full_layers() -> None:
    layers = [
        LayerState(10, 1, True, momentum=0.0),  # a single synapse: never pruned away
        LayerState(10, 10, False),  # kept full: left out
        LayerState(100, 40, True, momentum=1.0),
    ]
    pruned, grown = plan_update("momentum", 1.0, layers)
    assert pruned == [0, 0, 39]
    assert grown == [0, 0, 39]  # room 60 in layer 2, the only one with a share
    magnitude = [
        LayerState(10, 3, True, magnitudes=torch.tensor([0.0, 0.0, 0.0])),
        LayerState(10, 10, False),
        LayerState(10, 3, True, magnitudes=torch.tensor([1.0, 2.0, 3.0])),
    ]
    pruned, grown = plan_update("magnitude", 1.0, magnitude)
    assert pruned[0] == 3 - MIN_SYNAPSES and pruned[1] == 0
    assert sum(grown) == sum(pruned) and grown[1] == 0


@pytest.mark.parametrize("rule", ["magnitude", "momentum"])
def test_plan_invariants_over_random_layers(rule: str) -> None:
    rng = random.Random(1)
    for _ in range(300):
        layers = []
        for _ in range(rng.randint(1, 5)):
            size = rng.randint(1, 60)
            active = rng.randint(1, size)
            movable = rng.random() < 0.7
            magnitudes = torch.rand(active, generator=torch.Generator().manual_seed(rng.randint(0, 99)))
            layers.append(LayerState(size, active, movable, magnitudes, rng.choice([0.0, rng.random()])))
        pruned, grown = plan_update(rule, rng.random(), layers)
        assert sum(pruned) == sum(grown)
        for layer, lost, won in zip(layers, pruned, grown, strict=True):
            if not layer.movable:
                assert lost == won == 0
            assert 0 <= lost <= max(0, layer.active - MIN_SYNAPSES)
            assert 0 <= won <= layer.size - layer.active + lost
            assert MIN_SYNAPSES <= layer.active - lost + won <= layer.size


def test_unknown_rule_and_none_are_refused() -> None:
    with pytest.raises(
        EslError, match=r"unknown redistribute rule 'global' \(known: none, magnitude, momentum\)"
    ):
        check_redistribute("global")
    with pytest.raises(ValueError, match="engine prunes per layer"):
        plan_update("none", 0.3, [LayerState(10, 5)])


def test_momentum_statistic_is_sparselearnings() -> None:
    weight = torch.nn.Parameter(torch.ones(3, 2))
    sgd = torch.optim.SGD([weight], lr=0.1, momentum=0.9)
    adam = torch.optim.Adam([weight], lr=0.1)
    assert momentum_statistic(None, weight) is None and momentum_statistic(adam, weight) is None
    weight.grad = torch.full((3, 2), 2.0)
    sgd.step()
    adam.step()
    assert torch.equal(momentum_statistic(sgd, weight), sgd.state[weight]["momentum_buffer"])
    state = adam.state[weight]
    expected = state["exp_avg"] / (state["exp_avg_sq"].sqrt() + 1e-8)
    assert torch.equal(momentum_statistic(adam, weight), expected)


def test_layer_state_reads_only_the_active_weights() -> None:
    weight = torch.nn.Parameter(torch.tensor([[1.0, -2.0], [3.0, -4.0]]))
    mask = torch.tensor([[True, False], [False, True]])
    state = layer_state("magnitude", weight, mask, True)
    assert (state.size, state.active, state.momentum) == (4, 2, None)
    assert state.magnitudes.tolist() == [1.0, 4.0]
    optimizer = torch.optim.SGD([weight], lr=0.1, momentum=0.5)
    with pytest.raises(EslError, match="w: redistribute 'momentum' needs optimizer momentum"):
        layer_state("momentum", weight, mask, True, optimizer, "w")
    optimizer.state[weight]["momentum_buffer"] = torch.tensor([[1.0, 100.0], [100.0, -3.0]])
    assert layer_state("momentum", weight, mask, True, optimizer).momentum == 2.0
    assert layer_state("momentum", weight, mask, False, optimizer).momentum is None
