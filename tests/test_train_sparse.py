"""Tests for esl_hw.train.sparse: the engine (constant density, optimizer reset, growth in place, resume,
redistribution across layers)."""

from __future__ import annotations

import copy
import hashlib

import pytest
import torch

from esl_hw.errors import EslError
from esl_hw.train.sparse import GROW_RULES, PRUNE_RULES, SparseEngine, UpdateStats, cosine_fraction, get_rule


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


@pytest.mark.parametrize("grow", ["gradient", "momentum", "random", "random-unfired"])
@pytest.mark.parametrize("optimizer_name", ["adam", "sgd"])
def test_every_grow_rule_keeps_density_in_training(grow: str, optimizer_name: str) -> None:
    weights, optimizer, engine = _setup(optimizer_name)
    engine.grow_rule = get_rule(GROW_RULES, "grow", grow)
    counts = [int(mask.sum()) for mask in engine.masks]
    grown = 0
    for _ in range(30):
        stats = _train_step(weights, optimizer, engine)
        grown += 0 if stats is None else sum(layer.grown for layer in stats.layers)
        assert [int(mask.sum()) for mask in engine.masks] == counts
    assert grown > 0


def test_gradient_growth_in_the_engine_picks_the_largest_dense_gradients() -> None:
    weight = torch.nn.Parameter(torch.ones(4, 4))
    engine = SparseEngine([("w", weight)], None, [0.5], 100, grow="gradient", alpha=0.25, delta_t=1)
    inactive = torch.nonzero(~engine.masks[0].view(-1)).squeeze(1)
    weight.grad = torch.zeros(4, 4)
    weight.grad.view(-1)[inactive[[2, 5]]] = torch.tensor([-4.0, 3.0])
    with torch.no_grad():
        weight.view(-1)[torch.nonzero(engine.masks[0].view(-1)).squeeze(1)[:2]] = 0.01
    before = engine.masks[0].clone()
    stats = engine.update()
    assert stats.layers[0].grown == stats.layers[0].pruned == 2
    assert sorted(torch.nonzero((engine.masks[0] & ~before).view(-1)).squeeze(1).tolist()) == sorted(
        inactive[[2, 5]].tolist()
    )


def test_momentum_growth_reads_the_adam_first_moment() -> None:
    weights, optimizer, engine = _setup("adam")
    engine.grow_rule = get_rule(GROW_RULES, "grow", "momentum")
    _train_step(weights, optimizer, engine)
    momentum = optimizer.state[weights[0]]["exp_avg"]
    inactive = ~engine.masks[0]
    expected_best = torch.where(inactive, momentum.abs(), -1.0).view(-1).argmax()
    engine.update()
    assert bool(engine.masks[0].view(-1)[expected_best])


def test_momentum_growth_without_momentum_is_a_clear_error() -> None:
    weight = torch.nn.Parameter(torch.randn(6, 6))
    engine = SparseEngine([("w", weight)], None, [0.5], 100, grow="momentum", delta_t=1)
    with pytest.raises(EslError, match="w: momentum growth needs optimizer momentum"):
        engine.update()


def test_from_module_covers_linear_and_conv_with_dense_and_override_layers() -> None:
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3), torch.nn.Conv2d(16, 32, 3), torch.nn.Flatten(), torch.nn.Linear(32, 10)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    engine = SparseEngine.from_module(
        model, optimizer, 100, density=0.3, init="erk", dense=["3"], overrides={"0": 0.5}, delta_t=2
    )
    assert engine.names == ["0.weight", "1.weight"]
    assert engine.densities()[0] == pytest.approx(0.5, abs=1e-3)
    sizes = [16 * 3 * 9, 32 * 16 * 9, 320]
    total = sum(int(mask.sum()) for mask in engine.masks) + sizes[2]
    assert total == pytest.approx(0.3 * sum(sizes), abs=2)
    assert not model[0].weight[~engine.masks[0]].any()
    with pytest.raises(EslError, match="no linear or conv layer named 'fc'"):
        SparseEngine.from_module(model, optimizer, 100, density=0.3, dense=["fc"])


def test_bad_layer_density_is_refused() -> None:
    weight = torch.nn.Parameter(torch.randn(6, 6))
    with pytest.raises(EslError, match="w: density 1.5 outside"):
        SparseEngine([("w", weight)], None, [1.5], 100)
    with pytest.raises(EslError, match="bad ESL schedule: delta_t=0"):
        SparseEngine([("w", weight)], None, [0.5], 100, delta_t=0)


# sha256 of masks and weights after _rewire_run, recorded with the engine before `redistribute` existed
# (commit a343e9a). The run uses only exactly rounded elementwise float operations (SGD with a
# power-of-two learning rate and momentum), so the digests hold on any CPU.
BEFORE_REDISTRIBUTE = {
    "set/random": "c7513b11f07638491b023019ef161770798dbc5719a5dd827417aba0b96037e9",
    "set/momentum": "2b06eedd8684c2827159f5a9dd0cc5c3cd5371b84e8c81ff87cdcbdfa2eb1add",
    "set/gradient": "1104ed5ee5cd2b69a399b5afc13511c805f1e6ed04a4032794ec06480616722f",
    "set/random-unfired": "d04afbb7ea711fd8b18e2bf0c6605494d5c019cf9e4774654bc8daf742617461",
    "magnitude/random": "7e136dedea994a7ff3580d8b406d0fa47e6ec2d7a97bc2149c30e77c25150222",
    "magnitude/momentum": "1953141045be9cb9225c5b63e5446a179a375442e57a4ea7b26252dc59232baa",
    "magnitude/gradient": "3c57f94a217ec4b1b615fd240b06c152e65c3733b01dac5da8e7302616f4d7e8",
    "magnitude/random-unfired": "2b04e319804fc950efc97162c0e6e3fa2fd57e513e4afe0d51c0444de8889222",
}


def _rewire_run(prune: str, grow: str, **options) -> tuple[SparseEngine, list[UpdateStats]]:
    """60 SGD steps on three layers with drawn gradients, an ESL update every 3 iterations."""
    generator = torch.Generator().manual_seed(7)
    shapes = [(24, 16), (16, 12), (12, 4)]
    weights = [torch.nn.Parameter(torch.randn(shape, generator=generator)) for shape in shapes]
    optimizer = torch.optim.SGD(weights, lr=2.0**-6, momentum=0.5)
    engine = SparseEngine(
        [(f"l{i}", weight) for i, weight in enumerate(weights)],
        optimizer,
        [0.2, 0.3, 0.5],
        60,
        prune=prune,
        grow=grow,
        alpha=0.4,
        delta_t=3,
        t_end=0.8,
        generator=torch.Generator().manual_seed(3),
        **options,
    )
    noise = torch.Generator().manual_seed(11)
    updates = []
    for _ in range(60):
        optimizer.zero_grad()
        for weight in weights:
            weight.grad = torch.randn(weight.shape, generator=noise) + 0.5 * weight.detach()
        optimizer.step()
        stats = engine.step()
        if stats is not None:
            updates.append(stats)
    return engine, updates


def _digest(tensors: list[torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("case", sorted(BEFORE_REDISTRIBUTE))
def test_redistribute_none_is_bit_identical_to_the_engine_before_it(case: str) -> None:
    prune, grow = case.split("/")
    for options in ({}, {"redistribute": "none"}):
        engine, _ = _rewire_run(prune, grow, **options)
        assert _digest([*engine.masks, *engine.weights]) == BEFORE_REDISTRIBUTE[case]


@pytest.mark.parametrize("rule", ["magnitude", "momentum"])
@pytest.mark.parametrize("grow", ["random", "momentum"])
def test_redistribution_keeps_the_global_count_and_moves_the_layers(rule: str, grow: str) -> None:
    engine, updates = _rewire_run("magnitude", grow, redistribute=rule)
    sizes = [mask.numel() for mask in engine.masks]
    start = [round(0.2 * 384), round(0.3 * 192), round(0.5 * 48)]
    assert len(updates) == 15
    for update in updates:
        actives = [layer.active for layer in update.layers]
        assert sum(actives) == sum(start)  # exactly, at every update
        assert sum(layer.pruned for layer in update.layers) == sum(layer.grown for layer in update.layers)
        assert all(1 <= active <= size for active, size in zip(actives, sizes, strict=True))
        assert [layer.density for layer in update.layers] == [
            a / n for a, n in zip(actives, sizes, strict=True)
        ]
    assert [int(mask.sum()) for mask in engine.masks] != start  # the layers' counts moved
    assert any(layer.pruned != layer.grown for update in updates for layer in update.layers)
    for weight, mask in zip(engine.weights, engine.masks, strict=True):
        assert not weight[~mask].any()


def test_momentum_concentrated_in_one_layer_moves_density_there() -> None:
    weights, optimizer, engine = _setup("sgd")
    engine.redistribute = "momentum"
    _train_step(weights, optimizer, engine)
    optimizer.state[weights[0]]["momentum_buffer"].fill_(0.001)
    optimizer.state[weights[1]]["momentum_buffer"].fill_(1.0)
    before = [int(mask.sum()) for mask in engine.masks]
    stats = engine.update()
    after = [layer.active for layer in stats.layers]
    assert after[1] > before[1] and after[0] < before[0] and sum(after) == sum(before)
    assert stats.layers[1].grown > stats.layers[1].pruned  # most of the regrowth went to layer b


def test_magnitude_redistribution_takes_from_the_layer_with_small_weights() -> None:
    weights, optimizer, engine = _setup("sgd")
    engine.redistribute = "magnitude"
    with torch.no_grad():
        weights[0].mul_(0.001)  # layer a's weights are now the network's smallest
    before = [int(mask.sum()) for mask in engine.masks]
    stats = engine.update()
    assert [layer.pruned for layer in stats.layers] == [round(stats.fraction * sum(before)), 0]
    assert stats.layers[0].active < before[0] and stats.layers[1].active > before[1]


def test_a_fixed_layer_keeps_its_count_and_a_full_one_may_give_synapses_away() -> None:
    weights = [torch.nn.Parameter(torch.randn(40, 30)), torch.nn.Parameter(torch.randn(30, 10))]
    optimizer = torch.optim.SGD(weights, lr=0.1, momentum=0.9)
    names = list(zip("ab", weights, strict=True))
    engine = SparseEngine(names, optimizer, [0.3, 1.0], 40, delta_t=1, redistribute="momentum", fixed=[1])
    for _ in range(20):
        stats = _train_step(weights, optimizer, engine)
        assert stats.layers[1].active == 300 and stats.layers[1].pruned == stats.layers[1].grown == 0
        assert stats.layers[0].active == 360
    with torch.no_grad():
        weights[0].copy_(torch.randn(40, 30).sign())  # |w| = 1 wherever layer a's new mask falls
        weights[1].copy_(torch.rand(30, 10) * 0.01)  # the full layer holds the network's smallest weights
    engine = SparseEngine(names, optimizer, [0.3, 1.0], 40, delta_t=1, redistribute="magnitude")
    stats = engine.update()
    assert stats.layers[1].active < 300 and sum(layer.active for layer in stats.layers) == 660
    with pytest.raises(EslError, match=r"fixed layer 2: no such layer \(0..1\)"):
        SparseEngine(names, optimizer, [0.3, 1.0], 40, redistribute="momentum", fixed=[2])


def test_redistribution_resumes_identically_from_state_dict() -> None:
    engine_a, _ = _rewire_run("set", "momentum", redistribute="momentum")
    engine_b, _ = _rewire_run("set", "momentum", redistribute="momentum")
    for a, b in zip([*engine_a.masks, *engine_a.weights], [*engine_b.masks, *engine_b.weights], strict=True):
        assert torch.equal(a, b)
    weights = [torch.nn.Parameter(torch.randn(24, 16)), torch.nn.Parameter(torch.randn(16, 12))]
    fresh = SparseEngine(
        list(zip("ab", weights, strict=True)), None, [0.2, 0.3], 60, redistribute="magnitude"
    )
    state = fresh.state_dict()
    assert "redistribute" not in state  # nothing beyond masks and counters to save
    fresh.load_state_dict(state)


def test_redistribution_refuses_hardware_random_and_unknown_names() -> None:
    weight = torch.nn.Parameter(torch.randn(6, 6))
    with pytest.raises(EslError, match="redistribute 'momentum' moves synapses.*'hardware-random'"):
        SparseEngine(
            [("w", weight)], None, [0.5], 100, prune="magnitude", grow="hardware-random",
            integer_weights=lambda: [weight.detach().round()], redistribute="momentum",
        )  # fmt: skip
    with pytest.raises(EslError, match="unknown redistribute rule 'dsr'"):
        SparseEngine([("w", weight)], None, [0.5], 100, redistribute="dsr")


def test_momentum_redistribution_without_momentum_is_a_clear_error() -> None:
    weight = torch.nn.Parameter(torch.randn(6, 6))
    engine = SparseEngine([("w", weight)], None, [0.5], 100, delta_t=1, redistribute="momentum")
    with pytest.raises(EslError, match="w: redistribute 'momentum' needs optimizer momentum"):
        engine.update()


def _ddp_worker(rank: int, world: int, init_file: str, out_dir: str, redistribute: str) -> None:
    init = f"file://{init_file}"
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 30), torch.nn.Tanh(), torch.nn.Linear(30, 5))
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    # A different random stream per rank: identical masks must come from the engine, not from luck.
    generator = torch.Generator().manual_seed(rank)
    engine = SparseEngine.from_module(
        model,
        optimizer,
        20,
        density=0.3,
        grow="random",
        delta_t=2,
        generator=generator,
        redistribute=redistribute,
    )
    data = torch.Generator().manual_seed(100 + rank)
    for _ in range(10):
        inputs, labels = torch.randn(16, 20, generator=data), torch.randint(0, 5, (16,), generator=data)
        loss = torch.nn.functional.cross_entropy(ddp(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        engine.step()
    state = {"masks": engine.masks, "weights": [w.detach() for w in engine.weights]}
    torch.save(state, f"{out_dir}/{rank}.pt")
    # Both ranks reach the end before either tears gloo down (a rank leaving early aborted the
    # other once in CI: "terminate called without an active exception").
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


@pytest.mark.parametrize("redistribute", ["none", "momentum"])
def test_masks_and_weights_agree_across_two_ddp_processes(tmp_path, redistribute: str) -> None:
    torch.multiprocessing.spawn(
        _ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path), redistribute), nprocs=2, join=True
    )
    first, second = (torch.load(tmp_path / f"{rank}.pt") for rank in range(2))
    for a, b in zip(first["masks"] + first["weights"], second["masks"] + second["weights"], strict=True):
        assert torch.equal(a, b)
    assert [int(mask.sum()) for mask in first["masks"]] == [int(m.sum()) for m in second["masks"]]
