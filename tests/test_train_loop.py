"""Tests for esl_hw.train.loop: a tiny run learns, writes a complete run folder, refuses to overwrite."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from data_support import tiny_splits, write_idx_dataset, write_npz_dataset

from esl_hw.datasets import Split
from esl_hw.errors import EslError
from esl_hw.outputs import OUTPUT_MARKER
from esl_hw.train.config import config_from_dict, load_config
from esl_hw.train.export import load_checkpoint
from esl_hw.train.loop import build_training, resolve_device, split_train_val, train

TINY = {
    "seed": 1,
    "data": {"train_samples": 1200, "val_fraction": 0.25},
    "model": {"hidden": [32], "timesteps": 4},
    "sparsity": {"density": 0.3, "delta_t": 5},
    "train": {"epochs": 3, "batch_size": 50, "lr": 0.01, "lr_schedule": "constant"},
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    return train(config_from_dict(TINY), out, progress=False)


def test_tiny_run_learns_far_above_chance(tiny_run) -> None:
    assert tiny_run.val_accuracy > 0.6
    assert 1 <= tiny_run.best_epoch <= 3
    assert tiny_run.run_dir.is_dir()


def test_run_folder_holds_config_checkpoint_and_metrics(tiny_run) -> None:
    folder = tiny_run.run_dir
    names = sorted(path.name for path in folder.iterdir())
    assert names == [OUTPUT_MARKER, "checkpoint.pt", "config.yaml", "metrics.jsonl"]
    assert load_config(folder / "config.yaml") == config_from_dict(TINY)
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in records] == [1, 2, 3]
    first_density = records[0]["density"]
    for record in records:
        assert record["density"] == first_density  # constant density through training
        assert 0.0 <= record["val_accuracy"] <= 1.0
        assert record["seconds"] > 0
    assert records[-1]["loss"] < records[0]["loss"]
    updates = [update for record in records for update in record["esl_updates"]]
    assert updates and all(layer["pruned"] == layer["grown"] for u in updates for layer in u["layers"])
    assert sum(first_density[i] * n for i, n in enumerate([784 * 32, 32 * 10])) == pytest.approx(
        0.3 * (784 * 32 + 320), rel=1e-3
    )
    checkpoint = load_checkpoint(folder)
    assert checkpoint["complete"] and checkpoint["sizes"] == [784, 32, 10]
    best = max(records, key=lambda record: record["val_accuracy"])
    assert checkpoint["val_accuracy"] == best["val_accuracy"]
    assert not list(folder.parent.glob(".tiny.partial-*"))


def test_momentum_redistribution_moves_the_logged_layer_densities_at_constant_total(tmp_path: Path) -> None:
    sparsity = {
        "density": 0.2,
        "delta_t": 2,
        "grow": "momentum",
        "redistribute": "momentum",
        "dense_layers": [2],
    }
    raw = {**TINY, "data": {"train_samples": 400, "val_fraction": 0.2}, "sparsity": sparsity}
    raw["model"], raw["train"] = {"hidden": [32, 16], "timesteps": 4}, {**TINY["train"], "epochs": 1}
    result = train(config_from_dict(raw), tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    updates = records[0]["esl_updates"]
    sizes = [784 * 32, 32 * 16, 16 * 10]
    initial = [layer["active"] - layer["grown"] + layer["pruned"] for layer in updates[0]["layers"]]
    total = sum(initial)
    assert total == pytest.approx(0.2 * sum(sizes), abs=2) and initial[2] == sizes[2]
    for update in updates:  # the total is kept exactly at every update, the layers' counts move
        assert sum(layer["active"] for layer in update["layers"]) == total
        assert update["layers"][2]["active"] == sizes[2]  # the dense layer stays dense
    logged = records[0]["density"]  # the per-layer densities the run's density.png plots
    assert logged[:2] != [count / size for count, size in zip(initial[:2], sizes, strict=False)]
    assert logged[2] == 1.0
    assert sum(density * size for density, size in zip(logged, sizes, strict=True)) == pytest.approx(total)
    assert records[0]["overall_density"] == pytest.approx(total / sum(sizes))
    assert result.densities == logged


def test_dense_and_overridden_layers_are_fixed_under_redistribution() -> None:
    sparsity = {"redistribute": "magnitude", "dense_layers": [2], "layer_density": {0: 0.05}}
    config = config_from_dict({"model": {"hidden": [32, 16], "timesteps": 4}, "sparsity": sparsity})
    _, _, engine = build_training(config, 10)
    assert engine.movable == [False, True, False]
    assert engine.redistribute == "magnitude"


def test_refuses_a_non_empty_run_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    small = dict(
        TINY, data={"train_samples": 100, "val_fraction": 0.2}, train={"epochs": 1, "batch_size": 50}
    )
    with pytest.raises(EslError, match="exists; pass --force"):
        train(config_from_dict(small), out, progress=False)
    with pytest.raises(EslError, match="'notes.txt', which esl-hw did not write"):
        train(config_from_dict(small), out, force=True, progress=False)
    assert (out / "notes.txt").read_text() == "keep me"
    (out / "notes.txt").unlink()
    result = train(config_from_dict(small), out, force=True, progress=False)
    assert (result.run_dir / "checkpoint.pt").is_file()
    again = train(config_from_dict(small), out, force=True, progress=False)  # replaces its own run
    assert (again.run_dir / "checkpoint.pt").is_file()


def test_same_seed_same_run(tmp_path: Path) -> None:
    small = dict(
        TINY, data={"train_samples": 200, "val_fraction": 0.2}, train={"epochs": 1, "batch_size": 50}
    )
    config = config_from_dict(small)
    first = load_checkpoint(train(config, tmp_path / "a", progress=False).run_dir)
    second = load_checkpoint(train(config, tmp_path / "b", progress=False).run_dir)
    for key, value in first["model"].items():
        assert torch.equal(value, second["model"][key])


def test_missing_dataset_leaves_no_run_folder(tmp_path: Path) -> None:
    config = config_from_dict(dict(TINY, data={"path": str(tmp_path / "nowhere")}))
    with pytest.raises(EslError, match="not a folder"):
        train(config, tmp_path / "run", progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EslError, match="lacks train-images"):
        train(config_from_dict(dict(TINY, data={"path": str(empty)})), tmp_path / "run", progress=False)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["empty"]


def test_validation_split_is_disjoint_and_sized() -> None:
    split = Split(np.arange(100, dtype=np.uint8).reshape(100, 1), np.arange(100))
    train_part, val_part = split_train_val(split, 0.1, seed=0)
    assert len(train_part) == 90 and len(val_part) == 10
    assert set(train_part.labels) | set(val_part.labels) == set(range(100))
    assert not set(train_part.labels) & set(val_part.labels)


def test_without_validation_the_last_epoch_is_kept(tmp_path: Path) -> None:
    config = config_from_dict(dict(TINY, data={"train_samples": 100, "val_fraction": 0}, train={"epochs": 2}))
    result = train(config, tmp_path / "run", progress=False)
    assert result.best_epoch == 2 and result.val_accuracy is None
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["val_accuracy"] is None


def test_one_progress_line_per_epoch_off_a_terminal_and_none_when_quiet(tmp_path: Path, capsys) -> None:
    from esl_hw import progress

    config = config_from_dict(
        dict(TINY, data={"train_samples": 100, "val_fraction": 0.2}, train={"epochs": 2})
    )
    train(config, tmp_path / "run", progress=True)
    err = capsys.readouterr().err
    epoch = r"\[\d\d:\d\d:\d\d\] train epoch (\d)/2  loss \S+  val \d\.\d{4}  density 0\.\d{4}  \(\d+\.\d s\)"
    assert re.findall(epoch, err) == ["1", "2"], err
    assert "it/s" not in err, "no live bar off a terminal"
    previous = progress.set_quiet(True)
    try:
        train(config, tmp_path / "quiet", progress=True)
    finally:
        progress.set_quiet(previous)
    assert capsys.readouterr().err == ""


def test_device_resolution_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(EslError, match="train.device: cuda asked for"):
        resolve_device("cuda")


def test_cuda_run_without_a_gpu_is_refused_before_the_folder_appears(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = config_from_dict({**TINY, "train": {**TINY["train"], "device": "cuda"}})
    with pytest.raises(EslError, match="cuda"):
        train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- data of any size and class count


@pytest.mark.parametrize(
    ("kind", "writer"), [("lif", write_npz_dataset), ("single_spike", write_idx_dataset)]
)
def test_the_network_takes_its_input_size_and_classes_from_the_data(
    tmp_path: Path, kind: str, writer
) -> None:
    data = writer(tmp_path / "data", tiny_splits(np.random.default_rng(4), shape=(8, 8), classes=3))
    config = config_from_dict(
        {
            "seed": 2,
            "data": {"path": str(data), "val_fraction": 0.2},
            "model": {"kind": kind, "hidden": [16, 8], "timesteps": 4},
            "sparsity": {"density": 0.5, "delta_t": 3},
            "train": {"epochs": 3, "batch_size": 30, "lr": 0.01},
        }
    )
    result = train(config, tmp_path / "run", progress=False)
    checkpoint = load_checkpoint(result.run_dir)
    assert checkpoint["sizes"] == [64, 16, 8, 3]
    weights = [value for key, value in checkpoint["model"].items() if key.startswith("weights.")]
    assert [tuple(weight.shape) for weight in weights] == [(64, 16), (16, 8), (8, 3)]
    assert result.val_accuracy > 0.6  # chance is 1/3: the class is a bright band's place


def test_the_trainer_limit_is_checked_with_the_datas_sizes_before_anything_is_built(tmp_path: Path) -> None:
    data = write_npz_dataset(tmp_path / "data", tiny_splits(np.random.default_rng(4), train=10, test=5))
    config = config_from_dict(dict(TINY, data={"path": str(data)}, model={"hidden": [1_000_000, 100]}))
    with pytest.raises(EslError, match=r"needs 164000300 dense weights \(64-1000000-100-3\), more than"):
        train(config, tmp_path / "run", progress=False)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data"]
