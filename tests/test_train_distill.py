"""Tests for esl_hw.train.distill: the teacher's soft targets and the distillation loss, and a run that
learns from a teacher through the unchanged loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from esl_hw.datasets import load_dataset
from esl_hw.errors import EslError
from esl_hw.train.config import config_from_dict
from esl_hw.train.distill import distillation_loss, teacher_targets
from esl_hw.train.export import load_checkpoint, net_from_checkpoint
from esl_hw.train.loop import train
from esl_hw.train.model import encode_batch

SMALL = {"model": {"hidden": [16], "timesteps": 2}, "data": {"train_samples": 300}}


def _config(**train_keys: object):
    return config_from_dict(SMALL | {"train": {"epochs": 1, "batch_size": 50, **train_keys}})


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("teacher") / "run"
    config = config_from_dict({"model": {"hidden": [24], "timesteps": 3}, "data": {"train_samples": 300}})
    train(config, folder, progress=False)
    return folder


def test_without_teacher_weight_the_loss_is_cross_entropy() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 10, generator=generator)
    labels = torch.arange(6)
    targets = torch.softmax(torch.randn(6, 10, generator=generator), dim=1)
    expected = torch.nn.functional.cross_entropy(logits, labels)
    assert torch.equal(distillation_loss(logits, labels, targets, 4.0, 0.0), expected)


def test_the_soft_part_is_tau_squared_times_the_kl_divergence() -> None:
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(5, 10, generator=generator, dtype=torch.float64)
    labels = torch.zeros(5, dtype=torch.int64)
    targets = torch.softmax(torch.randn(5, 10, generator=generator, dtype=torch.float64), dim=1)
    tau = 3.0
    student = torch.softmax(logits / tau, dim=1)
    kl = (targets * (targets.log() - student.log())).sum(dim=1).mean()
    torch.testing.assert_close(distillation_loss(logits, labels, targets, tau, 1.0), tau**2 * kl)
    matched = torch.softmax(logits / tau, dim=1)  # the student already says what the teacher says
    assert float(distillation_loss(logits, labels, matched, tau, 1.0)) == pytest.approx(0.0, abs=1e-12)


def test_teacher_targets_are_its_tempered_qat_softmax_on_its_own_spikes(teacher: Path) -> None:
    images = load_dataset(None).train.images[:70].reshape(70, -1)
    targets = teacher_targets(str(teacher), images, 784, 10, 2.0)
    net, config = net_from_checkpoint(load_checkpoint(teacher))
    with torch.no_grad():
        expected = torch.softmax(net(encode_batch(images, config.model.timesteps), mode="qat") / 2.0, dim=1)
    assert targets.shape == (70, 10) and targets.dtype == torch.float32
    torch.testing.assert_close(targets, expected)
    assert not torch.allclose(targets, torch.full_like(targets, 0.1))  # it is not uniform


def test_a_teacher_that_does_not_fit_or_does_not_exist_is_one_line(teacher: Path, tmp_path: Path) -> None:
    images = np.zeros((3, 784), dtype=np.uint8)
    with pytest.raises(
        EslError, match="maps 784 inputs to 10 classes, the data has 784 inputs and 5"
    ) as error:
        teacher_targets(str(teacher), images, 784, 5, 4.0)
    assert "\n" not in str(error.value)
    with pytest.raises(EslError, match=r"^train.teacher: run folder .* does not exist"):
        teacher_targets(str(tmp_path / "none"), images, 784, 10, 4.0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EslError, match="train.teacher: .*has no checkpoint.pt"):
        teacher_targets(str(tmp_path / "empty"), images, 784, 10, 4.0)


def test_a_teacher_changes_what_the_student_learns_and_weight_zero_does_not(
    teacher: Path, tmp_path: Path
) -> None:
    weights = {}
    for name, keys in (
        ("alone", {}),
        ("weight0", {"teacher": str(teacher), "teacher_weight": 0.0}),
        ("taught", {"teacher": str(teacher), "teacher_weight": 0.9}),
    ):
        train(_config(**keys), tmp_path / name, progress=False)
        weights[name] = load_checkpoint(tmp_path / name)["model"]["weights.0"]
    assert torch.equal(weights["alone"], weights["weight0"])  # the same run when the teacher weighs 0
    assert not torch.equal(weights["alone"], weights["taught"])


def test_teacher_keys_are_checked_in_one_line() -> None:
    assert _config().train.teacher is None
    for keys, fragment in (
        ({"teacher": 3}, "train.teacher must be a path"),
        ({"teacher": ""}, "train.teacher must be a non-empty path"),
        ({"teacher_weight": 1.5}, "train.teacher_weight"),
        ({"teacher_temperature": 0}, "train.teacher_temperature"),
    ):
        with pytest.raises(EslError, match=fragment):
            _config(**keys)
    with pytest.raises(EslError, match="train.teacher needs model.kind 'lif'"):
        config_from_dict({"model": {"kind": "single_spike"}, "train": {"teacher": "run"}})
