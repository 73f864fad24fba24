"""bench/fig3_fashion.py: the run plan and its reduced configs, the density trace, skipping and resuming
runs, the budget, bad arguments, replotting, and one tiny real VGGSNN run (the tables and figures from
fake runs: test_bench_fig3_fashion_report.py)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from esl_hw.train.config import load_config

_PATH = Path(__file__).resolve().parent.parent / "bench" / "fig3_fashion.py"
_SPEC = importlib.util.spec_from_file_location("bench_fig3_fashion", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = bench  # dataclasses look their module up
_SPEC.loader.exec_module(bench)
report = sys.modules["fig3_fashion_report"]  # the tables and figures, as the script imported them


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _defaults(*argv: str) -> Any:
    return bench.parser().parse_args(list(argv))


def test_plan_runs_both_figures_with_the_reduced_settings() -> None:
    runs = bench.plan(_defaults())
    assert [run.name for run in runs] == [
        "vggsnn_d0.1_none",
        "vggsnn_d0.1_momentum",
        "mlp_d0.1_none",
        "mlp_d0.1_momentum",
        "mlp_d0.1_magnitude",
        "vggsnn_d1.0_none",
        "vggsnn_d0.01_none",
        "vggsnn_d0.3_none",
        "vggsnn_d0.05_none",
        "vggsnn_d0.1_magnitude",
    ]
    by_name = {run.name: run for run in runs}
    assert by_name["vggsnn_d0.1_none"].figures == ("3a", "3b")  # one run, drawn in both figures
    assert sum("3a" in run.figures for run in runs) == 5 and sum("3b" in run.figures for run in runs) == 6
    assert all(report.figures_of(run.name) == run.figures for run in runs)  # what the tables' notes use
    vgg = by_name["vggsnn_d0.05_none"].config
    base = load_config(bench.train_runs.CONFIGS / "fashion_mnist_vggsnn_d0.1.yaml")
    assert (vgg.model.kind, vgg.model.width, vgg.model.timesteps) == ("vggsnn", 0.125, 4)
    assert (vgg.data.dataset, vgg.data.path, vgg.data.train_samples) == ("images", bench.FASHION, 10000)
    assert (vgg.sparsity.density, vgg.sparsity.delta_t, vgg.sparsity.redistribute) == (0.05, 25, "none")
    assert vgg.train.epochs == 8 and vgg.train.threads == 1
    assert (vgg.sparsity.init, vgg.model.tet_lambda, vgg.train.lr) == (
        base.sparsity.init,
        base.model.tet_lambda,
        base.train.lr,
    )
    assert by_name["vggsnn_d0.1_magnitude"].config.sparsity.redistribute == "magnitude"
    mlp = by_name["mlp_d0.1_momentum"].config
    original = load_config(bench.train_runs.CONFIGS / "mnist_multispike_d0.1.yaml")
    assert mlp.model == original.model and mlp.data.path == bench.MNIST and mlp.data.train_samples is None
    assert (mlp.sparsity.dense_layers, mlp.sparsity.init, mlp.sparsity.redistribute) == (
        (),
        "uniform",
        "momentum",
    )
    assert (mlp.train.epochs, mlp.sparsity.delta_t) == (5, 50)
    seeded = bench.plan(_defaults("--seed", "2", "--redistribute", "none", "--densities", "0.1"))
    assert [run.name for run in seeded] == ["vggsnn_d0.1_none_s2", "mlp_d0.1_none_s2"]


def test_density_trace_reads_every_update_and_epoch(tmp_path: Path) -> None:
    def update(iteration: int, densities: list[float]) -> dict[str, Any]:
        layers = [
            {
                "name": f"l{index}",
                "density": value,
                "active": round(value * 100),
                "pruned": 3,
                "grown": 3 + index,
            }
            for index, value in enumerate(densities)
        ]
        return {"iteration": iteration, "layers": layers}

    records = [
        {
            "esl_updates": [update(2, [0.1, 0.5]), update(4, [0.09, 0.6])],
            "density": [0.09, 0.6],
            "seconds": 3,
        },
        {"esl_updates": [update(6, [0.08, 0.7])], "density": [0.08, 0.7], "seconds": 4.5},
        {"esl_updates": [], "density": [0.08, 0.7], "seconds": 4},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    trace = bench.density_trace(tmp_path)
    assert trace["layer_names"] == ["l0", "l1"]
    assert trace["start"] == pytest.approx([0.1, 0.49])  # layer 1 grew one synapse of 100 in the first update
    assert trace["updates"] == [
        {"iteration": 2, "density": [0.1, 0.5]},
        {"iteration": 4, "density": [0.09, 0.6]},
        {"iteration": 6, "density": [0.08, 0.7]},
    ]
    assert trace["epochs"] == [[0.09, 0.6], [0.08, 0.7], [0.08, 0.7]] and trace["train_seconds"] == 11.5


def _row(run: Any, accuracy: float, wall: float = 10.0) -> dict[str, Any]:
    """A scored row as :func:`score_run` makes it, without training."""
    params = [627200, 8000] if run.model == "mlp" else [72, 1152, 4608]
    start = [0.1, 0.1] if run.model == "mlp" else [1.0, 0.3, 0.05]
    end = (
        start
        if run.redistribute == "none"
        else [value * (0.9 if index == 0 else 1.5) for index, value in enumerate(start)]
    )
    row = {
        "name": run.name,
        "model": run.model,
        "target": run.density,
        "redistribute": run.redistribute,
        "figures": list(run.figures),
        "seed": run.config.seed,
        "density": run.density,
        "connections": int(run.density * sum(params)),
        "test_accuracy": accuracy,
        "val_accuracy": accuracy + 0.01,
        "best_epoch": 2,
        "train_seconds": 123.0,
        "layer_names": [f"layer{index}.weight" for index in range(len(params))],
        "layer_params": params,
        "start": start,
        "updates": [{"iteration": 25, "density": start}, {"iteration": 50, "density": end}],
        "epochs": [start, end],
        "config": {"epochs": run.config.train.epochs, "delta_t": run.config.sparsity.delta_t},
        "wall_seconds": wall,
    }
    if run.model == "mlp":
        row["test_accuracy_integer"] = accuracy - 0.001
    return row


def _results(runs: list[Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    done = {row["name"] for row in rows}
    return {
        "command": "python bench/fig3_fashion.py",
        "seed": 0,
        "test_images": 10000,
        "vggsnn": {
            "width": 0.125,
            "channels": "8-16-32-32-64-64-64-64",
            "timesteps": 4,
            "train_samples": 10000,
            "val_fraction": 0.1,
            "epochs": 8,
            "delta_t": 25,
        },
        "mlp": {"epochs": 5, "delta_t": 50},
        "planned": {figure: sum(figure in run.figures for run in runs) for figure in ("3a", "3b")},
        "machine": {"cpu": "test CPU", "cores": 2, "python": "3", "torch": "2"},
        "load_average": {"start": [1.0, 1.0, 1.0], "end": None},
        "runs": rows,
        "missing": [run.name for run in runs if run.name not in done],
        "failed": [],
    }


def _folders(tmp_path: Path) -> list[str]:
    (tmp_path / "fashion").mkdir()
    (tmp_path / "mnist").mkdir()
    return [
        "--data",
        str(tmp_path / "fashion"),
        "--mnist",
        str(tmp_path / "mnist"),
        "--out",
        str(tmp_path / "out"),
    ]


def test_main_skips_scored_runs_reruns_changed_ones_and_keeps_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "plot_fig3a", lambda *args: None)
    monkeypatch.setattr(report, "plot_fig3b", lambda *args: None)
    executed: list[str] = []

    def execute(run: Any, runs: Path) -> dict[str, Any]:
        executed.append(run.name)
        return _row(run, 0.85)

    monkeypatch.setattr(bench, "execute", execute)
    argv = _folders(tmp_path)
    bench.main(argv)
    assert len(executed) == 10
    results = json.loads((tmp_path / "out" / "fig3b_redistribution.json").read_text())
    assert len(results["runs"]) == 6 and results["missing"] == [] and results["wall_seconds"] is not None
    executed.clear()
    bench.main(argv)  # everything scored: nothing runs, the tables are rewritten from the JSONs
    assert executed == []
    assert "5 of 5 runs complete" in (tmp_path / "out" / "fig3a_fashion_vggsnn.md").read_text()
    bench.main([*argv, "--epochs", "3"])  # the VGGSNN runs changed; the MLP's did not
    assert executed == [name for name in executed if name.startswith("vggsnn")] and len(executed) == 7
    executed.clear()
    monkeypatch.setattr(
        bench, "execute", lambda run, runs: executed.append(run.name) or _row(run, 0.8, 600.0)
    )
    bench.main([*argv, "--epochs", "4", "--budget-minutes", "5"])
    assert len(executed) == 1  # the first starts (no time known), a second would end after 5 minutes
    text = (tmp_path / "out" / "fig3a_fashion_vggsnn.md").read_text()
    assert "Not complete (left out above)" in text and "--budget-minutes 5" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--epochs", "0"], "argument --epochs"),
        (["--train-samples", "-5"], "argument --train-samples"),
        (["--seed", "-1"], "argument --seed"),
        (["--timesteps", "x"], "argument --timesteps"),
        (["--redistribute", "global"], "argument --redistribute: invalid choice"),
    ],
)
def test_bad_arguments_stop_with_one_line_and_exit_2(argv: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        bench.main(argv)
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in error


def test_a_missing_data_folder_is_one_line(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        bench.main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path)])
    assert stop.value.code == 2
    assert (
        f"data folder {tmp_path / 'nowhere'} is missing" in capsys.readouterr().err.strip().splitlines()[-1]
    )


def test_score_run_trains_and_scores_a_tiny_vggsnn_on_the_whole_test_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = tmp_path / "images"
    data.mkdir()
    for name, count in (("train", 24), ("test", 9)):
        labels = np.arange(count) % 2
        images = rng.integers(0, 50, (count, 16, 16)) + 200 * labels[:, None, None]
        np.savez(data / f"{name}.npz", x=images.astype(np.uint8), y=labels)
    args = _defaults("--data", str(data), "--width", "0.0625", "--timesteps", "1", "--train-samples", "20")
    args.epochs, args.delta_t = 4, 1
    run = bench.Run(
        "vggsnn_d0.1_momentum", "vggsnn", 0.1, "momentum", ("3b",), bench.vgg_config(args, 0.1, "momentum")
    )
    row = bench.score_run(run, tmp_path / "runs")
    assert row["test_images"] == 9 and 0.0 <= row["test_accuracy"] <= 1.0
    assert row["layer_names"][0] == "features.0.module.0.weight" and len(row["layer_names"]) == 9
    assert len(row["layer_params"]) == 9 and row["layer_params"][0] == 4 * 1 * 9
    assert row["connections"] == pytest.approx(0.1 * sum(row["layer_params"]), rel=0.05)
    assert len(row["updates"]) == 2 and len(row["epochs"]) == 4  # 1 iteration an epoch, t_end 3
    assert row["config"] == {"epochs": 4, "delta_t": 1} and row["figures"] == ["3b"]
    total = [
        sum(d * p for d, p in zip(update["density"], row["layer_params"], strict=True))
        for update in row["updates"]
    ]
    assert max(total) - min(total) < 1.5  # redistribution keeps the total count
    start = sum(d * p for d, p in zip(row["start"], row["layer_params"], strict=True))
    assert start == pytest.approx(total[0], abs=1.5)
    again = bench.score_run(run, tmp_path / "runs")  # finished: reused, not retrained
    assert again["test_accuracy"] == row["test_accuracy"] and again["updates"] == row["updates"]


def test_replot_reads_the_traces_anew_from_the_run_folders(tmp_path: Path) -> None:
    runs = bench.plan(_defaults())
    row = _row(runs[0], 0.84)
    del row["start"]  # scored by an older version of the script
    run = tmp_path / "runs" / runs[0].name
    run.mkdir(parents=True)
    layers = [{"name": "a", "density": 0.5, "active": 50, "pruned": 10, "grown": 20}]
    record = {"esl_updates": [{"iteration": 7, "layers": layers}], "density": [0.5], "seconds": 2.0}
    (run / "metrics.jsonl").write_text(json.dumps(record) + "\n")
    row["run"] = str(run)
    report.write_results(_results(runs, [row]), tmp_path / "out")
    bench.main(["--replot", "--out", str(tmp_path / "out")])
    written = json.loads((tmp_path / "out" / "fig3b_redistribution.json").read_text())["runs"][0]
    assert written["start"] == pytest.approx([0.4]) and written["updates"] == [
        {"iteration": 7, "density": [0.5]}
    ]
    assert written["test_accuracy"] == 0.84  # the scores stay
