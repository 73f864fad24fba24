"""LIF MLP with quantisation-aware training on the integer grid of docs/semantics.md.

Layer ``l`` has a weight ``W_l`` of shape ``[n_in, n_out]`` (the artifact's orientation) and a
bool mask ``M_l``. Its scale and integer weights are

    s_l = max|W_l ⊙ M_l| / qmax,   qmax = 2^(w_bits−1) − 1          (s_l detached)
    Q_l = clamp(round(W_l ⊙ M_l / s_l), −qmax, qmax)                (straight-through gradient)
    θ_l = clamp(max(1, round(threshold / s_l)), 1, 2^(v_bits−1) − 1)

The QAT forward runs in units of ``s_l``, so its values are exactly the integers of the hardware
(float32, or float64 when values could reach 2^24, holds them exactly)::

    I = x @ Q_l ;  v ← clamp(v − floor(v / 2^k) + I) ;  spike = H(v − θ_l) ;  v ← v · (1 − spike)

with a straight-through ``floor``, a surrogate gradient for the Heaviside ``H`` evaluated at
``s_l (v − θ_l)`` (float units) and a detached reset. The output layer accumulates
``acc += x @ Q_L`` over the ``T`` steps; the logits are ``acc · s_L / T``. The float mode uses the
unquantised ``W ⊙ M``, ``β = 1 − 2^−k`` and the float ``threshold``. :meth:`LIFNet.forward_integer`
runs the exact integer semantics in int64 with the same integers that export writes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from esl_hw.encoding import encode
from esl_hw.errors import EslError
from esl_hw.train.config import ModelConfig
from esl_hw.train.events import event_matmul, spike_train_matmul
from esl_hw.train.neurons import LIFParams, lif_sequence

__all__ = ["IntegerTrace", "LIFNet", "check_shape", "encode_batch", "event_matmul"]

Mode = Literal["float", "qat"]


def mask_factor(mask: torch.Tensor) -> torch.Tensor:
    """A bool ``mask`` as 0/1 ``uint8`` (a view, no copy): ``W * mask_factor(M)`` has the values of
    ``W * M``, and on CPU multiplying by it is several times faster than by the bool tensor."""
    return mask.view(torch.uint8)


class _Masked(torch.autograd.Function):
    """``W ⊙ M`` forward; the dense ``∂L/∂(W ⊙ M)`` at every position backward (straight-through)."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return weight * mask_factor(mask)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad_output, None


class _Quantise(torch.autograd.Function):
    """``clamp(round(W ⊙ M / s), ±qmax)`` forward; ``∂L/∂Q / s`` (straight-through, dense) backward.

    Takes ``W ⊙ M`` already computed (detached) with the weight it came from."""

    @staticmethod
    def forward(
        ctx, weight: torch.Tensor, masked: torch.Tensor, scale: torch.Tensor, qmax: int
    ) -> torch.Tensor:
        ctx.save_for_backward(scale)
        return torch.clamp_(torch.round_(masked / scale), -qmax, qmax)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        (scale,) = ctx.saved_tensors
        return grad_output / scale, None, None, None


@dataclass(frozen=True)
class IntegerTrace:
    """Integer run: per LIF layer ``spikes``/``potentials`` ``[T, B, n_out]``, ``outputs`` ``[B, n_out]``."""

    spikes: list[torch.Tensor]
    potentials: list[torch.Tensor]
    outputs: torch.Tensor
    predictions: torch.Tensor


class LIFNet(nn.Module):
    """LIF MLP ``n_in - hidden… - n_out`` driven by the encoder's input spikes ``[T, B, n_in]``."""

    def __init__(
        self,
        hidden: Sequence[int],
        n_in: int = 784,
        n_out: int = 10,
        timesteps: int = 8,
        w_bits: int = 8,
        v_bits: int = 16,
        leak_shift: int | None = 2,
        threshold: float = 1.0,
        surrogate: str = "fast_sigmoid",
        surrogate_slope: float = 5.0,
    ) -> None:
        super().__init__()
        self.sizes = [n_in, *hidden, n_out]
        self.timesteps, self.w_bits, self.v_bits = timesteps, w_bits, v_bits
        self.leak_shift, self.threshold = leak_shift, threshold
        self.surrogate, self.surrogate_slope = surrogate, surrogate_slope
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(fan_in, fan_out))
            for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:], strict=True)
        )
        for index, weight in enumerate(self.weights):
            self.register_buffer(f"mask_{index}", torch.ones_like(weight, dtype=torch.bool))
        self.reset_parameters()

    @classmethod
    def from_config(cls, model_config: ModelConfig, n_in: int = 784, n_out: int = 10) -> LIFNet:
        """Build from an :class:`esl_hw.train.config.ModelConfig`."""
        c = model_config
        return cls(
            hidden=c.hidden,
            n_in=n_in,
            n_out=n_out,
            timesteps=c.timesteps,
            w_bits=c.w_bits,
            v_bits=c.v_bits,
            leak_shift=c.leak_shift,
            threshold=c.threshold,
            surrogate=c.surrogate,
            surrogate_slope=c.surrogate_slope,
        )

    def reset_parameters(self, densities: Sequence[float] | None = None, gain: float = 1.0) -> None:
        """Uniform init with std ``gain · threshold / sqrt(density · n_in · p_in)`` per layer.

        ``p_in`` ≈ 0.1 is the typical input spike probability per step, so a neuron's initial current
        is of the order of the threshold.
        """
        densities = densities or [1.0] * len(self.weights)
        with torch.no_grad():
            for weight, density in zip(self.weights, densities, strict=True):
                std = gain * self.threshold / math.sqrt(max(density * weight.shape[0] * 0.1, 1.0))
                weight.uniform_(-math.sqrt(3.0) * std, math.sqrt(3.0) * std)

    # ------------------------------------------------------------ structure

    @property
    def n_layers(self) -> int:
        return len(self.weights)

    def masks(self) -> list[torch.Tensor]:
        return [getattr(self, f"mask_{index}") for index in range(self.n_layers)]

    def named_weights(self) -> list[tuple[str, nn.Parameter]]:
        """``(name, weight)`` pairs for :class:`esl_hw.train.sparse.SparseEngine`."""
        return [(f"weights.{index}", weight) for index, weight in enumerate(self.weights)]

    @property
    def qmax(self) -> int:
        return (1 << (self.w_bits - 1)) - 1

    @property
    def v_range(self) -> tuple[int, int]:
        return -(1 << (self.v_bits - 1)), (1 << (self.v_bits - 1)) - 1

    def masked_weight(self, index: int) -> torch.Tensor:
        """``W_l ⊙ M_l`` forward, with the *dense* gradient ``∂L/∂(W ⊙ M)`` at every position backward.

        The gradient at inactive positions is what the gradient and momentum growth rules rank; the
        sparse engine zeroes inactive weights after every optimizer step, and the active weights get
        exactly the gradient of the masked product.
        """
        return _Masked.apply(self.weights[index], self.masks()[index])

    # ------------------------------------------------------------ quantisation

    def scale(self, index: int) -> torch.Tensor:
        """``s_l = max|W_l ⊙ M_l| / qmax`` (detached; a tiny floor keeps an all-zero layer finite)."""
        return self._scale(self.weights[index].detach() * mask_factor(self.masks()[index]))

    def _scale(self, masked: torch.Tensor) -> torch.Tensor:
        low, high = torch.aminmax(masked)  # max|x| without a temporary |x| tensor
        return torch.maximum(-low, high).clamp_min(1e-12) / self.qmax

    def quantised_units(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(s_l, Q_l)``: ``Q_l`` integer-valued (float) with a straight-through gradient to ``W_l``.

        Backward, ``∂L/∂W_l = ∂L/∂Q_l / s_l`` at every position (dense, see :meth:`masked_weight`).
        """
        weight = self.weights[index]
        masked = weight.detach() * mask_factor(self.masks()[index])
        scale = self._scale(masked)
        return scale, _Quantise.apply(weight, masked, scale, self.qmax)

    def integer_threshold(self, index: int, scale: float | None = None) -> int:
        """``θ_l = max(1, round(threshold / s_l))``, capped at the top of the ``v_bits`` range."""
        value = round(self.threshold / (float(self.scale(index)) if scale is None else scale))
        return int(min(max(1, value), self.v_range[1]))

    @torch.no_grad()
    def integer_weights(self) -> list[torch.Tensor]:
        """Integer weights ``[n_in, n_out]`` int64 per layer (zero where masked): what export writes."""
        return [self.quantised_units(index)[1].to(torch.int64) for index in range(self.n_layers)]

    def integer_thresholds(self) -> list[int]:
        return [self.integer_threshold(index) for index in range(self.n_layers - 1)]

    def scales(self) -> list[float]:
        return [float(self.scale(index)) for index in range(self.n_layers)]

    # ------------------------------------------------------------ float / QAT forward

    def qat_dtype(self, timesteps: int) -> torch.dtype:
        """float32 when every integer of the QAT forward stays below 2^24 (exact), else float64."""
        current = max(self.sizes[:-1]) * self.qmax
        bound = max(current + (1 << (self.v_bits - 1)), self.sizes[-2] * self.qmax * timesteps)
        return torch.float32 if bound < (1 << 24) else torch.float64

    def forward(self, spikes: torch.Tensor, mode: Mode = "qat") -> torch.Tensor:
        """Logits ``[B, n_out]`` for input spikes ``[T, B, n_in]`` (0/1, any float dtype)."""
        if mode not in ("float", "qat"):
            raise ValueError(f"unknown mode {mode!r}")
        quantise = mode == "qat"
        dtype = self.qat_dtype(spikes.shape[0]) if quantise else torch.float32
        weights, thresholds, scales = [], [], []
        for index in range(self.n_layers):
            if quantise:
                scale, units = self.quantised_units(index)
                weights.append(units.to(dtype))
                scales.append(scale)
                if index < self.n_layers - 1:
                    thresholds.append(float(self.integer_threshold(index, float(scale))))
            else:
                weights.append(self.masked_weight(index))
                scales.append(torch.tensor(1.0))
                thresholds.append(self.threshold)
        steps = spikes.shape[0]
        low, high = self.v_range
        # A layer's input does not depend on its own state: run each layer over all T steps at once.
        # The first layer's product is event-driven (cost per change of an input spike train) when the
        # input is bool.
        if spikes.dtype == torch.bool:
            x = spike_train_matmul(spikes, weights[0])
        else:
            x = spikes.to(dtype) @ weights[0]
        for index in range(self.n_layers - 1):
            if index > 0:
                x = x @ weights[index]
            params = LIFParams(
                threshold=thresholds[index],
                scale=float(scales[index]),
                leak_shift=self.leak_shift,
                floor_leak=quantise,
                low=float(low) if quantise else None,
                high=float(high) if quantise else None,
                slope=self.surrogate_slope,
                surrogate=self.surrogate,
            )
            x = lif_sequence(x, params)
        # The output layer has no state: Σ_t z_t @ W equals (Σ_t z_t) @ W (exact in QAT units).
        acc = x.sum(dim=0) @ weights[-1] if self.n_layers > 1 else x.sum(dim=0)
        return (acc * (scales[-1] / steps)).to(torch.float32)

    # ------------------------------------------------------------ exact integer mode

    @torch.no_grad()
    def forward_integer(self, spikes: torch.Tensor | np.ndarray, record: bool = True) -> IntegerTrace:
        """Exact integer semantics in int64 on input spikes ``[T, B, n_in]`` (bool or 0/1).

        ``u = clamp(v − (v >> k) + I)``, spike ``u ≥ θ``, ``v = 0`` on spike else ``u``;
        the output layer accumulates ``acc += I``; prediction ``argmax`` (ties: lowest index).
        """
        x_all = torch.as_tensor(np.asarray(spikes) if isinstance(spikes, np.ndarray) else spikes)
        x_all = x_all.to(torch.int64)
        if x_all.ndim != 3 or x_all.shape[2] != self.sizes[0]:
            raise ValueError(f"input spikes {tuple(x_all.shape)} are not [T, B, {self.sizes[0]}]")
        weights = self.integer_weights()
        thresholds = self.integer_thresholds()
        steps, batch = x_all.shape[:2]
        low, high = self.v_range
        potentials = [torch.zeros(batch, size, dtype=torch.int64) for size in self.sizes[1:-1]]
        spike_record = [
            torch.zeros(steps if record else 0, batch, size, dtype=torch.bool) for size in self.sizes[1:-1]
        ]
        potential_record = [
            torch.zeros(steps if record else 0, batch, size, dtype=torch.int64) for size in self.sizes[1:-1]
        ]
        outputs = torch.zeros(batch, self.sizes[-1], dtype=torch.int64)
        for step in range(steps):
            x = x_all[step]
            for index, potential in enumerate(potentials):
                if self.leak_shift is not None:
                    potential = potential - (potential >> self.leak_shift)
                updated = torch.clamp(potential + x @ weights[index], low, high)
                fired = updated >= thresholds[index]
                potentials[index] = torch.where(fired, 0, updated)
                if record:
                    spike_record[index][step] = fired
                    potential_record[index][step] = potentials[index]
                x = fired.to(torch.int64)
            outputs += x @ weights[-1]
        return IntegerTrace(spike_record, potential_record, outputs, torch.argmax(outputs, dim=1))


def check_shape(net: LIFNet, sizes: Sequence[int]) -> None:
    """Raise :class:`EslError` when ``net`` is not ``sizes`` (e.g. a checkpoint for another model)."""
    if list(net.sizes) != list(sizes):
        raise EslError(
            f"model shape {'-'.join(map(str, net.sizes))} does not match {'-'.join(map(str, sizes))}"
        )


def encode_batch(images: np.ndarray, timesteps: int) -> torch.Tensor:
    """Input spikes ``[T, B, n_in]`` (bool) from uint8 images, exactly as the hardware receives them."""
    return torch.from_numpy(encode(np.ascontiguousarray(images), timesteps))
