"""bench/fig4_prune_growth.py: the run plan and its density-1.0 dedup (checked against the engine and a
real training), skipping and resuming runs, the budget, and the table and figure from fake runs."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from esl_hw.train.config import load_config
from esl_hw.train.export import load_checkpoint
from esl_hw.train.sparse import SparseEngine

_PATH = Path(__file__).resolve().parent.parent / "bench" / "fig4_prune_growth.py"
_SPEC = importlib.util.spec_from_file_location("bench_fig4_prune_growth", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = bench  # dataclasses look their module up
_SPEC.loader.exec_module(bench)
PAIRS = [(prune, grow) for prune in bench.PRUNES for grow in bench.GROWS]


def test_plan_is_every_pair_at_sparse_densities_and_one_dense_run_per_seed() -> None:
    runs = bench.plan(epochs=3, data="/data/mnist")
    assert len(runs) == 2 * (1 + 2 * 8)
    assert len({run.name for run in runs}) == len(runs)
    assert [run.seed for run in runs] == [0] * 17 + [1] * 17  # all of seed 0 first
    dense = [run for run in runs if run.dense]
    assert [(run.name, run.density) for run in dense] == [("dense_d1.0_s0", 1.0), ("dense_d1.0_s1", 1.0)]
    for density in (0.1, 0.01):
        pairs = [(run.prune, run.grow) for run in runs if run.density == density and run.seed == 1]
        assert pairs == PAIRS
    run = next(run for run in runs if run.name == "magnitude_momentum_d0.01_s1")
    config = run.config
    assert (config.sparsity.prune, config.sparsity.grow, config.seed) == ("magnitude", "momentum", 1)
    assert config.sparsity.density == 0.01 and config.data.path == "/data/mnist"
    original = load_config(bench.train_runs.CONFIGS / "mnist_multispike_d0.01.yaml")
    assert config.train.epochs == 3
    # only the epochs (and seed, rules, data) change: network, time steps and the ESL schedule stay
    assert config.model == original.model
    assert (config.sparsity.delta_t, config.sparsity.t_end, config.sparsity.alpha) == (100, 0.75, 0.3)
    assert config.train.lr_schedule == original.train.lr_schedule == "cosine"
    assert config.train.threads == 1


def test_rewires_only_below_density_one() -> None:
    assert not bench.rewires(load_config(bench.train_runs.CONFIGS / "mnist_multispike_d1.0.yaml"))
    assert bench.rewires(load_config(bench.train_runs.CONFIGS / "mnist_multispike_d0.1.yaml"))


@pytest.mark.parametrize(("prune", "grow"), PAIRS)
def test_engine_changes_nothing_at_density_one(prune: str, grow: str) -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(12, 8)
    optimizer = torch.optim.Adam(layer.parameters())
    kept = SparseEngine([("w", layer.weight)], optimizer, [1.0], 40, prune=prune, grow=grow, delta_t=2)
    layer(torch.randn(4, 12)).square().sum().backward()
    optimizer.step()  # momentum for the momentum rule
    before = layer.weight.detach().clone()
    stats = kept.update()
    assert [(layer.pruned, layer.grown) for layer in stats.layers] == [(0, 0)]
    assert bool(kept.masks[0].all()) and torch.equal(layer.weight, before)
    half = SparseEngine([("w", layer.weight)], optimizer, [0.5], 40, prune=prune, grow=grow)
    assert half.update().layers[0].pruned > 0  # the same rules do rewire a sparse layer


def _tiny_configs(folder: Path) -> Path:
    """The MNIST configs with 16 hidden neurons and an ESL update every other iteration."""
    folder.mkdir()
    for density in bench.DENSITIES:
        name = f"mnist_multispike_d{density}.yaml"
        text = (bench.train_runs.CONFIGS / name).read_text()
        tiny = text.replace("hidden: [800]", "hidden: [16]").replace("delta_t: 100", "delta_t: 2")
        assert tiny != text
        (folder / name).write_text(tiny)
    return folder


def test_dense_training_is_the_same_for_every_pair(tmp_path: Path) -> None:
    configs = _tiny_configs(tmp_path / "configs")
    (dense,) = bench.plan(epochs=1, data=None, seeds=(0,), densities=(1.0,), configs=configs)
    weights = []
    for prune, grow in (PAIRS[0], PAIRS[-1]):  # set/gradient, magnitude/random-unfired
        sparsity = dataclasses.replace(dense.config.sparsity, prune=prune, grow=grow)
        data = dataclasses.replace(dense.config.data, train_samples=1000)
        config = dataclasses.replace(dense.config, sparsity=sparsity, data=data)
        run = dataclasses.replace(dense, name=f"{prune}_{grow}", config=config)
        row = bench.score_run(run, tmp_path / "runs")
        assert row["density"] == 1.0 and row["test_images"] == 1000
        weights.append(load_checkpoint(Path(row["run"]))["model"])
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])


def test_finished_run_is_reused_and_interrupted_one_resumed(tmp_path: Path, monkeypatch) -> None:
    configs = _tiny_configs(tmp_path / "configs")
    run = bench.plan(epochs=1, data=None, seeds=(0,), densities=(0.01,), configs=configs)[0]
    row = bench.score_run(run, tmp_path / "runs")
    assert (row["prune"], row["grow"], row["config"]["epochs"]) == ("set", "gradient", 1)
    assert row["wall_seconds"] > 0
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(bench.train_runs, "train", lambda *args, **kwargs: calls.append(kwargs))
    assert bench.score_run(run, tmp_path / "runs")["test_accuracy_integer"] == row["test_accuracy_integer"]
    assert calls == []  # finished: not trained again
    interrupted = tmp_path / "runs" / "other"
    (interrupted / ".work").mkdir(parents=True)
    (interrupted / ".work" / "state.pt").write_bytes(b"")
    monkeypatch.setattr(bench.train_runs, "work_folder", lambda out: out / ".work")
    bench.train_runs._run(run.config, interrupted)
    assert calls[-1]["resume"] is True
    other = bench.plan(epochs=2, data=None, seeds=(0,), densities=(0.01,), configs=configs)[0]
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match="not as planned"):
        bench.score_run(other, tmp_path / "runs")  # the folder holds a 1-epoch run


def _row(run: Any, accuracy: float, seconds: float = 10.0) -> dict[str, Any]:
    return {
        "name": run.name,
        "seed": run.seed,
        "target": run.density,
        "prune": run.prune,
        "grow": run.grow,
        "test_accuracy_integer": accuracy,
        "test_images": 10000,
        "config": {"epochs": run.config.train.epochs},
        "wall_seconds": seconds,
    }


def _results(runs: list[Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    done = {row["name"] for row in rows}
    return {
        "command": "python bench/fig4_prune_growth.py --data MNIST --epochs 2",
        "data": "MNIST",
        "epochs": 2,
        "config_epochs": 30,
        "seeds": [0, 1],
        "densities": list(bench.DENSITIES),
        "planned": len(runs),
        "machine": {"cpu": "cpu", "cores": 2, "python": "3", "torch": "2"},
        "load_average": {"start": [1.0, 1.0, 1.0], "end": None},
        "wall_seconds": None,
        "runs": rows,
        "missing": [run.name for run in runs if run.name not in done],
        "failed": [],
    }


def test_pending_skips_scored_runs_of_the_same_epochs() -> None:
    runs = bench.plan(epochs=2, data=None)
    done = {runs[0].name: _row(runs[0], 0.9), runs[1].name: _row(runs[1], 0.9) | {"config": {"epochs": 5}}}
    assert [run.name for run in bench.pending(runs, done)] == [run.name for run in runs[1:]]


def _args(tmp_path: Path, budget: float | None = None) -> argparse.Namespace:
    return argparse.Namespace(budget_minutes=budget, runs=tmp_path / "runs", out=tmp_path, retry_seconds=0)


def test_sweep_retries_once_records_failures_and_writes_after_each(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(bench, "plot", lambda *args: None)  # the figure: test_table_and_figure…
    runs = bench.plan(epochs=2, data=None, seeds=(0,), densities=(1.0, 0.1))
    results = _results(runs, [_row(runs[0], 0.98)])
    attempts: dict[str, int] = {}

    def execute(run: Any, folder: Path) -> dict[str, Any]:
        attempts[run.name] = attempts.get(run.name, 0) + 1
        if run.grow == "momentum" or (run.grow == "random" and attempts[run.name] == 1):
            raise RuntimeError("half-edited file")
        return _row(run, 0.95)

    bench.sweep(runs, _args(tmp_path), results, execute)
    assert runs[0].name not in attempts  # already scored
    assert attempts["set_random_d0.1_s0"] == 2 and attempts["set_momentum_d0.1_s0"] == 2
    assert results["failed"] == ["set_momentum_d0.1_s0", "magnitude_momentum_d0.1_s0"]
    assert results["missing"] == results["failed"]
    assert len(results["runs"]) == 9 - 2
    written = json.loads((tmp_path / "fig4_prune_growth.json").read_text())
    assert len(written["runs"]) == 7


def test_budget_stops_starting_runs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(bench, "plot", lambda *args: None)
    assert not bench._started_late(100.0, None, [1e6])
    assert bench._started_late(100.0, 150.0, [60.0, 40.0]) is False  # 100 + 50 ≤ 150
    assert bench._started_late(101.0, 150.0, [60.0, 40.0]) is True
    runs = bench.plan(epochs=2, data=None, seeds=(0,), densities=(0.1,))
    results = _results(runs, [])
    bench.sweep(runs, _args(tmp_path, budget=1.0), results, lambda run, folder: _row(run, 0.9, 100.0))
    assert len(results["runs"]) == 1  # the first starts (no time known yet), none after it
    assert len(results["missing"]) == 7


def test_table_and_figure_from_partial_runs(tmp_path: Path) -> None:
    runs = bench.plan(epochs=2, data=None)
    by_name = {run.name: run for run in runs}
    rows = [
        _row(by_name["dense_d1.0_s0"], 0.98),
        _row(by_name["dense_d1.0_s1"], 0.97),
        _row(by_name["set_gradient_d0.1_s0"], 0.96),
        _row(by_name["set_gradient_d0.1_s1"], 0.94),
        _row(by_name["magnitude_random_d0.01_s0"], 0.90),
    ]
    summary = bench.summarise(rows)
    assert [(entry["density"], entry["prune"], entry["grow"]) for entry in summary] == [
        (1.0, None, None),
        (0.1, "set", "gradient"),
        (0.01, "magnitude", "random"),
    ]
    assert summary[0]["accuracy"] == {"0": 0.98, "1": 0.97}
    assert summary[1]["mean"] == pytest.approx(0.95)
    results = _results(runs, rows)
    bench.write_results(results, tmp_path)
    text = (tmp_path / "fig4_prune_growth.md").read_text()
    assert "2 epochs per run (the configs: 30); 5 of 34 runs complete" in text
    assert "| 1.0 | any (dense) | any (dense) | 98.00% | 97.00% | 97.50% |" in text
    assert "| 0.01 | magnitude | random | 90.00% | – | 90.00% |" in text
    assert "same dense training: it ran once per seed" in text
    assert "Not complete (left out above): " in text and "set_momentum_d0.1_s0" in text
    assert (tmp_path / "fig4_prune_growth.png").stat().st_size > 10_000
    written = json.loads((tmp_path / "fig4_prune_growth.json").read_text())
    assert written["summary"] == summary
    bench.write_results(_results(runs, []), tmp_path / "empty")  # nothing complete: table, no figure
    assert "0 of 34 runs complete" in (tmp_path / "empty" / "fig4_prune_growth.md").read_text()
    assert not (tmp_path / "empty" / "fig4_prune_growth.png").exists()


def test_a_worker_ends_when_the_sweep_that_started_it_is_killed(tmp_path: Path) -> None:
    """The training worker of :func:`in_fresh_process` gets SIGTERM when its parent dies (SIGKILL)."""
    import os
    import signal
    import subprocess
    import time

    script = f"""
import multiprocessing, sys, time
from concurrent.futures import ProcessPoolExecutor
sys.path.insert(0, {str(_PATH.parent)!r})
import fig4_prune_growth as fig4
if __name__ == "__main__":
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=fig4.die_with_parent)
    print(pool.submit(__import__("os").getpid).result(), flush=True)
    pool.submit(time.sleep, 120)
    time.sleep(120)
"""
    (tmp_path / "sweep.py").write_text(script)
    parent = subprocess.Popen([sys.executable, str(tmp_path / "sweep.py")], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.kill(worker, signal.SIGKILL)
            pytest.fail("the worker outlived the killed sweep")
    finally:
        parent.kill()
