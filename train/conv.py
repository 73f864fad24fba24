"""Convolutional spiking networks with LIF neurons (VGGSNN, ResNet19) and the TET loss.

Tensors carry time first: ``[T, B, C, H, W]``. A convolution or batch norm runs on all ``T·B`` frames
at once (time batched: a layer's input does not depend on its own state), then :class:`LIF` runs the
neuron over time with :func:`esl_hw.train.neurons.lif_sequence`::

    v ← β v + I_t ;  z_t = H(v − θ) ;  v ← v (1 − z_t)        (β = 1 − 2^−k, θ = 1, hard reset)

with the surrogate gradient of :mod:`esl_hw.train.neurons`. Static images enter directly (the first
convolution sees the same image at every step, the usual *direct encoding*); event frames
``[B, T, 2, H, W]`` are transposed to time first.

- ``VGGSNN`` (TET, Deng et al. 2022): 64C3-128C3-AP2-256C3-256C3-AP2-512C3-512C3-AP2-512C3-512C3-AP2,
  then a linear classifier; every conv is followed by batch norm and LIF.
- ``ResNet19`` (tdBN, Zheng et al. 2021): 128C3, 3 basic blocks of 128, 3 of 256 (stride 2), 2 of 512
  (stride 2), average pool, FC 256 + LIF, FC classes.

TET loss (Deng et al. 2022), on the per-step outputs ``O_t``::

    L = (1 − λ) · 1/T Σ_t CE(O_t, y) + λ · 1/T Σ_t MSE(O_t, φ)

``width`` scales every channel count (1.0 is the paper's network; tests use small widths). VGGSNN
takes any ``H × W`` image of at least ``2^pools`` pixels a side (16 for its four pools): smaller is
refused with :class:`EslError` before anything is built (:func:`pooled_size`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from esl_hw.errors import EslError
from esl_hw.train.neurons import LIFParams, lif_sequence

VGG_PLAN: tuple[int | str, ...] = (64, 128, "A", 256, 256, "A", 512, 512, "A", 512, 512, "A")


class LIF(nn.Module):
    """LIF neurons over time on ``[T, B, …]`` inputs (currents), output spikes of the same shape."""

    def __init__(self, leak_shift: int | None = 1, threshold: float = 1.0, slope: float = 4.0) -> None:
        super().__init__()
        self.params = LIFParams(threshold=threshold, leak_shift=leak_shift, slope=slope)

    def forward(self, currents: torch.Tensor) -> torch.Tensor:
        steps, batch = currents.shape[:2]
        flat = currents.reshape(steps, batch, -1)
        return lif_sequence(flat, self.params).reshape(currents.shape)


class TimeBatched(nn.Module):
    """Apply ``module`` to ``[T, B, …]`` by folding time into the batch."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, batch = x.shape[:2]
        out = self.module(x.reshape(steps * batch, *x.shape[2:]))
        return out.reshape(steps, batch, *out.shape[1:])


def _conv_bn(in_channels: int, out_channels: int, stride: int = 1) -> TimeBatched:
    return TimeBatched(
        nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
    )


def _channels(count: int, width: float) -> int:
    return max(1, round(count * width))


def time_first(inputs: torch.Tensor, timesteps: int) -> torch.Tensor:
    """``[T, B, C, H, W]`` from static images ``[B, C, H, W]`` (repeated) or frames ``[B, T, C, H, W]``."""
    if inputs.ndim == 4:
        return inputs.unsqueeze(0).expand(timesteps, *inputs.shape)
    return inputs.transpose(0, 1)


def pooled_size(image_size: int | tuple[int, int], plan: Sequence[int | str] = VGG_PLAN) -> tuple[int, int]:
    """``(H, W)`` of the feature map after the plan's 2×2 average pools (each halves a side, rounding
    down) for an ``image_size`` image (a side, or ``(H, W)``); :class:`EslError` when a side would
    reach 0, i.e. is below ``2^pools``."""
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    pools = sum(1 for item in plan if item == "A")
    need = 2**pools
    if height < need or width < need:
        raise EslError(
            f"vggsnn: images of {height}x{width} pixels are too small for its {pools} 2x2 average pools "
            f"(at least {need}x{need})"
        )
    return height >> pools, width >> pools


class VGGSNN(nn.Module):
    """VGGSNN for inputs ``[B, C, H, W]`` or ``[B, T, C, H, W]``; outputs per step ``[T, B, classes]``.
    ``image_size`` is a side of a square image or ``(H, W)``."""

    def __init__(
        self,
        in_channels: int = 2,
        classes: int = 10,
        image_size: int | tuple[int, int] = 48,
        timesteps: int = 10,
        width: float = 1.0,
        plan: Sequence[int | str] = VGG_PLAN,
    ) -> None:
        super().__init__()
        self.timesteps = timesteps
        height, side = pooled_size(image_size, plan)
        layers: list[nn.Module] = []
        channels = in_channels
        for item in plan:
            if item == "A":
                layers.append(TimeBatched(nn.AvgPool2d(2)))
            else:
                out = _channels(int(item), width)
                layers += [_conv_bn(channels, out), LIF()]
                channels = out
        self.features = nn.Sequential(*layers)
        self.classifier = TimeBatched(nn.Linear(channels * height * side, classes))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        spikes = self.features(time_first(inputs, self.timesteps))
        return self.classifier(spikes.flatten(2))


class BasicBlock(nn.Module):
    """``LIF(BN(conv(LIF(BN(conv(x))))) + shortcut(x))``, shortcut a strided 1×1 conv when shapes change."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.first, self.first_lif = _conv_bn(in_channels, out_channels, stride), LIF()
        self.second, self.out_lif = _conv_bn(out_channels, out_channels), LIF()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = TimeBatched(
                nn.Sequential(
                    nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(out_channels),
                )
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_lif(self.second(self.first_lif(self.first(x))) + self.shortcut(x))


class ResNet19(nn.Module):
    """ResNet19 with LIF neurons; outputs per step ``[T, B, classes]``."""

    def __init__(
        self, in_channels: int = 3, classes: int = 10, timesteps: int = 4, width: float = 1.0
    ) -> None:
        super().__init__()
        self.timesteps = timesteps
        widths = [_channels(count, width) for count in (128, 256, 512)]
        self.stem = nn.Sequential(_conv_bn(in_channels, widths[0]), LIF())
        blocks: list[nn.Module] = []
        channels = widths[0]
        for out, count, stride in zip(widths, (3, 3, 2), (1, 2, 2), strict=True):
            for index in range(count):
                blocks.append(BasicBlock(channels, out, stride if index == 0 else 1))
                channels = out
        self.blocks = nn.Sequential(*blocks)
        self.pool = TimeBatched(nn.AdaptiveAvgPool2d(1))
        hidden = _channels(256, width)
        self.fc1, self.fc_lif = TimeBatched(nn.Linear(channels, hidden)), LIF()
        self.fc2 = TimeBatched(nn.Linear(hidden, classes))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(time_first(inputs, self.timesteps)))
        x = self.pool(x).flatten(2)
        return self.fc2(self.fc_lif(self.fc1(x)))


def tet_loss(
    outputs: torch.Tensor, labels: torch.Tensor, lam: float = 0.05, phi: float = 1.0
) -> torch.Tensor:
    """``(1 − λ) · mean_t CE(O_t, y) + λ · mean_t MSE(O_t, φ)`` for outputs ``[T, B, classes]``."""
    steps = outputs.shape[0]
    flat = outputs.reshape(steps * outputs.shape[1], -1)
    cross_entropy = nn.functional.cross_entropy(flat, labels.repeat(steps))
    regulariser = nn.functional.mse_loss(outputs, torch.full_like(outputs, phi))
    return (1.0 - lam) * cross_entropy + lam * regulariser


def predict(outputs: torch.Tensor) -> torch.Tensor:
    """Class with the largest mean output over time."""
    return outputs.mean(dim=0).argmax(dim=1)
