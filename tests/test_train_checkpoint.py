"""Tests for esl_hw.train.checkpoint: a run killed with SIGKILL resumes to exactly the uninterrupted run."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from esl_hw.errors import EslError
from esl_hw.outputs import OUTPUT_MARKER, STAGING_MARKER
from esl_hw.train.checkpoint import (
    STATE_FILE,
    STATE_FORMAT,
    load_state,
    save_atomic,
    truncate_metrics,
    work_folder,
)
from esl_hw.train.config import config_from_dict, config_to_dict
from esl_hw.train.export import load_checkpoint
from esl_hw.train.loop import train

CONFIG = {
    "seed": 3,
    "data": {"train_samples": 400, "val_fraction": 0.25},
    "model": {"hidden": [16], "timesteps": 4},
    "sparsity": {"density": 0.3, "delta_t": 2, "grow": "random-unfired", "t_end": 1.0},
    "train": {"epochs": 3, "batch_size": 50, "lr": 0.01, "lr_schedule": "cosine"},
}

# Runs train() in a subprocess that SIGKILLs itself when a log record matches: "epoch 2:" is logged
# after epoch 2's metrics line and before its state is saved; "update 8" is mid-epoch 2.
KILLER = """
import json, logging, os, signal, sys
from esl_hw.train import config_from_dict, train

class Killer(logging.Handler):
    def emit(self, record):
        message = record.getMessage()
        update = record.args[0].iteration if record.msg.startswith("ESL update") else None
        if message.startswith(sys.argv[3]) or (sys.argv[3] == "update 8" and update == 8):
            os.kill(os.getpid(), signal.SIGKILL)

for name, level in (("esl_hw.train.loop", logging.INFO), ("esl_hw.train.sparse", logging.DEBUG)):
    logger = logging.getLogger(name)
    logger.setLevel(level)
    logger.addHandler(Killer())
train(config_from_dict(json.loads(sys.argv[1])), sys.argv[2], progress=False)
"""


def _kill_mid_run(out: Path, when: str, config: dict = CONFIG) -> None:
    process = subprocess.run(
        [sys.executable, "-c", KILLER, json.dumps(config), str(out), when], capture_output=True, timeout=300
    )
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()[-2000:]
    assert not out.exists() and (work_folder(out) / STATE_FILE).is_file()


def _metrics(run: Path) -> list[dict]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for record in records:
        record.pop("seconds")
    return records


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "run"
    train(config_from_dict(CONFIG), out, progress=False)
    return out


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("killed") / "run"
    _kill_mid_run(out, "epoch 2:")
    return out


def _copy_partial(killed: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(work_folder(killed), work_folder(out))
    return out


@pytest.mark.parametrize("when", ["epoch 2:", "update 8"])
def test_resume_after_sigkill_equals_the_uninterrupted_run(
    when: str, reference: Path, killed: Path, tmp_path: Path
) -> None:
    if when == "epoch 2:":
        out = _copy_partial(killed, tmp_path)
    else:
        out = tmp_path / "run"
        _kill_mid_run(out, when)
    # what a kill in the middle of save_atomic leaves behind
    (work_folder(out) / ".checkpoint.pt.tmp-k1ll").write_bytes(b"half")
    (work_folder(out) / ".state.pt.tmp-k1ll").write_bytes(b"half")
    train(config_from_dict(CONFIG), out, resume=True, progress=False)
    assert not work_folder(out).exists()
    assert sorted(path.name for path in out.iterdir()) == [
        OUTPUT_MARKER,
        "checkpoint.pt",
        "config.yaml",
        "metrics.jsonl",
    ]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]
    assert _metrics(out) == _metrics(reference)
    ours, theirs = load_checkpoint(out), load_checkpoint(reference)
    assert ours["epoch"] == theirs["epoch"]
    for key, value in theirs["model"].items():
        assert torch.equal(ours["model"][key], value), key
    for mine, other in zip(ours["sparse"]["masks"], theirs["sparse"]["masks"], strict=True):
        assert torch.equal(mine, other)
    for mine, other in zip(ours["sparse"]["ever_active"], theirs["sparse"]["ever_active"], strict=True):
        assert torch.equal(mine, other)


def _killed_resumed_and_reference(config: dict, when: str, tmp_path: Path) -> tuple[Path, Path]:
    """``config`` trained killed at ``when`` and resumed (``run``), and uninterrupted (``reference``)."""
    reference = tmp_path / "reference"
    train(config_from_dict(config), reference, progress=False)
    out = tmp_path / "run"
    _kill_mid_run(out, when, config)
    train(config_from_dict(config), out, resume=True, progress=False)
    return out, reference


def test_resume_after_sigkill_with_hardware_random_growth(tmp_path: Path) -> None:
    """The chip's rewiring (storage order, LFSR states) is part of the resumable state."""
    sparsity = {**CONFIG["sparsity"], "prune": "magnitude", "grow": "hardware-random", "lanes": 2}
    config = {**CONFIG, "sparsity": sparsity}
    out, reference = _killed_resumed_and_reference(config, "update 8", tmp_path)
    assert _metrics(out) == _metrics(reference)
    ours, theirs = load_checkpoint(out)["sparse"], load_checkpoint(reference)["sparse"]
    for mine, other in zip(ours["masks"], theirs["masks"], strict=True):
        assert torch.equal(mine, other)
    assert ours["rewiring"]["states"] == theirs["rewiring"]["states"] != [0xACE1, 0xACE1]
    for mine, other in zip(ours["rewiring"]["columns"], theirs["rewiring"]["columns"], strict=True):
        assert torch.equal(mine, other)


def test_resume_after_sigkill_with_moved_training_images(tmp_path: Path) -> None:
    """data.augment_shift: a resumed run moves each batch's images as the uninterrupted run did."""
    config = {**CONFIG, "data": {**CONFIG["data"], "augment_shift": 1}}
    out, reference = _killed_resumed_and_reference(config, "epoch 2:", tmp_path)
    assert _metrics(out) == _metrics(reference)
    ours, theirs = load_checkpoint(out)["model"], load_checkpoint(reference)["model"]
    for key, value in theirs.items():
        assert torch.equal(ours[key], value), key


def test_resume_refuses_another_model_or_config(killed: Path, tmp_path: Path) -> None:
    out = _copy_partial(killed, tmp_path)
    other_model = config_from_dict({**CONFIG, "model": {"hidden": [8], "timesteps": 4}})
    with pytest.raises(EslError, match="checkpoint is for model 784-16-10, the config gives 784-8-10"):
        train(other_model, out, resume=True, progress=False)
    other_lr = config_from_dict({**CONFIG, "train": {**CONFIG["train"], "lr": 0.02}})
    with pytest.raises(EslError, match=r"another config \(train.lr differs\)"):
        train(other_lr, out, resume=True, progress=False)
    (work_folder(out) / STATE_FILE).write_bytes(b"garbage")
    with pytest.raises(EslError, match="cannot read training state"):
        train(config_from_dict(CONFIG), out, resume=True, progress=False)


def test_a_state_saved_before_a_config_key_existed_resumes_at_its_default(tmp_path: Path) -> None:
    config = config_to_dict(config_from_dict(CONFIG))
    older = {**config, "sparsity": {k: v for k, v in config["sparsity"].items() if k != "redistribute"}}
    state = {"format": STATE_FORMAT, "sizes": [784, 16, 10], "config": older}
    save_atomic(state, tmp_path / STATE_FILE)
    assert load_state(tmp_path, config, [784, 16, 10])["config"] == older
    moved = config_to_dict(
        config_from_dict({**CONFIG, "sparsity": {**CONFIG["sparsity"], "redistribute": "momentum"}})
    )
    with pytest.raises(EslError, match=r"another config \(sparsity.redistribute differs\)"):
        load_state(tmp_path, moved, [784, 16, 10])


def test_fresh_start_over_an_interrupted_run_needs_force(killed: Path, tmp_path: Path) -> None:
    out = _copy_partial(killed, tmp_path)
    with pytest.raises(EslError, match="pass --resume to continue it or --force to start over"):
        train(config_from_dict(CONFIG), out, progress=False)
    with pytest.raises(EslError, match="no interrupted run to resume"):
        train(config_from_dict(CONFIG), tmp_path / "other", resume=True, progress=False)


def test_force_clears_only_esl_hw_work_folders_and_outputs(killed: Path, tmp_path: Path) -> None:
    out = _copy_partial(killed, tmp_path)
    (work_folder(out) / STAGING_MARKER).unlink()
    with pytest.raises(EslError, match="lacks esl-hw's marker"):
        train(config_from_dict(CONFIG), out, force=True, progress=False)
    assert (work_folder(out) / STATE_FILE).is_file()
    other = tmp_path / "user"
    other.mkdir()
    (other / "thesis.tex").write_text("mine")
    with pytest.raises(EslError, match="'thesis.tex', which esl-hw did not write"):
        train(config_from_dict(CONFIG), other, force=True, progress=False)
    assert (other / "thesis.tex").read_text() == "mine"
    config_file = other / "config.yaml"
    config_file.write_text("{}")
    with pytest.raises(EslError, match="contains the input"):
        train(config_from_dict(CONFIG), other, force=True, progress=False, inputs=[config_file])


def test_atomic_save_and_metric_truncation(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    save_atomic({"a": torch.ones(2)}, path)
    assert torch.equal(torch.load(path)["a"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.pt"]
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("1\n2\n3\n")
    truncate_metrics(metrics, 2)
    assert metrics.read_text() == "1\n2\n"


def test_a_run_folder_that_cannot_be_written_is_one_error() -> None:
    with pytest.raises(EslError, match="cannot write the run beside --out"):
        train(config_from_dict(CONFIG), Path("/proc/esl-hw-run"), progress=False)
