"""The tasks of the training loop: one object per kind of model, behind one small protocol.

:class:`Task` is everything :func:`esl_hw.train.loop.train` needs to know about a model kind
(``model.kind``): how to prepare the data, build and initialise the network, which weights the sparse
engine manages, how a batch's loss is made and back-propagated, how logits are read for scoring, and
the model signature a checkpoint records. :data:`TASKS` maps each model kind to its task
(:func:`task_for`; an unknown kind raises :class:`EslError` naming the known ones):

- ``lif``: :class:`MnistLifTask`, the LIF MLP (:class:`~esl_hw.train.model.LIFNet`) with QAT on
  MNIST or any image set :func:`esl_hw.datasets.load_dataset` reads (IDX or NPZ), inputs pre-encoded
  to spikes ``[T, N, n_in]``, cross-entropy of the QAT logits;
- ``single_spike``: :class:`SingleSpikeTask`, :class:`~esl_hw.train.single_spike.SingleSpikeNet` on
  the same images, temporal loss plus the weight-sum cost, gradients normalised per layer;

The MLPs take their input size (pixels per image) and class count (largest label plus one) from the
data: :class:`TaskData` carries them to :meth:`Task.build_net`, and the network they give is checked
against the trainer's limit (:func:`esl_hw.train.config.check_mlp_shape`) before anything is encoded.
- ``vggsnn`` / ``resnet19``: :class:`VisionConvTask`, convolutional SNNs on the image and event sets
  below, TET loss.

Image and event data:

- ``images``: any IDX or NPZ image folder (Fashion-MNIST, …; :func:`esl_hw.train.vision_data.load_images`),
  ``[N, C, H, W]`` float32 scaled to ``[0, 1]`` (no mean/std: the first convolution is bias-free and
  followed by batch norm, which takes out the inputs' scale and shift away from the zero padding);
  channels and class count from the data; no augmentation.
- ``cifar10`` / ``cifar100``: images scaled to ``[0, 1]`` and normalised per channel with the usual
  CIFAR means and deviations, ``[N, 3, 32, 32]`` float32; no augmentation.
- ``nmnist`` / ``dvs_cifar10``: frames ``[N, T, 2, H, W]`` (event counts), bilinearly resized to
  ``frame_size`` when given (the TET setting for DVS-CIFAR10 is 48).

The validation split is taken from the training set with the same rule as for MNIST. Labels outside
``0..classes-1`` (the network's outputs) are refused before training.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from esl_hw.datasets import MNIST_CLASSES, MNIST_INPUTS, Dataset, Split, check_labels, load_dataset
from esl_hw.errors import EslError
from esl_hw.train.augment import check_shift, shifted_batches
from esl_hw.train.config import Config, check_mlp_shape
from esl_hw.train.conv import VGGSNN, ResNet19, tet_loss
from esl_hw.train.distill import distillation_loss, teacher_targets
from esl_hw.train.model import LIFNet, encode_batch
from esl_hw.train.single_spike import SingleSpikeNet, normalise_gradients, temporal_loss, weight_sum_cost
from esl_hw.train.vision_data import ArraySplit, load_cifar, load_cifar10_dvs, load_images, load_nmnist

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
CONV_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class VisionData:
    """Train and validation tensors (batch first) with what the network needs to know about them;
    ``image_size`` is the side of square inputs or ``(H, W)`` (``images``: always ``(H, W)``)."""

    train_inputs: torch.Tensor
    train_labels: torch.Tensor
    val_inputs: torch.Tensor
    val_labels: torch.Tensor
    in_channels: int
    classes: int
    image_size: int | tuple[int, int]


@dataclass(frozen=True)
class _Source:
    """A dataset's train and test splits as read, how its inputs become tensors, and its sizes."""

    train: ArraySplit
    test: ArraySplit
    convert: Callable[[np.ndarray], torch.Tensor]
    in_channels: int
    classes: int
    image_size: int | tuple[int, int]


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


def _unit_pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 images as float32 in ``[0, 1]`` (a new array: the loaded one may be read-only)."""
    return torch.from_numpy(images.astype(np.float32)) / 255.0


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


def _vision_source(config: Config) -> _Source:
    """Read ``config.data.dataset`` (not ``mnist``): both splits, labels checked."""
    data, steps = config.data, config.model.timesteps
    if data.dataset == "images":
        train, test, classes = load_images(data.path)
        channels, height, width = train.inputs.shape[1:]
        return _Source(train, test, _unit_pixels, channels, classes, (height, width))
    if data.dataset in ("cifar10", "cifar100"):
        classes = 10 if data.dataset == "cifar10" else 100
        train, test = load_cifar(data.path, classes)
        train, test = _checked(train, classes, config), _checked(test, classes, config)
        return _Source(train, test, _normalise_cifar, 3, classes, 32)
    loader = load_nmnist if data.dataset == "nmnist" else load_cifar10_dvs
    train, test = loader(data.path, steps)
    train, test = _checked(train, 10, config), _checked(test, 10, config)

    def convert(frames: np.ndarray) -> torch.Tensor:
        return _resize_frames(frames, data.frame_size)

    return _Source(train, test, convert, 2, 10, data.frame_size or train.inputs.shape[-1])


def load_vision(config: Config) -> VisionData:
    """Train/validation tensors of ``config.data.dataset`` (not ``mnist``)."""
    source = _vision_source(config)
    train, val = _split(source.train, config)
    if len(train) == 0:
        raise EslError("config: no training samples left after the validation split")
    return VisionData(
        source.convert(train.inputs),
        torch.from_numpy(train.labels),
        source.convert(val.inputs),
        torch.from_numpy(val.labels),
        source.in_channels,
        source.classes,
        source.image_size,
    )


def load_vision_test(config: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole test split of ``config.data.dataset`` (not ``mnist``) as ``(inputs, labels)``, prepared
    as :func:`load_vision` prepares the training inputs."""
    source = _vision_source(config)
    return source.convert(source.test.inputs), torch.from_numpy(source.test.labels)


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


# ---------------------------------------------------------------- the task protocol

Layers = list[tuple[str, nn.Parameter]]


@dataclass(frozen=True)
class TaskData:
    """A task's training and validation inputs and labels; ``batch_dim`` is the inputs' sample axis
    (1 for spikes ``[T, N, …]``, 0 for batch-first inputs), ``vision`` what a conv net needs and
    ``n_inputs``/``classes`` an MLP's input and output sizes (``None``: MNIST's 784 and 10)."""

    train_inputs: torch.Tensor
    train_labels: torch.Tensor
    val_inputs: torch.Tensor
    val_labels: torch.Tensor
    batch_dim: int = 1
    vision: VisionData | None = None
    n_inputs: int | None = None
    classes: int | None = None
    train_targets: torch.Tensor | None = None  # a teacher's soft targets [N, classes] (train.teacher)
    # a training batch's inputs from its sample indices and a key (seed, epoch, first sample), in place
    # of selecting them from train_inputs (data.augment_shift)
    train_batch: Callable[[torch.Tensor, tuple[int, ...]], torch.Tensor] | None = None

    def select(self, inputs: torch.Tensor, index: torch.Tensor | slice) -> torch.Tensor:
        """The samples ``index`` of ``inputs`` (along :attr:`batch_dim`)."""
        return inputs[index] if self.batch_dim == 0 else inputs[:, index]


class Task(ABC):
    """One model kind of the training loop (see the module docstring)."""

    @abstractmethod
    def prepare_data(self, config: Config) -> TaskData:
        """Load and split the data set; :class:`EslError` for missing files or an empty split."""

    @abstractmethod
    def build_net(self, config: Config, data: TaskData | None) -> nn.Module:
        """The network for ``data`` (:meth:`prepare_data`'s; ``None``: MNIST's sizes where the kind
        allows it), weights from torch's global generator, seeded by the loop."""

    def initialise(self, net: nn.Module, densities: Sequence[float]) -> None:
        """Re-initialise the weights for the layers' densities (default: keep the module's own init)."""
        return None

    @abstractmethod
    def sparse_layers(self, net: nn.Module) -> Layers:
        """``(name, weight)`` of the layers the sparse engine manages, in order."""

    def masks(self, net: nn.Module) -> list[torch.Tensor] | None:
        """The net's own mask buffers the engine should update (default: the engine keeps its own)."""
        return None

    def integer_weights(self, net: nn.Module) -> Callable[[], list[torch.Tensor]] | None:
        """The integers export writes (hardware-random growth ranks them; default: none)."""
        return None

    @abstractmethod
    def signature(self, net: nn.Module) -> list[Any]:
        """The model shape a checkpoint records (and a resumed or exported run must match)."""

    @abstractmethod
    def backward(
        self,
        model: nn.Module,
        net: nn.Module,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        config: Config,
        targets: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward ``inputs`` through ``model`` (``net`` or its DDP wrapper), back-propagate the loss
        into the weights' gradients; return ``(loss, logits)`` (logits for the training accuracy).
        ``targets``: the batch's soft targets from :attr:`TaskData.train_targets` (or ``None``)."""

    @abstractmethod
    def logits(self, net: nn.Module, inputs: torch.Tensor, mode: str) -> torch.Tensor:
        """Logits ``[B, classes]`` for scoring (argmax is the prediction); ``mode`` is ``"qat"`` or
        ``"float"`` where the net has both."""


def mlp_sizes(data: TaskData | None) -> tuple[int, int]:
    """``(n_inputs, classes)`` of an MLP for ``data``: what it says, else MNIST's 784 and 10."""
    if data is None:
        return MNIST_INPUTS, MNIST_CLASSES
    return data.n_inputs or MNIST_INPUTS, data.classes or MNIST_CLASSES


class _MLPTask(Task):
    """An MLP with its own masks (``net.masks()``), sizes and density-aware init."""

    def initialise(self, net: nn.Module, densities: Sequence[float]) -> None:
        net.reset_parameters(densities)

    def sparse_layers(self, net: nn.Module) -> Layers:
        return net.named_weights()

    def masks(self, net: nn.Module) -> list[torch.Tensor] | None:
        return net.masks()

    def signature(self, net: nn.Module) -> list[Any]:
        return list(net.sizes)


def split_train_val(split: Split, val_fraction: float, seed: int) -> tuple[Split, Split]:
    """Shuffle with ``seed`` and hold out ``round(val_fraction · N)`` samples for validation."""
    order = np.random.default_rng(seed).permutation(len(split))
    n_val = round(val_fraction * len(split))
    val, train = order[:n_val], order[n_val:]
    return Split(split.images[train], split.labels[train]), Split(split.images[val], split.labels[val])


def image_splits(config: Config) -> tuple[Split, Split, int, int]:
    """The training and validation images of ``config`` (``data.path``, ``train_samples``,
    ``val_fraction``) and the data's input size and class count, once the MLP of ``model.hidden``
    between them is within the trainer's limit."""
    train_split, val_split, dataset = _image_data(config)
    return train_split, val_split, dataset.n_inputs, dataset.classes


def _image_data(config: Config) -> tuple[Split, Split, Dataset]:
    """:func:`image_splits`' splits and the data set they come from."""
    dataset = load_dataset(config.data.path)
    check_mlp_shape(dataset.n_inputs, config.model.hidden, dataset.classes)
    train_split, val_split = split_train_val(
        dataset.train.head(config.data.train_samples), config.data.val_fraction, config.seed
    )
    if len(train_split) == 0:
        raise EslError("config: no training samples left after the validation split")
    return train_split, val_split, dataset


class MnistLifTask(_MLPTask):
    """``lif``: :class:`LIFNet` with QAT on rate-encoded MNIST, cross-entropy of the QAT logits."""

    def prepare_data(self, config: Config) -> TaskData:
        train_split, val_split, dataset = _image_data(config)
        n_inputs, classes = dataset.n_inputs, dataset.classes
        steps, train, shift = config.model.timesteps, config.train, config.data.augment_shift
        targets = batches = None
        if train.teacher is not None:
            targets = teacher_targets(
                train.teacher, train_split.images, n_inputs, classes, train.teacher_temperature
            )
        if shift:  # the training spikes are encoded batch by batch from the moved images
            check_shift(shift, dataset.image_shape)
            batches = shifted_batches(train_split.images, dataset.image_shape, shift, steps)
            train_inputs = torch.empty((steps, 0, n_inputs), dtype=torch.bool)
        else:
            train_inputs = encode_batch(train_split.images, steps)
        return TaskData(
            train_inputs,
            torch.from_numpy(train_split.labels),
            encode_batch(val_split.images, steps),
            torch.from_numpy(val_split.labels),
            train_targets=targets,
            train_batch=batches,
            n_inputs=n_inputs,
            classes=classes,
        )

    def build_net(self, config: Config, data: TaskData | None) -> nn.Module:
        n_inputs, classes = mlp_sizes(data)
        net = LIFNet.from_config(config.model, n_in=n_inputs, n_out=classes)
        net.weight_grad_dtype = None if config.train.weight_grad == "float32" else torch.bfloat16
        return net

    def integer_weights(self, net: nn.Module) -> Callable[[], list[torch.Tensor]] | None:
        return net.integer_weights

    def backward(self, model, net, inputs, labels, config, targets=None) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(inputs, mode="qat")
        if targets is None:
            loss = nn.functional.cross_entropy(logits, labels)
        else:
            train = config.train
            loss = distillation_loss(logits, labels, targets, train.teacher_temperature, train.teacher_weight)
        loss.backward()
        return loss, logits

    def logits(self, net: nn.Module, inputs: torch.Tensor, mode: str) -> torch.Tensor:
        return net(inputs, mode=mode)


class SingleSpikeTask(_MLPTask):
    """``single_spike``: :class:`SingleSpikeNet` on MNIST images; the first output to fire wins."""

    def prepare_data(self, config: Config) -> TaskData:
        train_split, val_split, n_inputs, classes = image_splits(config)
        return TaskData(
            torch.from_numpy(train_split.images),
            torch.from_numpy(train_split.labels),
            torch.from_numpy(val_split.images),
            torch.from_numpy(val_split.labels),
            batch_dim=0,
            n_inputs=n_inputs,
            classes=classes,
        )

    def build_net(self, config: Config, data: TaskData | None) -> nn.Module:
        model = config.model
        n_inputs, classes = mlp_sizes(data)
        return SingleSpikeNet(
            model.hidden, n_in=n_inputs, n_out=classes, levels=model.levels, t_max=model.t_max
        )

    def backward(self, model, net, inputs, labels, config, targets=None) -> tuple[torch.Tensor, torch.Tensor]:
        times = model(inputs)
        loss = temporal_loss(times, labels)
        loss.backward()
        # the weight-sum cost is the same on every rank: add its gradient outside DDP's reduction
        cost = weight_sum_cost(net, config.model.weight_cost)
        for weight, grad in zip(net.weights, torch.autograd.grad(cost, list(net.weights)), strict=True):
            weight.grad = grad if weight.grad is None else weight.grad + grad
        normalise_gradients(net)
        return loss, -times

    def logits(self, net: nn.Module, inputs: torch.Tensor, mode: str) -> torch.Tensor:
        return -net(inputs)


class VisionConvTask(Task):
    """``vggsnn`` / ``resnet19``: a conv SNN on images or event frames, TET loss, mean output logits."""

    def prepare_data(self, config: Config) -> TaskData:
        vision = load_vision(config)
        inputs = (vision.train_inputs, vision.train_labels, vision.val_inputs, vision.val_labels)
        return TaskData(*inputs, batch_dim=0, vision=vision)

    def build_net(self, config: Config, data: TaskData | None) -> nn.Module:
        if data is None or data.vision is None:
            raise EslError(f"model.kind {config.model.kind!r} needs its image or event data to be built")
        return build_conv(config, data.vision)

    def sparse_layers(self, net: nn.Module) -> Layers:
        return sparse_layers(net)

    def signature(self, net: nn.Module) -> list[Any]:
        return [list(weight.shape) for _, weight in sparse_layers(net)]

    def backward(self, model, net, inputs, labels, config, targets=None) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = model(inputs)
        logits = outputs.detach().mean(dim=0)
        loss = tet_loss(outputs, labels, config.model.tet_lambda)
        loss.backward()
        return loss, logits

    def logits(self, net: nn.Module, inputs: torch.Tensor, mode: str) -> torch.Tensor:
        return net(inputs).mean(dim=0)


#: The task of each ``model.kind``.
TASKS: dict[str, Task] = {
    "lif": MnistLifTask(),
    "single_spike": SingleSpikeTask(),
    "vggsnn": VisionConvTask(),
    "resnet19": VisionConvTask(),
}


def task_for(config: Config) -> Task:
    """The task of ``config.model.kind``; an unknown kind raises :class:`EslError` naming the known."""
    kind = config.model.kind
    if kind not in TASKS:
        raise EslError(f"no training task for model.kind {kind!r} (known: {', '.join(sorted(TASKS))})")
    return TASKS[kind]
