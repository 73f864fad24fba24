"""The stages of a point of ``esl-hw explore`` (:mod:`esl_hw.app.explore_points`): which points share a
stage (the same key), and the record a point's results make."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import random_model

from esl_hw.app.explore_cache import StageCache
from esl_hw.app.explore_points import (
    hardware_stages,
    model_digest,
    point_record,
    train_stage,
    training_device,
)
from esl_hw.app.explore_space import grid_points, load_space
from esl_hw.artifact_io import load_model, save_model
from esl_hw.errors import EslError

CONTEXT = {
    "data": {"train": 6000, "test": 1000, "sha256": "00" * 32},
    "data_path": None,
    "gpus": 0,
    "deadlines": {"train": 60.0, "cosim": 60.0, "synth": 60.0},
    "environment": {},
}


@pytest.fixture
def space(tmp_path: Path):
    data = {
        "fixed": {"model.hidden": [16], "hardware.samples": 4},
        "axes": {
            "sparsity.density": [0.1, 0.3],
            "hardware.lanes": [1, 2],
            "hardware.target": [None, "ecp5-85k", "ice40-up5k"],
        },
    }
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return load_space(tmp_path / "space.yaml")


@pytest.fixture
def trained(tmp_path: Path) -> tuple[StageCache, dict]:
    """A train entry holding a 784-16-10 model, as the train stage leaves it."""
    cache = StageCache(tmp_path / "cache")
    model = random_model(np.random.default_rng(5), (784, 16, 10), timesteps=4, w_bits=6)
    save_model(model, cache.entry("train", "t" * 24) / "model")
    return cache, {"key": "t" * 24, "accuracy": 0.9, "synapses": model.synapses}


def test_points_that_differ_in_hardware_share_their_training(space, tmp_path: Path) -> None:
    cache = StageCache(tmp_path / "cache")
    keys = {}
    for point in grid_points(space):
        keys.setdefault(point.config["sparsity"]["density"], set()).add(
            train_stage(point, cache, CONTEXT).key
        )
    assert [len(found) for found in keys.values()] == [1, 1] and keys[0.1] != keys[0.3]
    point = grid_points(space)[0]
    other_data = {**CONTEXT, "data": {**CONTEXT["data"], "sha256": "01" * 32}}
    assert train_stage(point, cache, other_data).key != train_stage(point, cache, CONTEXT).key
    stage = train_stage(point, cache, CONTEXT)
    assert stage.request["config"]["data"]["path"] is None and stage.gpus == 0
    assert stage.request["config"]["train"]["device"] == "cpu"


def test_training_device_follows_the_cluster() -> None:
    assert training_device("cpu", 2) == ("cpu", 0)
    assert training_device("auto", 0) == ("cpu", 0) and training_device("auto", 1) == ("cuda", 1)
    assert training_device("cuda", 1) == ("cuda", 1)
    with pytest.raises(EslError, match="the Ray cluster has no GPU"):
        training_device("cuda", 0)


def test_hardware_stages_and_their_sharing(space, trained) -> None:
    cache, train = trained
    points = {(p.hardware["lanes"], p.hardware["target"]): p for p in grid_points(space)[:6]}
    plain = hardware_stages(points[(1, None)], train, cache, CONTEXT)
    assert [stage.stage for stage in plain] == ["cosim"]
    ecp5 = hardware_stages(points[(1, "ecp5-85k")], train, cache, CONTEXT)
    assert [stage.stage for stage in ecp5] == ["cosim", "synth"]
    assert ecp5[0].key == plain[0].key, "block RAM either way: one co-simulation serves both"
    assert ecp5[1].request["inputs"]["freq_mhz"] == 100.0 and ecp5[1].request["inputs"]["rewiring"] is None
    assert hardware_stages(points[(2, None)], train, cache, CONTEXT)[0].key != plain[0].key
    up5k = hardware_stages(points[(1, "ice40-up5k")], train, cache, CONTEXT)
    assert up5k[1].key != ecp5[1].key and up5k[1].request["inputs"]["freq_mhz"] == 24.0
    assert up5k[0].request["model_dir"] == str(cache.entry("train", train["key"]) / "model")


def test_the_model_digest_ignores_metadata_but_not_a_weight(trained) -> None:
    cache, train = trained
    model = load_model(cache.entry("train", train["key"]) / "model")
    digest = model_digest(model)
    model.metadata["run_dir"] = "/somewhere/else"
    assert model_digest(model) == digest
    layer = model.layers[0]
    layer.weight[0] += 1
    assert model_digest(model) != digest


def cosim_result(mismatches: int = 0) -> dict:
    return {
        "key": "c" * 24, "cycles_per_inference": 500.0, "memory_bits": 40000, "energy_per_inference_j": 3e-8,
        "rtl_samples": 4, "rtl_mismatches": mismatches, "rtl_problems": [], "rtl_accuracy": 0.75,
        "cycle_floor": 480.0, "cycles_over_floor": 1.04, "inputs": {"synapse_memory": "block"},
    }  # fmt: skip


def synth_result(fits: bool = True) -> dict:
    return {
        "key": "s" * 24, "fits": fits, "fmax_mhz": 50.0 if fits else None, "luts": 4000, "ffs": 3000,
        "bram": 12, "device": "LFE5U-85F", "freq_mhz": 100.0, "timing_met": False, "rewiring": True,
        "spram": 0, "utilisation": {},
    }  # fmt: skip


TRAIN_RESULT = {
    "key": "t" * 24, "accuracy": 0.91, "synapses": 1270, "val_accuracy": 0.9, "density": 0.1,
    "sizes": [784, 16, 10], "timesteps": 4, "w_bits": [8, 8], "test_images": 1000, "dataset": "embedded",
}  # fmt: skip


def test_point_records(space, tmp_path: Path) -> None:
    cache = StageCache(tmp_path / "cache")
    point = grid_points(space)[1]
    record = point_record(2, point, {"train": TRAIN_RESULT, "cosim": cosim_result()}, cache, session=1)
    assert record["status"] == "ok" and record["metrics"]["latency_us"] is None
    assert record["metrics"]["accuracy"] == 0.91 and record["metrics"]["cycles"] == 500.0
    assert record["keys"] == {"train": "t" * 24, "cosim": "c" * 24} and record["session"] == 1
    assert record["model_dir"].endswith(f"train/{'t' * 24}/model")
    results = {"train": TRAIN_RESULT, "cosim": cosim_result(), "synth": synth_result()}
    synthesised = point_record(2, point, results, cache, session=1)
    assert synthesised["metrics"]["latency_us"] == 10.0 and synthesised["metrics"]["luts"] == 4000
    assert synthesised["details"]["timing_met"] is False
    results["synth"] = synth_result(fits=False)
    assert point_record(2, point, results, cache, 1)["status"] == "does not fit"
    results["cosim"] = cosim_result(mismatches=1)
    assert point_record(2, point, results, cache, 1)["status"] == "mismatch"
