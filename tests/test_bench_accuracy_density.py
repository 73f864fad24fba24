"""bench/accuracy_density.py: run plan, seed statistics and target verdicts (training is the bench),
and the Fashion-MNIST sweep: its configs, run names, output folder and a one-epoch smoke run."""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parent.parent / "bench" / "accuracy_density.py"
_SPEC = importlib.util.spec_from_file_location("bench_accuracy_density", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = bench  # dataclasses look their module up
_SPEC.loader.exec_module(bench)


def _args(**changes) -> argparse.Namespace:
    values = {
        "dataset": "mnist",
        "data": None,
        "epochs": None,
        "single_epochs": 40,
        "train_samples": None,
        "test_samples": None,
        "delta_t": None,
        "seeds": [0, 1],
        "densities": list(bench.DENSITIES),
        "growth_seeds": 1,
        "grow_rules": list(bench.GROW_RULES),
        "device": "cpu",
        "jobs": 1,
        "skip_growth": False,
        "skip_single": False,
    }
    return argparse.Namespace(**(values | changes))


def test_plan_runs_every_experiment_once_first_seed_first() -> None:
    jobs = bench.plan_jobs(_args())
    names = [job.name for job in jobs]
    assert len(names) == len(set(names))
    # 5 densities x 2 seeds, 4 growth rules besides the configs' own (random) x 2 densities, 1 single
    assert len(jobs) == 10 + 8 + 1
    assert "grow_random_d0.1" not in names  # the sweep's run at 0.1 already uses random growth
    first_other_seed = next(index for index, job in enumerate(jobs) if job.seed == 1)
    assert all(job.seed == 0 for job in jobs[:first_other_seed])
    assert jobs[first_other_seed - 1].kind == "single"
    single = next(job for job in jobs if job.kind == "single")
    assert single.config.train.epochs == 40 and single.config.model.kind == "single_spike"
    growth = next(job for job in jobs if job.name == "grow_momentum_d0.01")
    assert growth.config.sparsity.grow == "momentum" and growth.config.seed == 0
    assert {job.config.seed for job in jobs if job.name.endswith("_s1")} == {1}
    chip = next(job for job in jobs if job.name == "grow_hardware-random_d0.1")
    assert chip.config.sparsity.prune == "magnitude"  # the rule needs it
    assert growth.config.sparsity.prune == "set"


def test_growth_rules_alone() -> None:
    jobs = bench.plan_jobs(_args(seeds=[0], densities=[], grow_rules=["hardware-random"], skip_single=True))
    assert [job.name for job in jobs] == ["grow_hardware-random_d0.1", "grow_hardware-random_d0.01"]


def test_plan_options_narrow_it() -> None:
    jobs = bench.plan_jobs(_args(seeds=[3], densities=[0.1], skip_growth=True, skip_single=True, epochs=2))
    assert [(job.name, job.config.seed, job.config.train.epochs) for job in jobs] == [("multi_d0.1_s3", 3, 2)]


def _row(kind: str, seed: int, target: float, grow: str, accuracy: float) -> dict:
    return {
        "kind": kind,
        "seed": seed,
        "target": target,
        "grow": grow,
        "density": target,
        "connections": 10,
        "test_accuracy_integer": accuracy,
        "test_accuracy_float": accuracy,
    }


def test_summary_statistics_and_growth_seeds() -> None:
    rows = [
        _row("multi", 0, 0.1, "random", 0.98),
        _row("multi", 1, 0.1, "random", 0.97),
        _row("grow", 0, 0.1, "gradient", 0.99),
    ]
    summary = bench.summarise(rows, growth_seeds=[0])
    (multi,) = summary["multi_spike"]
    assert multi["seeds"] == [0, 1]
    assert multi["integer"]["mean"] == pytest.approx(0.975)
    assert multi["integer"]["std"] == pytest.approx(0.005)
    assert multi["integer"]["min"] == 0.97
    growth = {row["grow"]: row for row in summary["growth_rules"]}
    assert growth["random"]["seeds"] == [0]  # seed 1 left out: the other rules ran seed 0 only
    assert growth["gradient"]["integer"]["mean"] == 0.99


def test_target_verdict_uses_the_worst_seed() -> None:
    results = {
        "command": "x",
        "runs": [_row("multi", 0, 0.1, "random", 0.98), _row("multi", 1, 0.1, "random", 0.97)],
    }
    summary = bench.summarise(results["runs"])
    for row in summary["multi_spike"]:
        row.update(flops=1, gpu_energy_uj=1.0, sops_per_image=1.0, neuromorphic_energy_uj=1.0)
    text = bench._markdown(results, summary)
    assert "density 0.1: ≥ 97.50%, worst seed 97.00%: NOT met" in text


@pytest.mark.parametrize(
    ("name", "density"), [("mnist_d0.1", 0.1), ("mnist_d0.05", 0.05), ("mnist_d0.1_hwrandom", 0.1)]
)
def test_kept_trained_models_are_valid_and_accurate(name: str, density: float) -> None:
    from esl_hw.artifact_io import load_model
    from esl_hw.datasets import load_mnist
    from esl_hw.reference import accuracy

    model = load_model(_PATH.parent / "models" / name)
    assert [model.n_inputs, *(layer.n_out for layer in model.layers)] == [784, 800, 10]
    assert model.density == pytest.approx(density, abs=1e-3)
    test = load_mnist(None).test  # the embedded 1,000 test images
    assert accuracy(model, test.images, test.labels) >= 0.97


FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_fashion_plan_is_the_density_sweep_from_its_own_configs() -> None:
    jobs = bench.plan_jobs(_args(dataset="fashion-mnist", densities=None, seeds=[0], epochs=3))
    # growth rules and single spike are MNIST only, even without --skip-growth / --skip-single
    assert [(job.name, job.kind, job.density) for job in jobs] == [
        ("fashion_mnist_multi_d1.0", "multi", 1.0),
        ("fashion_mnist_multi_d0.3", "multi", 0.3),
        ("fashion_mnist_multi_d0.1", "multi", 0.1),
        ("fashion_mnist_multi_d0.05", "multi", 0.05),
    ]
    for job in jobs:
        assert job.config.data.path == str(FASHION)
        assert job.config.sparsity.density == job.density
        assert job.config.train.epochs == 3
        assert [tuple(job.config.model.hidden), job.config.model.timesteps] == [(800,), 8]
    other = bench.plan_jobs(_args(dataset="fashion-mnist", densities=[0.1], seeds=[0], data="/elsewhere"))
    assert other[0].config.data.path == "/elsewhere"
    mnist = bench.plan_jobs(_args(densities=[0.1], seeds=[0], skip_growth=True, skip_single=True))
    assert [(job.name, job.config.data.path) for job in mnist] == [("multi_d0.1", None)]  # embedded
    assert bench.BENCHMARKS["mnist"].out == Path("docs/benchmarks")


def test_unknown_dataset_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'kmnist'; known: mnist, fashion-mnist"):
        bench.plan_jobs(_args(dataset="kmnist"))


def test_fashion_markdown_names_the_dataset_and_the_dense_float_accuracy() -> None:
    runs = [_row("multi", 0, 1.0, "random", 0.88), _row("multi", 0, 0.1, "random", 0.86)]
    runs[0]["test_accuracy_float"] = 0.8912
    for row in runs:
        row.update(flops=1, gpu_energy_uj=1.0, sops_per_image=1.0, neuromorphic_energy_uj=1.0)
        row.update(config={"epochs": 15}, train_seconds=60.0, test_images=10000, layer_sizes=[784, 800, 10])
    results = {
        "command": "python bench/accuracy_density.py --dataset fashion-mnist --epochs 15",
        "dataset": "fashion-mnist",
        "data": str(FASHION),
        "machine": {"cpu": "Some CPU", "cores": 2, "python": "3.11", "torch": "2.13"},
        "load_average": {"start": [0.5, 0.6, 0.7], "end": [1.5, 1.6, 1.7]},
        "config_epochs": [30],
        "wall_seconds": 600.0,
        "runs": runs,
    }
    text = bench._markdown(results, bench.summarise(runs))
    assert text.startswith("# Fashion-MNIST accuracy vs density (ESL)\n")
    assert "`python bench/accuracy_density.py --dataset fashion-mnist --epochs 15`" in text
    assert "Some CPU, 2 cores" in text and "0.5, 0.6, 0.7 at the start, 1.5, 1.6, 1.7 at the end" in text
    assert "Epochs per run: 15 (the configs say 30, --epochs overrides them; wall time 10.0 min" in text
    assert "Dense float accuracy of the same MLP (784-800-10, density 1.0, float mode" in text
    assert "quantisation): 89.12%." in text
    assert "on its 10,000-image test split" in text
    assert "MNIST only: not run for Fashion-MNIST" in text
    assert "Targets" not in text and "Growth rules (test" not in text


@pytest.mark.skipif(not FASHION.is_dir(), reason=f"no Fashion-MNIST in {FASHION} (dataset-fashion-mnist)")
def test_fashion_smoke_run_writes_its_own_folder(tmp_path: Path) -> None:
    """One epoch on 200 training images per density, scored on 300 test images: the default output
    folder (relative to the working directory) is docs/benchmarks/fashion_mnist, and MNIST's is untouched."""
    command = [sys.executable, str(_PATH), "--dataset", "fashion-mnist", "--epochs", "1"]
    command += ["--train-samples", "200", "--test-samples", "300"]
    subprocess.run(command, cwd=tmp_path, check=True, capture_output=True, timeout=300)
    out = tmp_path / "docs" / "benchmarks" / "fashion_mnist"
    results = json.loads((out / "accuracy_density.json").read_text())
    assert results["dataset"] == "fashion-mnist" and results["data"] == str(FASHION)
    assert results["missing"] == []
    assert sorted(row["target"] for row in results["runs"]) == [0.05, 0.1, 0.3, 1.0]
    assert {row["kind"] for row in results["runs"]} == {"multi"}
    assert all(row["test_images"] == 300 and row["layer_sizes"] == [784, 800, 10] for row in results["runs"])
    assert all(row["config"]["epochs"] == 1 for row in results["runs"])
    assert len(results["load_average"]["end"]) == 3 and results["wall_seconds"] > 0
    assert results["command"].endswith(
        "--dataset fashion-mnist --epochs 1 --train-samples 200 --test-samples 300"
    )
    text = (out / "accuracy_density.md").read_text()
    assert text.startswith("# Fashion-MNIST accuracy vs density (ESL)")
    assert "Dense float accuracy of the same MLP" in text
    assert (out / "fig2_accuracy_density.png").is_file()
    assert not (out / "fig4_growth_rules.png").exists()
    assert sorted(path.name for path in (tmp_path / "docs" / "benchmarks").iterdir()) == ["fashion_mnist"]
    assert sorted(path.name for path in (tmp_path / "runs" / "bench").iterdir()) == [
        f"fashion_mnist_multi_d{density}" for density in ("0.05", "0.1", "0.3", "1.0")
    ]
