"""Tests for esl_hw.train.sparse: the engine (constant density, optimizer reset, growth in place, resume)."""

from __future__ import annotations

import copy

import pytest
import torch

from esl_hw.errors import EslError
from esl_hw.train.sparse import GROW_RULES, PRUNE_RULES, SparseEngine, cosine_fraction, get_rule


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


def _ddp_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
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
        model, optimizer, 20, density=0.3, grow="random", delta_t=2, generator=generator
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


def test_masks_and_weights_agree_across_two_ddp_processes(tmp_path) -> None:
    torch.multiprocessing.spawn(
        _ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True
    )
    first, second = (torch.load(tmp_path / f"{rank}.pt") for rank in range(2))
    for a, b in zip(first["masks"] + first["weights"], second["masks"] + second["weights"], strict=True):
        assert torch.equal(a, b)
    assert [int(mask.sum()) for mask in first["masks"]] == [int(m.sum()) for m in second["masks"]]
