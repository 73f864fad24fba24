"""The stages of ``esl-hw explore`` run through the cache (:mod:`esl_hw.app.explore_stages`), without
Ray: the real trainer, export, reference and co-simulation on a tiny network, reuse of finished
entries, and a training killed mid-run that resumes from its last epoch."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from esl_hw.app.explore_cache import RESULT, StageCache, stage_key
from esl_hw.app.explore_stages import run_stage
from esl_hw.train.config import config_to_dict, default_config

DATA = {"train": 6000, "test": 1000, "sha256": "embedded"}


def tiny_config(epochs: int = 1) -> dict:
    config = config_to_dict(default_config())
    config["model"].update(hidden=[8], timesteps=2)
    config["data"].update(train_samples=600, val_fraction=0.2)
    config["train"].update(epochs=epochs)
    return config


def train_request(cache: Path, config: dict) -> dict:
    inputs = {"config": config, "data": DATA}
    key = stage_key("train", inputs)
    return {"cache": str(cache), "key": key, "inputs": inputs, "config": config, "data_path": None,
            "deadline_s": 120.0, "environment": {}}  # fmt: skip


def test_train_then_cosim_through_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    request = train_request(cache, tiny_config())
    first = run_stage("train", request)
    assert first["computed"] and 0 <= first["result"]["accuracy"] <= 1
    result = first["result"]
    assert result["test_images"] == 1000 and result["sizes"] == [784, 8, 10] and result["timesteps"] == 2
    entry = StageCache(cache).entry("train", request["key"])
    assert (entry / "model" / "model.yaml").is_file() and (entry / "run" / "checkpoint.pt").is_file()
    again = run_stage("train", request)
    assert not again["computed"] and again["result"] == result
    inputs = {"model": "m", "lanes": 2, "synapse_memory": "block", "lane_fifo_depth": 32, "data": DATA,
              "samples": 2, "simulator": "icarus"}  # fmt: skip
    cosim = {
        **request,
        "key": stage_key("cosim", inputs),
        "inputs": inputs,
        "model_dir": str(entry / "model"),
    }
    if shutil.which("iverilog") is None:
        pytest.skip("Icarus Verilog not installed")
    simulated = run_stage("cosim", cosim)
    figures = simulated["result"]
    assert simulated["computed"] and figures["rtl_samples"] == 2 and figures["rtl_mismatches"] == 0
    assert figures["lanes"] == 2 and figures["cycles_per_inference"] > 0 and figures["memory_bits"] > 0
    sim = json.loads((StageCache(cache).entry("cosim", cosim["key"]) / "sim.json").read_text())
    assert sim["cycles_per_inference"] == figures["cycles_per_inference"]
    assert not (StageCache(cache).entry("cosim", cosim["key"]) / "cosim").exists(), "traces are not kept"


def test_a_run_finished_before_a_kill_is_not_trained_again(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    request = train_request(cache, tiny_config())
    run_stage("train", request)
    entry = StageCache(cache).entry("train", request["key"])
    work = entry.parent / f".{request['key']}.work"
    entry.rename(work)  # as if killed after training, before the entry was committed
    (work / RESULT).unlink()
    shutil.rmtree(work / "model")
    redone = run_stage("train", request)
    assert redone["computed"] and redone["result"]["train_seconds"] is None, "export and scoring only"
    assert (entry / "model" / "model.yaml").is_file()


def test_a_training_killed_mid_run_resumes_from_its_last_epoch(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    config = tiny_config(epochs=4)
    config["data"]["train_samples"] = 2000
    request = train_request(cache, config)
    script = (
        "import json, sys; from esl_hw.app.explore_stages import run_stage; "
        "run_stage('train', json.loads(sys.argv[1]))"
    )
    child = subprocess.Popen([sys.executable, "-c", script, json.dumps(request)])
    state = cache / "train" / f".{request['key']}.work" / ".run.partial" / "state.pt"
    try:
        deadline = time.monotonic() + 120
        while not state.is_file() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state.is_file(), "the child saved an epoch"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    resumed = run_stage("train", request)
    assert resumed["computed"]
    assert resumed["result"]["resumed_after_epoch"] in (1, 2, 3), "trained on from the epoch saved"
    metrics = StageCache(cache).entry("train", request["key"]) / "run" / "metrics.jsonl"
    assert [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()] == [1, 2, 3, 4]


def test_a_stage_leaves_the_callers_progress_and_environment_as_they_were(
    tmp_path: Path, monkeypatch
) -> None:
    from esl_hw import progress

    monkeypatch.delenv("ESL_HW_CACHE_MAX_MB", raising=False)
    cache = StageCache(tmp_path / "cache")
    with cache.claim("cosim", "k" * 24, 5) as claim:
        cache.commit(claim, {"cycles_per_inference": 1.0})
    request = {"cache": str(tmp_path / "cache"), "key": "k" * 24, "deadline_s": 5.0,
               "environment": {"ESL_HW_CACHE_MAX_MB": "17"}}  # fmt: skip
    before = progress.is_quiet()
    assert run_stage("cosim", request)["computed"] is False
    assert progress.is_quiet() == before and "ESL_HW_CACHE_MAX_MB" not in os.environ


def test_a_design_refused_before_any_tool_is_a_point_that_does_not_fit(tmp_path: Path) -> None:
    """``synthesize`` refuses a core whose block memories alone exceed the device before Yosys runs,
    and writes no report: the synth stage records it as a design that does not fit, with the
    refusal's text, instead of failing the point (a 784-512-10 at density 0.5 needs several times
    the UP5K's SPRAM)."""
    import numpy as np
    from rtl_support import random_model

    from esl_hw.artifact_io import save_model

    model = random_model(np.random.default_rng(0), [784, 512, 10], density=0.5, w_bits=6)
    model_dir = save_model(model, tmp_path / "model")
    inputs = {"model": "m", "lanes": 4, "synapse_memory": "auto", "lane_fifo_depth": 4,
              "target": "ice40-up5k", "freq_mhz": 24.0, "rewiring": False}  # fmt: skip
    request = {"cache": str(tmp_path / "cache"), "key": stage_key("synth", inputs), "inputs": inputs,
               "model_dir": str(model_dir), "deadline_s": 120.0, "environment": {}}  # fmt: skip
    result = run_stage("synth", request)["result"]
    assert result["fits"] is False and "does not fit iCE40UP5K" in result["refusal"]
    assert "block-memory estimate" in result["refusal"] and result["device"] == "iCE40UP5K"
    assert result["luts"] is None and result["fmax_mhz"] is None and result["utilisation"] == {}
    entry = StageCache(tmp_path / "cache").entry("synth", request["key"])
    assert json.loads((entry / RESULT).read_text())["fits"] is False, "kept in the cache like any result"
