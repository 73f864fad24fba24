"""The rewiring unit inside SNNCore against esl_hw.rewiring.rewire_layer, bit for bit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator
from rtl_host import dump, rewire

from esl_hw.artifact import Model, layer_from_dense
from esl_hw.errors import EslError
from esl_hw.rewiring import rewire_layer
from esl_hw.rtl_gen import SNNCore
from esl_hw.rtl_gen.memory_map import memory_images
from esl_hw.rtl_gen.rewire import MAX_REWIRE_W_BITS, RewireUnit, rewire_cycles


def tie_layer(rng, n_in: int, n_out: int, kind: str, w_bits: int, spread: int):
    """A random layer with weights in ``-spread .. spread`` (many ties, explicit zero weights),
    one full row and one empty row."""
    mask = rng.random((n_in, n_out)) < rng.uniform(0.1, 0.9)
    mask[0] = True
    if n_in > 1:
        mask[1] = False
    high = min(spread, (1 << (w_bits - 1)) - 1)
    dense = rng.integers(-high, high + 1, (n_in, n_out)) * mask
    if rng.random() < 0.5:  # the most negative weight, whose magnitude is 2^(w_bits-1)
        dense[0, 0] = -(1 << (w_bits - 1))
    if kind == "output":
        return layer_from_dense(dense, kind, w_bits, mask=mask)
    return layer_from_dense(dense, kind, w_bits, v_bits=8, threshold=20, leak_shift=2, mask=mask)


def tie_model(rng, sizes: list[int]) -> Model:
    layers = []
    for index, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        kind = "output" if index == len(sizes) - 2 else "lif"
        w_bits = int(rng.integers(2, MAX_REWIRE_W_BITS + 1))
        layers.append(tie_layer(rng, n_in, n_out, kind, w_bits, int(rng.choice([1, 2, 3, 100]))))
    return Model(tuple(layers), timesteps=2)


def requests_for(rng, model: Model) -> list[tuple[int, int, int]]:
    """Rewire requests ``(layer, k, seed)``: k = 0, k = nnz, k = nnz + 1 (refused), random k."""
    requests = []
    for layer_index, layer in enumerate(model.layers):
        seed = int(rng.integers(1, 1 << 32))
        requests += [
            (layer_index, int(rng.integers(0, layer.nnz + 1)), seed),
            (layer_index, 0, seed),
            (layer_index, layer.nnz + 1 + int(rng.integers(0, 3)), seed),
            (layer_index, layer.nnz, int(rng.integers(1, 1 << 32))),
            *(
                (layer_index, int(rng.integers(0, layer.nnz + 1)), int(rng.integers(1, 1 << 32)))
                for _ in range(3)
            ),
        ]
    rng.shuffle(requests)
    return requests


def run_requests(model: Model, lanes: int, requests: list[tuple[int, int, int]]):
    """Simulate the requests one after the other; return per request ``(error, state, cycles,
    memories)``."""
    core = SNNCore(model, lanes=lanes)
    results = []

    async def bench(ctx) -> None:
        for layer, k, seed in requests:
            error, state, cycles = await rewire(ctx, core, layer, k, seed)
            results.append((error, state, cycles, await dump(ctx, core)))

    sim = Simulator(core)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return results


def check_against_reference(model: Model, lanes: int, requests, results) -> None:
    layers = list(model.layers)
    w_bits = max(layer.w_bits for layer in layers)
    for (layer, k, seed), (error, state, cycles, memories) in zip(requests, results, strict=True):
        if layer >= len(layers) or k > layers[layer].nnz or seed == 0:
            assert error, f"request {(layer, k, seed)} should be refused"
            assert state == seed
            assert cycles == 1
        else:
            assert cycles == rewire_cycles(layers[layer], k, seed, lanes, w_bits)
            assert not error
            layers[layer], expected_state, _ = rewire_layer(layers[layer], k, seed, lanes)
            assert state == expected_state
        expected = memory_images(dataclasses.replace(model, layers=tuple(layers)), lanes)
        assert memories == {mem: expected[mem] for mem in memories}


@pytest.mark.parametrize(("lanes", "seed"), [(1, 0), (1, 1), (2, 0), (2, 1), (4, 0), (4, 1), (8, 1), (16, 0)])
def test_rewire_unit_matches_the_reference(lanes, seed) -> None:
    rng = np.random.default_rng(100 * lanes + seed)
    sizes = [int(size) for size in rng.integers(1, 9, 3)]
    model = tie_model(rng, sizes)
    requests = requests_for(rng, model)
    results = run_requests(model, lanes, requests)
    check_against_reference(model, lanes, requests, results)
    assert any(not error and k for (_, k, _), (error, *_) in zip(requests, results, strict=True))


def test_rewire_refuses_bad_layers_and_seed_zero() -> None:
    rng = np.random.default_rng(7)
    model = tie_model(rng, [5, 4, 3, 3])  # three layers: a 2-bit layer field also encodes 3
    requests = [(3, 1, 5), (0, 1, 0), (1, model.layers[1].nnz, 9)]
    results = run_requests(model, 2, requests)
    check_against_reference(model, 2, requests, results)
    assert [error for error, *_ in results] == [True, True, False]


def test_rewire_limits_are_refused_at_generation() -> None:
    rng = np.random.default_rng(8)
    model = tie_model(rng, [5, 4, 3])
    wide = tie_layer(rng, 4, 3, "output", 9, 100)
    model = dataclasses.replace(model, layers=(model.layers[0], wide))
    with pytest.raises(EslError, match="layer 1: w_bits = 9 exceeds the rewiring unit's limit 8"):
        SNNCore(model, rewiring=True)
    core = SNNCore(model)  # default: without the unit
    assert not core.rewiring and not hasattr(core, "rewire_start")
    Fragment.get(core, None)  # elaborates without it
    with pytest.raises(EslError, match="limit 8"):
        RewireUnit(core.plans)


@pytest.mark.parametrize("lanes", [1, 2])
def test_chip_rewire_continues_the_trainers_hardware_random_updates(lanes: int) -> None:
    """Train with ``grow: hardware-random``, export (storage order, LFSR state), rewire on the chip:
    the chip's memories equal the export after the trainer's own next update, word for word."""
    import torch

    from esl_hw.train.export import model_from_net
    from esl_hw.train.model import LIFNet
    from esl_hw.train.sparse import SparseEngine

    torch.manual_seed(lanes)
    net = LIFNet([12], n_in=20, n_out=5, timesteps=2, w_bits=4)  # 4-bit weights: ties in |w|
    densities = [0.3, 1.0]
    net.reset_parameters(densities)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    engine = SparseEngine(
        net.named_weights(), optimizer, densities, 40, prune="magnitude", grow="hardware-random",
        alpha=0.5, delta_t=4, t_end=1.0, masks=net.masks(), lanes=lanes, lfsr_seed=0x1234,
        integer_weights=net.integer_weights,
    )  # fmt: skip
    generator = torch.Generator().manual_seed(9)
    for _ in range(10):  # two updates on the trainer's side, then more weight changes
        spikes = torch.rand(2, 8, 20, generator=generator) < 0.4
        loss = torch.nn.functional.cross_entropy(net(spikes), torch.randint(0, 5, (8,), generator=generator))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        engine.step()
    exported = model_from_net(net, None, engine.rewiring.columns)
    nnz = exported.layers[0].nnz
    k = min(round(engine.fraction() * nnz), 20 * 12 - nnz)
    seed = engine.rewiring.states[0]
    assert k > 0 and seed != 0x1234  # the state was carried through the earlier updates
    engine.update()  # the trainer's next update
    after = model_from_net(net, None, engine.rewiring.columns)
    (error, state, _, memories), *_ = run_requests(exported, lanes, [(0, k, seed)])
    assert not error and state == engine.rewiring.states[0]
    expected = memory_images(after, lanes)
    assert memories == {mem: expected[mem] for mem in memories}
    assert after.layers[0].col.tolist() != exported.layers[0].col.tolist()  # synapses really moved
