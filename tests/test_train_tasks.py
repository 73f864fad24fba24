"""Tests for esl_hw.train.tasks: CIFAR and event datasets train conv SNNs through the loop."""

from __future__ import annotations

import dataclasses
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from esl_hw.errors import EslError
from esl_hw.train import tasks
from esl_hw.train.config import config_from_dict
from esl_hw.train.export import load_checkpoint
from esl_hw.train.loop import train
from esl_hw.train.tasks import load_vision
from esl_hw.train.vision_data import ArraySplit

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cifar10(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir()
    for name in [f"data_batch_{index}" for index in range(1, 6)] + ["test_batch"]:
        labels = rng.integers(0, 10, 8)
        data = np.repeat(labels[:, None] * 25, 3072, axis=1).astype(np.uint8)  # learnable: label = brightness
        with (folder / name).open("wb") as handle:
            pickle.dump({b"data": data, b"labels": labels.tolist()}, handle)
    return folder


def _nmnist(folder: Path) -> Path:
    for split in ("Train", "Test"):
        for digit in range(2):
            target = folder / split / str(digit)
            target.mkdir(parents=True)
            for index in range(6):
                x = 5 if digit == 0 else 25
                raw = bytearray()
                for stamp in range(0, 400, 20):
                    raw += bytes([x, 10 + index, 128 | (stamp >> 16), (stamp >> 8) & 255, stamp & 255])
                (target / f"{index:05d}.bin").write_bytes(bytes(raw))
    return folder


def test_cifar10_resnet19_trains_through_the_loop(tmp_path: Path) -> None:
    config = config_from_dict(
        {
            "data": {"dataset": "cifar10", "path": str(_cifar10(tmp_path / "cifar")), "val_fraction": 0.25},
            "model": {"kind": "resnet19", "width": 0.0625, "timesteps": 2},
            "sparsity": {"density": 0.5, "init": "erk", "delta_t": 2},
            "train": {"epochs": 2, "batch_size": 10},
        }
    )
    vision = load_vision(config)
    assert vision.train_inputs.shape == (30, 3, 32, 32) and vision.classes == 10
    assert abs(float(vision.train_inputs.mean())) < 3
    result = train(config, tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["density"] == records[1]["density"]
    assert records[0]["overall_density"] == pytest.approx(0.5, abs=0.01)
    assert 0 <= result.val_accuracy <= 1
    assert load_checkpoint(tmp_path / "run")["sizes"][0] == [8, 3, 3, 3]


def test_nmnist_vggsnn_learns_a_trivial_task(tmp_path: Path) -> None:
    config = config_from_dict(
        {
            "seed": 1,
            "data": {"dataset": "nmnist", "path": str(_nmnist(tmp_path / "NMNIST")), "frame_size": 16},
            "model": {"kind": "vggsnn", "width": 0.0625, "timesteps": 2},
            "sparsity": {"density": 0.5, "delta_t": 2},
            "train": {"epochs": 4, "batch_size": 4, "lr": 0.01},
        }
    )
    vision = load_vision(config)
    assert vision.train_inputs.shape[1:] == (2, 2, 16, 16) and vision.image_size == 16
    result = train(config, tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["loss"] < records[0]["loss"]
    assert result.val_accuracy is not None


def test_conv_configs_need_a_matching_dataset_and_a_path() -> None:
    with pytest.raises(EslError, match="model.kind 'resnet19' needs an image or event dataset"):
        config_from_dict({"model": {"kind": "resnet19"}})
    with pytest.raises(EslError, match="model.kind 'lif' needs data.dataset mnist"):
        config_from_dict({"data": {"dataset": "cifar10", "path": "x"}})
    with pytest.raises(EslError, match="data.dataset 'cifar100' needs data.path"):
        config_from_dict({"data": {"dataset": "cifar100"}, "model": {"kind": "resnet19"}})


def _mnist_with_label(folder: Path, label: int) -> Path:
    """Four images each in train and test, the third labelled ``label`` (-128..127: IDX type int8)."""
    folder.mkdir()
    for prefix in ("train", "t10k"):
        images = struct.pack(">BBBBIII", 0, 0, 8, 3, 4, 28, 28) + bytes(4 * 784)
        labels = struct.pack(">BBBBI", 0, 0, 9, 1, 4) + struct.pack(">4b", 0, 1, label, 2)
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(images)
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(labels)
    return folder


def test_labels_outside_the_class_range_are_refused_before_training(tmp_path: Path) -> None:
    folder = _cifar10(tmp_path / "cifar")
    with (folder / "data_batch_2").open("wb") as handle:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [3, 10]}, handle)
    cifar = config_from_dict(
        {"data": {"dataset": "cifar10", "path": str(folder)}, "model": {"kind": "resnet19", "width": 0.0625}}
    )
    with pytest.raises(EslError, match="data_batch_2: label 10 at index 1 is outside 0..9"):
        train(cifar, tmp_path / "run", progress=False)
    mnist = config_from_dict({"data": {"path": str(_mnist_with_label(tmp_path / "mnist", -1))}})
    with pytest.raises(EslError, match="train-labels-idx1-ubyte: label -1 at index 2 is negative"):
        train(mnist, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_load_vision_checks_labels_against_the_class_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def loader(path: str, timesteps: int) -> tuple[ArraySplit, ArraySplit]:
        split = ArraySplit(np.zeros((3, 2, 2, 34, 34), np.float32), np.array([0, 9, 12]))
        return split, split

    monkeypatch.setattr(tasks, "load_nmnist", loader)
    config = config_from_dict(
        {"data": {"dataset": "nmnist", "path": str(tmp_path)}, "model": {"kind": "vggsnn", "timesteps": 2}}
    )
    with pytest.raises(EslError, match=r"\(nmnist\): label 12 at index 2 is outside 0..9"):
        load_vision(config)


# ---------------------------------------------------------------- the task protocol


def test_every_model_kind_has_its_task() -> None:
    import dataclasses

    from esl_hw.train.config import MODEL_KINDS

    assert set(tasks.TASKS) == set(MODEL_KINDS)
    expected = {
        "lif": tasks.MnistLifTask,
        "single_spike": tasks.SingleSpikeTask,
        "vggsnn": tasks.VisionConvTask,
        "resnet19": tasks.VisionConvTask,
    }
    image_data = {"data": {"dataset": "cifar10", "path": "x"}}
    for kind, task_type in expected.items():
        mnist = kind in ("lif", "single_spike")
        config = config_from_dict({"model": {"kind": kind}, **({} if mnist else image_data)})
        assert isinstance(tasks.task_for(config), task_type)
    odd = dataclasses.replace(config, model=dataclasses.replace(config.model, kind="gru"))
    with pytest.raises(EslError, match=r"no training task for model.kind 'gru' \(known: lif, resnet19"):
        tasks.task_for(odd)


def test_the_loop_sees_a_model_only_through_its_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A task of our own (synthetic spikes, no data set on disk) trains through the unchanged loop."""
    calls: list[str] = []

    class Synthetic(tasks.MnistLifTask):
        def prepare_data(self, config):
            calls.append("prepare_data")
            generator = torch.Generator().manual_seed(0)
            labels = torch.arange(60) % 2
            spikes = torch.rand(3, 60, 784, generator=generator) < 0.05
            spikes[:, :, :392] &= (labels == 0)[None, :, None]  # class 0 lights the first half
            return tasks.TaskData(spikes[:, :40], labels[:40], spikes[:, 40:], labels[40:])

        def backward(self, model, net, inputs, labels, config):
            calls.append("backward")
            return super().backward(model, net, inputs, labels, config)

        def logits(self, net, inputs, mode):
            calls.append(f"logits {mode}")
            return super().logits(net, inputs, mode)

    monkeypatch.setitem(tasks.TASKS, "lif", Synthetic())
    config = config_from_dict(
        {
            "model": {"hidden": [8], "timesteps": 3},
            "sparsity": {"density": 0.5, "delta_t": 2},
            "train": {"epochs": 2, "batch_size": 20},
        }
    )
    result = train(config, tmp_path / "run", progress=False)
    per_epoch = ["backward", "backward", "logits qat", "logits float"]  # 40 samples, batches of 20
    assert calls == ["prepare_data", *per_epoch, *per_epoch]
    assert load_checkpoint(tmp_path / "run")["sizes"] == [784, 8, 10]
    assert result.val_accuracy is not None


# ---------------------------------------------------------------- images (data.dataset: images)


def _images(folder: Path, size: tuple[int, int] = (20, 24), count: int = 40) -> Path:
    """A learnable NPZ image set: class 0 dark, class 1 bright; labels 0..2 (class 2 only in test)."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    for name, labels in (("train", np.arange(count) % 2), ("test", np.array([0, 1, 2, 1]))):
        images = rng.integers(0, 40, (len(labels), *size)) + 180 * (labels == 1)[:, None, None]
        np.savez(folder / f"{name}.npz", x=images.astype(np.uint8), y=labels)
    return folder


def _images_config(path: Path, **data: object) -> object:
    return config_from_dict(
        {
            "seed": 1,
            "data": {"dataset": "images", "path": str(path), "val_fraction": 0.25, **data},
            "model": {"kind": "vggsnn", "width": 0.0625, "timesteps": 2},
            "sparsity": {"density": 0.5, "delta_t": 2, "redistribute": "momentum"},
            "train": {"epochs": 3, "batch_size": 10, "lr": 0.01},
        }
    )


def test_images_train_vggsnn_on_non_square_pictures(tmp_path: Path) -> None:
    config = _images_config(_images(tmp_path / "data"))
    vision = load_vision(config)
    assert vision.train_inputs.shape == (30, 1, 20, 24) and vision.val_inputs.shape == (10, 1, 20, 24)
    assert (vision.in_channels, vision.classes, vision.image_size) == (1, 3, (20, 24))  # 3: the test's 2
    assert float(vision.train_inputs.min()) >= 0.0 and float(vision.train_inputs.max()) <= 1.0
    assert vision.train_inputs.dtype == torch.float32
    inputs, labels = tasks.load_vision_test(config)
    assert inputs.shape == (4, 1, 20, 24) and labels.tolist() == [0, 1, 2, 1]
    assert float(inputs[1].min()) >= 180 / 255  # the bright class, scaled like the training inputs
    result = train(config, tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["loss"] < records[0]["loss"]
    assert records[-1]["train_accuracy"] == 1.0  # dark vs bright (validation: batch norm's running
    assert result.val_accuracy is not None  # statistics have seen too few batches to score it fairly)
    sizes = load_checkpoint(tmp_path / "run")["sizes"]
    assert sizes[0] == [4, 1, 3, 3] and sizes[-1] == [32 * 1 * 1, 3][::-1]  # 20x24 -> 1x1 after 4 pools
    assert records[-1]["overall_density"] == pytest.approx(0.5, abs=0.01)


def test_images_too_small_for_vggsnn_are_refused_before_the_run_folder(tmp_path: Path) -> None:
    config = _images_config(_images(tmp_path / "data", size=(12, 28)))
    with pytest.raises(EslError, match=r"vggsnn: images of 12x28 pixels are too small .* \(at least 16x16\)"):
        train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    resnet = dataclasses.replace(config, model=dataclasses.replace(config.model, kind="resnet19"))
    data = tasks.task_for(resnet).prepare_data(resnet)  # ResNet19 pools adaptively: any size
    net = tasks.task_for(resnet).build_net(resnet, data)
    assert net(data.train_inputs[:2]).shape == (2, 2, 3)


def test_the_lif_task_builds_its_net_with_the_configured_weight_gradient() -> None:
    torch.manual_seed(0)
    spikes = torch.rand(4, 8, 784) < 0.2
    labels = torch.arange(8) % 10
    grads = {}
    for precision in ("float32", "bfloat16"):
        config = config_from_dict(
            {"model": {"hidden": [32], "timesteps": 4}, "train": {"weight_grad": precision}}
        )
        torch.manual_seed(1)
        net = tasks.TASKS["lif"].build_net(config, None)
        assert net.weight_grad_dtype == (None if precision == "float32" else torch.bfloat16)
        torch.nn.functional.cross_entropy(net(spikes, mode="qat"), labels).backward()
        grads[precision] = net.weights[0].grad
    exact, mixed = grads["float32"], grads["bfloat16"]
    assert exact.abs().sum() > 0 and not torch.equal(exact, mixed)
    torch.testing.assert_close(mixed, exact, rtol=0.02, atol=0.02 * float(exact.abs().max()))
