"""The image and event tasks of the loop: data preparation and convolutional networks from a config.

- ``cifar10`` / ``cifar100``: images scaled to ``[0, 1]`` and normalised per channel with the usual
  CIFAR means and deviations, ``[N, 3, 32, 32]`` float32; no augmentation.
- ``nmnist`` / ``dvs_cifar10``: frames ``[N, T, 2, H, W]`` (event counts), bilinearly resized to
  ``frame_size`` when given (the TET setting for DVS-CIFAR10 is 48).

The validation split is taken from the training set with the same rule as for MNIST. Labels outside
``0..classes-1`` (the network's outputs) are refused before training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from esl_hw.datasets import check_labels
from esl_hw.errors import EslError
from esl_hw.train.config import Config
from esl_hw.train.conv import VGGSNN, ResNet19
from esl_hw.train.vision_data import ArraySplit, load_cifar, load_cifar10_dvs, load_nmnist

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
CONV_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class VisionData:
    """Train and validation tensors (batch first) with what the network needs to know about them."""

    train_inputs: torch.Tensor
    train_labels: torch.Tensor
    val_inputs: torch.Tensor
    val_labels: torch.Tensor
    in_channels: int
    classes: int
    image_size: int


def _split(split: ArraySplit, config: Config) -> tuple[ArraySplit, ArraySplit]:
    count = len(split) if config.data.train_samples is None else min(len(split), config.data.train_samples)
    order = np.random.default_rng(config.seed).permutation(count)
    n_val = round(config.data.val_fraction * count)
    val, train = order[:n_val], order[n_val:]
    return ArraySplit(split.inputs[train], split.labels[train]), ArraySplit(
        split.inputs[val], split.labels[val]
    )


def _normalise_cifar(images: np.ndarray) -> torch.Tensor:
    values = torch.from_numpy(images).float() / 255.0
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    return (values - mean) / torch.tensor(CIFAR_STD).view(1, 3, 1, 1)


def _resize_frames(frames: np.ndarray, size: int | None) -> torch.Tensor:
    tensor = torch.from_numpy(frames)
    if size is None or tensor.shape[-1] == size or len(tensor) == 0:
        return tensor
    count, steps = tensor.shape[:2]
    resized = nn.functional.interpolate(tensor.flatten(0, 1), size=(size, size), mode="bilinear")
    return resized.reshape(count, steps, *resized.shape[1:])


def _checked(split: ArraySplit, classes: int, config: Config) -> ArraySplit:
    """``split``, once its labels are known to lie in ``0..classes-1`` (the network's outputs)."""
    check_labels(split.labels, classes, f"dataset {config.data.path} ({config.data.dataset})")
    return split


def load_vision(config: Config) -> VisionData:
    """Train/validation tensors of ``config.data.dataset`` (not ``mnist``)."""
    data, steps = config.data, config.model.timesteps
    if data.dataset in ("cifar10", "cifar100"):
        classes = 10 if data.dataset == "cifar10" else 100
        train, val = _split(_checked(load_cifar(data.path, classes)[0], classes, config), config)
        convert = _normalise_cifar
        in_channels, size = 3, 32
    else:
        classes = 10
        loader = load_nmnist if data.dataset == "nmnist" else load_cifar10_dvs
        train, val = _split(_checked(loader(data.path, steps)[0], classes, config), config)
        size = data.frame_size or train.inputs.shape[-1]

        def convert(frames: np.ndarray) -> torch.Tensor:
            return _resize_frames(frames, data.frame_size)

        in_channels = 2
    if len(train) == 0:
        raise EslError("config: no training samples left after the validation split")
    return VisionData(
        convert(train.inputs),
        torch.from_numpy(train.labels),
        convert(val.inputs),
        torch.from_numpy(val.labels),
        in_channels,
        classes,
        size,
    )


def build_conv(config: Config, vision: VisionData) -> nn.Module:
    """The ``vggsnn`` or ``resnet19`` network of ``config`` for ``vision``'s inputs."""
    model = config.model
    if model.kind == "vggsnn":
        return VGGSNN(vision.in_channels, vision.classes, vision.image_size, model.timesteps, model.width)
    return ResNet19(vision.in_channels, vision.classes, model.timesteps, model.width)


def sparse_layers(net: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``(name, weight)`` of every linear and conv layer, in module order (the sparse engine's layers)."""
    return [
        (f"{name}.weight", module.weight)
        for name, module in net.named_modules()
        if isinstance(module, CONV_LAYERS)
    ]
