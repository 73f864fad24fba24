"""Tests for esl_hw.train.hardware_rewiring: training with ``hardware-random`` rewires exactly like the chip.

The reference is :func:`esl_hw.rewiring.rewire_layer` on the layer the chip holds (the exported
artifact, then the rewired layer with the trained integer weights written back), LFSR state carried.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from esl_hw.artifact import Layer
from esl_hw.errors import EslError
from esl_hw.rewiring import DEFAULT_SEED, rewire_layer
from esl_hw.train.config import config_from_dict
from esl_hw.train.export import model_from_net
from esl_hw.train.hardware_rewiring import HardwareRewiring
from esl_hw.train.loop import build_training
from esl_hw.train.model import LIFNet
from esl_hw.train.sparse import SparseEngine
from esl_hw.train.sparse_rules import GrowContext, cosine_fraction, grow_hardware_random


def _dense_mask(layer: Layer) -> torch.Tensor:
    mask = torch.zeros(layer.n_in, layer.n_out, dtype=torch.bool)
    rows = np.repeat(np.arange(layer.n_in), np.diff(layer.row_ptr))
    mask[torch.from_numpy(rows), torch.from_numpy(layer.col)] = True
    return mask


def _train_step(net: LIFNet, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> None:
    spikes = torch.rand(net.timesteps, 16, net.sizes[0], generator=generator) < 0.3
    labels = torch.randint(0, net.sizes[-1], (16,), generator=generator)
    loss = torch.nn.functional.cross_entropy(net(spikes), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _small_engine(lanes: int, seed: int = DEFAULT_SEED) -> tuple[LIFNet, torch.optim.Optimizer, SparseEngine]:
    torch.manual_seed(0)
    net = LIFNet([24], n_in=30, n_out=6, timesteps=3, w_bits=4)  # 4-bit weights: many ties in |w|
    densities = [0.3, 1.0]
    net.reset_parameters(densities)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    engine = SparseEngine(
        net.named_weights(), optimizer, densities, 100, prune="magnitude", grow="hardware-random",
        alpha=0.4, delta_t=3, t_end=1.0, masks=net.masks(), lanes=lanes, lfsr_seed=seed,
        integer_weights=net.integer_weights,
    )  # fmt: skip
    return net, optimizer, engine


@pytest.mark.parametrize("lanes", [1, 4])
def test_one_update_equals_rewire_layer_on_the_exported_artifact(lanes: int) -> None:
    net, optimizer, engine = _small_engine(lanes, seed=12345)
    generator = torch.Generator().manual_seed(1)
    _train_step(net, optimizer, generator)
    engine.apply_masks()
    artifact = model_from_net(net)
    k = round(0.4 * artifact.layers[0].nnz)
    expected, state, changes = rewire_layer(artifact.layers[0], k, seed=12345, lanes=lanes)
    assert sum(old != new for _, old, new in changes) > 0  # the update really moves synapses
    output_before = net.mask_1.clone()
    stats = engine.update()
    assert stats.layers[0].pruned == stats.layers[0].grown == k
    assert torch.equal(net.mask_0, _dense_mask(expected))
    assert np.array_equal(engine.rewiring.columns[0], expected.col)
    assert engine.rewiring.states[0] == state
    assert torch.equal(net.mask_1, output_before) and stats.layers[1].pruned == 0  # dense: never rewired
    rows = np.repeat(np.arange(30), np.diff(expected.row_ptr))
    for position, _, new in changes:  # regrown synapses start at weight 0, with no optimizer history
        assert float(net.weights[0].detach()[rows[position], new]) == 0.0
        assert float(optimizer.state[net.weights[0]]["exp_avg"][rows[position], new]) == 0.0


@pytest.mark.parametrize("lanes", [1, 2])
def test_training_masks_follow_rewire_layer_step_by_step(lanes: int) -> None:
    config = config_from_dict(
        {
            "model": {"hidden": [20], "timesteps": 3, "w_bits": 4},
            "sparsity": {
                "density": 0.2, "dense_layers": [1], "prune": "magnitude", "grow": "hardware-random",
                "lanes": lanes, "lfsr_seed": 777, "alpha": 0.3, "delta_t": 2, "t_end": 1.0,
            },
        }
    )  # fmt: skip
    iterations = 16
    net, optimizer, engine = build_training(config, iterations)
    reference = model_from_net(net).layers[0]
    state, updates, moved = 777, 0, 0
    generator = torch.Generator().manual_seed(2)
    for iteration in range(1, iterations + 1):
        _train_step(net, optimizer, generator)
        if iteration % 2 == 0 and iteration < iterations:
            # the chip's layer: its storage order, with the trained integer weights written back
            integers = net.integer_weights()[0].numpy()
            rows = np.repeat(np.arange(reference.n_in), np.diff(reference.row_ptr))
            reference = dataclasses.replace(reference, weight=integers[rows, reference.col])
            k = round(cosine_fraction(iteration, 0.3, iterations) * reference.nnz)
            reference, state, changes = rewire_layer(reference, k, state, lanes)
            updates += 1
            moved += sum(old != new for _, old, new in changes)
        engine.step()
        assert torch.equal(net.mask_0, _dense_mask(reference)), iteration
        assert bool(net.mask_1.all())
    assert updates == 7 and moved > 0
    assert engine.rewiring.states[0] == state


def test_state_dict_round_trip_resumes_identically() -> None:
    net_a, optimizer_a, engine_a = _small_engine(lanes=2)
    generator = torch.Generator().manual_seed(3)
    for _ in range(7):
        _train_step(net_a, optimizer_a, generator)
        engine_a.step()
    state = copy.deepcopy(engine_a.state_dict())
    net_b, optimizer_b, engine_b = _small_engine(lanes=2)
    net_b.load_state_dict(net_a.state_dict())
    optimizer_b.load_state_dict(copy.deepcopy(optimizer_a.state_dict()))
    engine_b.load_state_dict(state)
    generator_b = copy.deepcopy(generator)
    for _ in range(8):
        _train_step(net_a, optimizer_a, generator)
        engine_a.step()
        _train_step(net_b, optimizer_b, generator_b)
        engine_b.step()
    assert torch.equal(net_a.mask_0, net_b.mask_0)
    assert np.array_equal(engine_a.rewiring.columns[0], engine_b.rewiring.columns[0])
    assert engine_a.rewiring.states == engine_b.rewiring.states != [DEFAULT_SEED] * 2


def test_load_refuses_a_state_without_rewiring_or_with_other_lanes() -> None:
    _, _, engine = _small_engine(lanes=1)
    state = engine.state_dict()
    with pytest.raises(EslError, match="no 'hardware-random' state"):
        engine.load_state_dict({key: value for key, value in state.items() if key != "rewiring"})
    _, _, other = _small_engine(lanes=4)
    with pytest.raises(EslError, match="lanes=1, lfsr_seed=44257, not lanes=4"):
        other.load_state_dict(state)


def test_engine_refuses_what_the_rule_cannot_run() -> None:
    net = LIFNet([8], n_in=10, n_out=4)
    weights = net.named_weights()
    with pytest.raises(EslError, match="needs prune rule 'magnitude', got 'set'"):
        SparseEngine(weights, None, [0.5, 1.0], 10, prune="set", grow="hardware-random")
    with pytest.raises(EslError, match="needs integer_weights"):
        SparseEngine(weights, None, [0.5, 1.0], 10, prune="magnitude", grow="hardware-random")
    with pytest.raises(EslError, match="power of two, got 3"):
        SparseEngine(
            weights, None, [0.5, 1.0], 10, prune="magnitude", grow="hardware-random", lanes=3,
            integer_weights=net.integer_weights,
        )  # fmt: skip
    with pytest.raises(EslError, match="joint prune-and-regrow"):
        grow_hardware_random(GrowContext(torch.arange(3), 1, torch.Generator(), torch.zeros(4)))


def test_storage_mask_and_check() -> None:
    mask = torch.tensor([[True, False, True], [False, False, False], [False, True, True]])
    rewiring = HardwareRewiring([mask], lanes=1)
    assert rewiring.row_ptrs[0].tolist() == [0, 2, 2, 4]
    assert rewiring.columns[0].tolist() == [0, 2, 1, 2]
    assert torch.equal(rewiring.mask(0), mask)
    rewiring.check(0, mask)
    with pytest.raises(EslError, match="does not match"):
        rewiring.check(0, ~mask)
