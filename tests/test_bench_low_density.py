"""bench/low_density.py: each variant changes only its levers (checked against the engine's synapse
counts in a real training), a finished run is reused only when trained as planned, and the table and
figure from fake runs."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from esl_hw.train.config import load_config

_PATH = Path(__file__).resolve().parent.parent / "bench" / "low_density.py"
_SPEC = importlib.util.spec_from_file_location("bench_low_density", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = bench  # dataclasses look their module up
_SPEC.loader.exec_module(bench)


def test_plan_changes_only_each_variants_levers() -> None:
    runs = bench.plan(epochs=4, data="/data/mnist", seeds=(0, 2), teacher=Path("/runs/teacher"))
    assert len(runs) == 2 * len(bench.VARIANTS)
    assert [run.seed for run in runs] == [0] * len(bench.VARIANTS) + [2] * len(bench.VARIANTS)
    assert runs[1].name == "momentum_e4_s0"
    base = load_config(bench.train_runs.CONFIGS / bench.BASE)
    assert base.sparsity.density == 0.01 and base.model.hidden == (800,)
    for run in runs:
        config, variant = run.config, run.variant
        changed_sparsity = {
            field.name
            for field in dataclasses.fields(base.sparsity)
            if getattr(config.sparsity, field.name) != getattr(base.sparsity, field.name)
        }
        assert changed_sparsity <= {name for name, _ in variant.sparsity}
        for name, value in variant.sparsity:
            assert getattr(config.sparsity, name) == value
        expected_model = dataclasses.replace(base.model, **dict(variant.model))
        assert config.model == expected_model
        assert config.sparsity.density == 0.01  # the overall density never changes
        assert (config.train.epochs, config.seed, config.data.path) == (4, run.seed, "/data/mnist")
    (t16,) = [run for run in runs if run.name == "T16_e4_s2"]
    assert t16.config.model.timesteps == 16
    for run in runs:  # only the distill variants learn from the teacher
        teacher = "/runs/teacher" if bench.uses_teacher(run) else None
        assert run.config.train == dataclasses.replace(base.train, epochs=4, device="cpu", teacher=teacher)
        shift = dict(run.variant.data).get("augment_shift", 0)
        assert run.config.data == dataclasses.replace(base.data, path="/data/mnist", augment_shift=shift)
    assert {run.config.data.augment_shift for run in runs if run.variant.name.startswith("T16-shift")} == {
        1,
        2,
    }
    with pytest.raises(ValueError, match="variant distill learns from a teacher"):
        bench.plan(epochs=4, data=None, names=("distill",))
    only = bench.plan(epochs=None, data=None, names=("output-0.5",))
    assert [run.name for run in only] == [f"output-0.5_e{base.train.epochs}_s0"]


def test_the_distill_variants_learn_from_the_sweeps_own_dense_teacher(tmp_path: Path) -> None:
    teacher = bench.teacher_job("/data/mnist")
    assert teacher.name == f"teacher-dense_e{bench.TEACHER_EPOCHS}_s0"
    assert teacher.config.sparsity.density == 1.0 and teacher.config.model.hidden == (800,)
    assert (teacher.config.model.timesteps, teacher.config.data.path) == (8, "/data/mnist")
    runs = bench.plan(epochs=3, data="/data/mnist", teacher=tmp_path / teacher.name)
    taught = {run.name: run for run in runs if bench.uses_teacher(run)}
    assert set(taught) == {"distill_e3_s0", "T16-distill_e3_s0"}
    for run in runs:
        expected = str(tmp_path / teacher.name) if run.name in taught else None
        assert run.config.train.teacher == expected
    assert taught["T16-distill_e3_s0"].config.model.timesteps == 16


def _tiny_configs(folder: Path) -> Path:
    """The base config with 16 hidden neurons and an ESL update every other iteration."""
    folder.mkdir()
    text = (bench.train_runs.CONFIGS / bench.BASE).read_text()
    tiny = text.replace("hidden: [800]", "hidden: [16]").replace("delta_t: 100", "delta_t: 2")
    assert tiny != text
    (folder / bench.BASE).write_text(tiny.replace("density: 0.01", "density: 0.1"))
    return folder


def _small(run: Any) -> Any:
    data = dataclasses.replace(run.config.data, train_samples=600)
    return dataclasses.replace(run, config=dataclasses.replace(run.config, data=data))


def test_layer_budget_variant_trains_with_the_counts_it_names(tmp_path: Path, monkeypatch) -> None:
    configs = _tiny_configs(tmp_path / "configs")
    (run,) = bench.plan(epochs=1, data=None, names=("output-0.5",), configs=configs)
    row = bench.score_run(_small(run), tmp_path / "runs")
    inputs, hidden, outputs = row["layer_sizes"]
    assert row["layer_density"][1] == 0.5  # the output layer's share, fixed
    total = round(0.1 * (inputs * hidden + hidden * outputs))
    assert row["connections"] == total  # the rest went to the input layer
    assert (row["variant"], row["config"]["epochs"]) == ("output-0.5", 1)
    calls: list[Any] = []
    monkeypatch.setattr(bench.train_runs, "train", lambda *args, **kwargs: calls.append(kwargs))
    again = bench.score_run(_small(run), tmp_path / "runs")
    assert calls == [] and again["test_accuracy_integer"] == row["test_accuracy_integer"]
    other = dataclasses.replace(
        run,
        variant=bench.VARIANTS[0],
        config=bench.plan(epochs=1, data=None, names=(bench.VARIANTS[0].name,), configs=configs)[0].config,
    )
    with pytest.raises(RuntimeError, match="otherwise than planned"):
        bench.score_run(_small(other), tmp_path / "runs")  # same folder, other sparsity


def _row(run: Any, accuracy: float) -> dict[str, Any]:
    return {
        "name": run.name,
        "seed": run.seed,
        "variant": run.variant.name,
        "lever": run.variant.lever,
        "test_accuracy_integer": accuracy,
        "test_accuracy_float": accuracy + 0.001,
        "layer_sizes": [784, 800, 10],
        "layer_density": [4203 / 627200, 2149 / 8000],
        "connections": 6352,
        "best_epoch": 3,
        "config": {"epochs": run.config.train.epochs},
        "wall_seconds": 12.5,
        "train_seconds": 812.4,
    }


def test_table_and_figure_from_partial_runs(tmp_path: Path) -> None:
    runs = bench.plan(epochs=2, data=None, teacher=tmp_path / "teacher")
    results = {
        "command": "python bench/low_density.py --epochs 2",
        "data": "MNIST",
        "planned": len(runs),
        "machine": {"cpu": "cpu", "cores": 2, "torch": "2"},
        "load_average": {"start": [1.0, 1.0, 1.0], "end": None},
        "runs": [_row(runs[1], 0.9612), _row(runs[2], 0.9701)],
        "missing": [run.name for run in runs[3:]],
        "failed": [],
    }
    bench.write_results(results, tmp_path)
    text = (tmp_path / "low_density.md").read_text()
    assert f"2 of {len(runs)} runs complete" in text
    assert "Best: **97.01%** (redistribute-momentum_e2_s0), target **not** met." in text
    lines = [
        line
        for line in text.splitlines()
        if line.startswith("| redistribute") or line.startswith("| momentum")
    ]
    assert lines[0].startswith("| redistribute-momentum_e2_s0 |")  # best first
    assert "| 4,203 + 2,149 = 6,352 | 97.01% | 97.11% | 3 | 812 |" in lines[0]
    assert "Not complete (left out above): " in text
    assert (
        "`python bench/low_density.py --data MNIST --epochs 2 --variants momentum redistribute-momentum`"
        in text
    )
    assert (tmp_path / "low_density.png").stat().st_size > 5_000
    assert "Teacher of the distill variants" not in text
    results["teacher"] = {"config": bench.TEACHER_CONFIG, "connections": 635_200, "epochs": 10}
    results["teacher"]["test_accuracy_integer"] = 0.9833
    bench.write_results(results, tmp_path)
    assert (
        "Teacher of the distill variants: `configs/mnist_multispike_d1.0.yaml` (dense 784-800-10, T = 8, "
        "635,200 synapses), 10 epochs, seed 0, trained by the same command: test accuracy 98.33% (integer)."
    ) in (tmp_path / "low_density.md").read_text()
    results["runs"].append(_row(runs[0], 0.976))
    bench.write_results(results, tmp_path)
    assert "Best: **97.60%** (random_e2_s0), target met." in (tmp_path / "low_density.md").read_text()
    long = bench.plan(epochs=6, data=None, seeds=(1,), names=("T16",))[0]
    assert bench.commands([_row(runs[1], 0.9), _row(long, 0.9), _row(runs[0], 0.9)]) == [
        "python bench/low_density.py --data MNIST --epochs 2 --variants momentum random",
        "python bench/low_density.py --data MNIST --epochs 6 --seeds 1 --variants T16",
    ]
    assert json.loads((tmp_path / "low_density.json").read_text())["runs"][-1]["name"] == "random_e2_s0"


def test_sweep_scores_only_the_missing_runs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(bench, "plot", lambda *args: None)
    runs = bench.plan(epochs=2, data=None, names=("momentum", "T16"))
    results = {
        "command": "c",
        "data": "MNIST",
        "planned": 2,
        "machine": {"cpu": "cpu", "cores": 2, "torch": "2"},
        "load_average": {"start": [1.0, 1.0, 1.0], "end": None},
        "runs": [_row(runs[0], 0.96)],
        "missing": [runs[1].name],
        "failed": [],
    }
    seen: list[str] = []
    args = argparse.Namespace(budget_minutes=None, runs=tmp_path / "runs", out=tmp_path, retry_seconds=0)
    bench.fig4.sweep(
        runs, args, results, lambda run, folder: seen.append(run.name) or _row(run, 0.97), bench.write_results
    )
    assert seen == ["T16_e2_s0"] and results["missing"] == []
    written = json.loads((tmp_path / "low_density.json").read_text())
    assert [row["name"] for row in written["runs"]] == ["momentum_e2_s0", "T16_e2_s0"]
