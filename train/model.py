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

Every layer has its own ``w_bits`` (and qmax), ``v_bits``, threshold, leak shift and neuron kind
(a scalar given to the constructor applies to every layer). A layer's neuron kind selects its update
in :data:`esl_hw.train.neurons.NEURON_KINDS`. :meth:`LIFNet.from_model` loads any valid artifact:
its weights are the artifact's integers at a *fixed* scale ``s_l = 1`` (the quantiser then keeps them
as they are, over the full signed ``w_bits`` range ``−2^(w_bits−1) .. qmax``), its thresholds the
artifact's ``θ_l``, its per-layer resets (zero or by subtraction), synaptic shifts (``cubalif``)
and biases (``biases``: integers in the layer's units, added to every step's current; the trainer
itself trains none), so that its integer mode computes exactly what :func:`esl_hw.reference.run`
does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from esl_hw.artifact import Encoder, Model
from esl_hw.encoding import encode
from esl_hw.errors import EslError
from esl_hw.train.config import ModelConfig
from esl_hw.train.events import event_matmul, spike_train_matmul
from esl_hw.train.neurons import neuron_kind

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
        ctx, weight: torch.Tensor, masked: torch.Tensor, scale: torch.Tensor, low: int, high: int
    ) -> torch.Tensor:
        ctx.save_for_backward(scale)
        return torch.clamp_(torch.round_(masked / scale), low, high)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None, None, None, None]:
        (scale,) = ctx.saved_tensors
        return grad_output / scale, None, None, None, None


@dataclass(frozen=True)
class IntegerTrace:
    """Integer run: per LIF layer ``spikes``/``potentials`` ``[T, B, n_out]``, ``outputs`` ``[B, n_out]``."""

    spikes: list[torch.Tensor]
    potentials: list[torch.Tensor]
    outputs: torch.Tensor
    predictions: torch.Tensor


def per_layer(value: Any, count: int, name: str) -> tuple[Any, ...]:
    """``value`` for each of ``count`` layers: a scalar (or None) repeated, or a sequence of that length."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != count:
            raise ValueError(f"{name}: {len(value)} values given for {count} layers")
        return tuple(value)
    return (value,) * count


class LIFNet(nn.Module):
    """LIF MLP ``n_in - hidden… - n_out`` driven by the encoder's input spikes ``[T, B, n_in]``.

    ``w_bits`` (every layer), ``v_bits``, ``leak_shift``, ``threshold``, ``kinds``, ``resets`` and
    ``syn_shifts`` (the hidden layers) are each a scalar for all layers or one value per layer.
    ``fixed_scales`` (one per layer) replaces the trained scale ``max|W ⊙ M| / qmax`` and ``biases``
    (one per layer, ``None`` for none) adds a constant current in the layer's units
    (:meth:`from_model`).
    """

    def __init__(
        self,
        hidden: Sequence[int],
        n_in: int = 784,
        n_out: int = 10,
        timesteps: int = 8,
        w_bits: int | Sequence[int] = 8,
        v_bits: int | Sequence[int] = 16,
        leak_shift: int | None | Sequence[int | None] = 2,
        threshold: float | Sequence[float] = 1.0,
        surrogate: str = "fast_sigmoid",
        surrogate_slope: float = 5.0,
        kinds: str | Sequence[str] = "lif",
        fixed_scales: Sequence[float] | None = None,
        resets: str | Sequence[str] = "zero",
        syn_shifts: int | None | Sequence[int | None] = None,
        biases: Sequence[np.ndarray | None] | None = None,
    ) -> None:
        super().__init__()
        self.sizes = [n_in, *hidden, n_out]
        n_layers, n_hidden = len(self.sizes) - 1, len(hidden)
        self.timesteps = timesteps
        self.layer_w_bits: tuple[int, ...] = per_layer(w_bits, n_layers, "w_bits")
        self.layer_v_bits: tuple[int, ...] = per_layer(v_bits, n_hidden, "v_bits")
        self.layer_leak_shifts: tuple[int | None, ...] = per_layer(leak_shift, n_hidden, "leak_shift")
        self.layer_thresholds: tuple[float, ...] = per_layer(threshold, n_hidden, "threshold")
        self.kinds: tuple[str, ...] = per_layer(kinds, n_hidden, "kinds")
        self.layer_resets: tuple[str, ...] = per_layer(resets, n_hidden, "resets")
        self.layer_syn_shifts: tuple[int | None, ...] = per_layer(syn_shifts, n_hidden, "syn_shifts")
        for kind in self.kinds:
            neuron_kind(kind)  # an unknown kind is refused here, naming the known ones
        self.fixed_scales = (
            None if fixed_scales is None else per_layer(fixed_scales, n_layers, "fixed_scales")
        )
        # what a scalar argument said, for the uniform properties of a net without hidden layers
        self._given = {"w_bits": w_bits, "v_bits": v_bits, "leak_shift": leak_shift, "threshold": threshold}
        self.surrogate, self.surrogate_slope = surrogate, surrogate_slope
        #: the input layer's weight-gradient precision (None: exact events; ``torch.bfloat16``: mixed)
        self.weight_grad_dtype: torch.dtype | None = None
        self.encoder = Encoder()
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(fan_in, fan_out))
            for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:], strict=True)
        )
        for index, weight in enumerate(self.weights):
            self.register_buffer(f"mask_{index}", torch.ones_like(weight, dtype=torch.bool))
        layer_biases = per_layer(biases, n_layers, "biases") if biases is not None else (None,) * n_layers
        for index, bias in enumerate(layer_biases):
            if bias is not None:  # integers in the layer's units; float64 holds 32-bit values exactly
                self.register_buffer(f"bias_{index}", torch.as_tensor(np.asarray(bias), dtype=torch.float64))
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

    @classmethod
    def from_model(cls, model: Model) -> LIFNet:
        """The net of a valid artifact ``model`` (any layer count, sizes, widths, thresholds, leaks).

        Its weights are the artifact's integers at the fixed scale 1 and its masks the artifact's
        synapses (a zero-weight synapse stays one), so :meth:`forward_integer` equals
        :func:`esl_hw.reference.run` on every spike, potential and output, and
        :func:`esl_hw.train.export.model_from_net` gives the artifact back (synapses by column).
        Weights wider than 24 bits are held in float64 (exact). The caller's RNG is left as it was.
        """
        layers, hidden = model.layers, model.hidden_layers
        with torch.random.fork_rng(devices=[]):
            net = cls(
                hidden=[layer.n_out for layer in hidden],
                n_in=model.n_inputs,
                n_out=model.n_outputs,
                timesteps=model.timesteps,
                w_bits=[layer.w_bits for layer in layers],
                v_bits=[layer.v_bits for layer in hidden],
                leak_shift=[layer.leak_shift for layer in hidden],
                threshold=[float(layer.threshold) for layer in hidden],
                kinds=[layer.kind for layer in hidden],
                fixed_scales=[1.0] * len(layers),
                resets=[layer.reset for layer in hidden],
                syn_shifts=[layer.syn_shift for layer in hidden],
                biases=[layer.bias for layer in layers],
            )
        if max(net.layer_w_bits) > 24:  # float32 holds integers up to 2^24 exactly
            net.to(torch.float64)
        net.encoder = model.encoder
        with torch.no_grad():
            for weight, mask, layer in zip(net.weights, net.masks(), layers, strict=True):
                rows = np.repeat(np.arange(layer.n_in), np.diff(layer.row_ptr))
                present = np.zeros((layer.n_in, layer.n_out), dtype=bool)
                present[rows, layer.col] = True
                weight.copy_(torch.from_numpy(layer.dense_weight()))
                mask.copy_(torch.from_numpy(present))
        net.eval()
        return net

    def reset_parameters(self, densities: Sequence[float] | None = None, gain: float = 1.0) -> None:
        """Uniform init with std ``gain · threshold / sqrt(density · n_in · p_in)`` per layer.

        ``p_in`` ≈ 0.1 is the typical input spike probability per step, so a neuron's initial current
        is of the order of the threshold.
        """
        densities = densities or [1.0] * len(self.weights)
        with torch.no_grad():
            for index, (weight, density) in enumerate(zip(self.weights, densities, strict=True)):
                threshold = self._layer_value(self.layer_thresholds, "threshold", index)
                std = gain * threshold / math.sqrt(max(density * weight.shape[0] * 0.1, 1.0))
                weight.uniform_(-math.sqrt(3.0) * std, math.sqrt(3.0) * std)

    def _layer_value(self, values: tuple[Any, ...], name: str, index: int) -> Any:
        """``values[index]`` of a hidden layer; the output layer, which has no neurons of a kind,
        takes the last hidden layer's (a net without hidden layers: the scalar it was given, else 1)."""
        if values:
            return values[min(index, len(values) - 1)]
        given = self._given[name]
        return 1 if isinstance(given, Sequence) else given

    # ------------------------------------------------------------ structure

    @property
    def n_layers(self) -> int:
        return len(self.weights)

    def masks(self) -> list[torch.Tensor]:
        return [getattr(self, f"mask_{index}") for index in range(self.n_layers)]

    def bias(self, index: int) -> torch.Tensor | None:
        """Layer ``index``'s bias in its units (float64, integer-valued), or ``None``."""
        return getattr(self, f"bias_{index}", None)

    def integer_biases(self) -> list[np.ndarray | None]:
        """Every layer's bias as int64 (``None`` for a layer without one), as export writes it."""
        return [
            None if (bias := self.bias(index)) is None else bias.to(torch.int64).numpy()
            for index in range(self.n_layers)
        ]

    def named_weights(self) -> list[tuple[str, nn.Parameter]]:
        """``(name, weight)`` pairs for :class:`esl_hw.train.sparse.SparseEngine`."""
        return [(f"weights.{index}", weight) for index, weight in enumerate(self.weights)]

    def _uniform(self, name: str, values: tuple[Any, ...]) -> Any:
        """The one value of ``values`` (a net without hidden layers: the scalar it was given)."""
        if not values:
            given = self._given[name]
            return None if isinstance(given, Sequence) else given
        if all(value == values[0] for value in values):
            return values[0]
        raise ValueError(f"the layers have different {name} {list(values)}; use the per-layer attributes")

    @property
    def w_bits(self) -> int:
        """The weight width of every layer (ValueError when the layers differ)."""
        return self._uniform("w_bits", self.layer_w_bits)

    @property
    def v_bits(self) -> int:
        """The potential width of every hidden layer (ValueError when the layers differ)."""
        return self._uniform("v_bits", self.layer_v_bits)

    @property
    def leak_shift(self) -> int | None:
        """The leak shift of every hidden layer (ValueError when the layers differ)."""
        return self._uniform("leak_shift", self.layer_leak_shifts)

    @property
    def threshold(self) -> float:
        """The float threshold of every hidden layer (ValueError when the layers differ)."""
        return self._uniform("threshold", self.layer_thresholds)

    @property
    def qmax(self) -> int:
        return (1 << (self.w_bits - 1)) - 1

    @property
    def v_range(self) -> tuple[int, int]:
        return -(1 << (self.v_bits - 1)), (1 << (self.v_bits - 1)) - 1

    def layer_qmax(self, index: int) -> int:
        """``2^(w_bits−1) − 1`` of layer ``index``."""
        return (1 << (self.layer_w_bits[index] - 1)) - 1

    def weight_range(self, index: int) -> tuple[int, int]:
        """The integer weights of layer ``index``: ``±qmax`` (trained), the full signed range at a
        fixed scale."""
        qmax = self.layer_qmax(index)
        return (-qmax - 1 if self.fixed_scales is not None else -qmax), qmax

    def layer_v_range(self, index: int) -> tuple[int, int]:
        """The signed ``v_bits`` range of hidden layer ``index``."""
        v_bits = self._layer_value(self.layer_v_bits, "v_bits", index)
        return -(1 << (v_bits - 1)), (1 << (v_bits - 1)) - 1

    def masked_weight(self, index: int) -> torch.Tensor:
        """``W_l ⊙ M_l`` forward, with the *dense* gradient ``∂L/∂(W ⊙ M)`` at every position backward.

        The gradient at inactive positions is what the gradient and momentum growth rules rank; the
        sparse engine zeroes inactive weights after every optimizer step, and the active weights get
        exactly the gradient of the masked product.
        """
        return _Masked.apply(self.weights[index], self.masks()[index])

    # ------------------------------------------------------------ quantisation

    def scale(self, index: int) -> torch.Tensor:
        """``s_l = max|W_l ⊙ M_l| / qmax`` (detached; a tiny floor keeps an all-zero layer finite),
        or the layer's fixed scale."""
        return self._scale(self.weights[index].detach() * mask_factor(self.masks()[index]), index)

    def _scale(self, masked: torch.Tensor, index: int) -> torch.Tensor:
        if self.fixed_scales is not None:
            return torch.tensor(self.fixed_scales[index], dtype=masked.dtype, device=masked.device)
        low, high = torch.aminmax(masked)  # max|x| without a temporary |x| tensor
        return torch.maximum(-low, high).clamp_min(1e-12) / self.layer_qmax(index)

    def quantised_units(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(s_l, Q_l)``: ``Q_l`` integer-valued (float) with a straight-through gradient to ``W_l``.

        Backward, ``∂L/∂W_l = ∂L/∂Q_l / s_l`` at every position (dense, see :meth:`masked_weight`).
        """
        weight = self.weights[index]
        masked = weight.detach() * mask_factor(self.masks()[index])
        scale = self._scale(masked, index)
        return scale, _Quantise.apply(weight, masked, scale, *self.weight_range(index))

    def integer_threshold(self, index: int, scale: float | None = None) -> int:
        """``θ_l = max(1, round(threshold_l / s_l))``, capped at the top of the layer's ``v_bits`` range."""
        threshold = self._layer_value(self.layer_thresholds, "threshold", index)
        value = round(threshold / (float(self.scale(index)) if scale is None else scale))
        return int(min(max(1, value), self.layer_v_range(index)[1]))

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
        magnitudes = [-self.weight_range(index)[0] for index in range(self.n_layers)]
        biases = [
            0.0 if (bias := self.bias(index)) is None else float(bias.abs().max())
            for index in range(self.n_layers)
        ]
        currents = [
            size * magnitude + bias
            for size, magnitude, bias in zip(self.sizes[:-1], magnitudes, biases, strict=True)
        ]
        potential = max((1 << (v_bits - 1) for v_bits in self.layer_v_bits), default=0)
        bound = max(max(currents) + potential, currents[-1] * timesteps)
        return torch.float32 if bound < (1 << 24) else torch.float64

    def _neuron_params(self, index: int, threshold: float, scale: float, quantise: bool) -> Any:
        """Hidden layer ``index``'s parameters for its neuron kind's functions."""
        return neuron_kind(self.kinds[index]).params(
            threshold,
            scale=scale,
            leak_shift=self.layer_leak_shifts[index],
            v_bits=self.layer_v_bits[index],
            quantise=quantise,
            slope=self.surrogate_slope,
            surrogate=self.surrogate,
            reset=self.layer_resets[index],
            syn_shift=self.layer_syn_shifts[index],
        )

    def forward(self, spikes: torch.Tensor, mode: Mode = "qat") -> torch.Tensor:
        """Logits ``[B, n_out]`` for input spikes ``[T, B, n_in]`` (0/1, any float dtype)."""
        if mode not in ("float", "qat"):
            raise ValueError(f"unknown mode {mode!r}")
        quantise = mode == "qat"
        dtype = self.qat_dtype(spikes.shape[0]) if quantise else self.weights[0].dtype
        weights, thresholds, scales = [], [], []
        for index in range(self.n_layers):
            hidden = index < self.n_layers - 1
            if quantise:
                scale, units = self.quantised_units(index)
                weights.append(units.to(dtype))
                scales.append(scale)
                if hidden:
                    thresholds.append(float(self.integer_threshold(index, float(scale))))
            else:
                weights.append(self.masked_weight(index))
                scales.append(torch.tensor(1.0))
                if hidden:
                    thresholds.append(self.layer_thresholds[index])
        steps = spikes.shape[0]
        # A layer's input does not depend on its own state: run each layer over all T steps at once.
        # For bool input the first layer's product is one exact int8 product (QAT, w_bits <= 8) or
        # event-driven (cost per change of an input spike train); its gradient the latter, or one
        # dense bf16 product with ``weight_grad_dtype`` (mixed precision).
        if spikes.dtype == torch.bool:
            low, high = self.weight_range(0)
            integer = quantise and low >= -128 and high <= 127
            x = spike_train_matmul(spikes, weights[0], integer=integer, grad_dtype=self.weight_grad_dtype)
        else:
            x = spikes.to(dtype) @ weights[0]
        for index in range(self.n_layers - 1):
            if index > 0:
                x = x @ weights[index]
            if (bias := self.bias(index)) is not None:
                x = x + bias.to(x.dtype)
            params = self._neuron_params(index, thresholds[index], float(scales[index]), quantise)
            x = neuron_kind(self.kinds[index]).sequence(x, params)
        # The output layer has no state: Σ_t z_t @ W equals (Σ_t z_t) @ W (exact in QAT units).
        acc = x.sum(dim=0) @ weights[-1] if self.n_layers > 1 else x.sum(dim=0)
        if (bias := self.bias(self.n_layers - 1)) is not None:
            acc = acc + steps * bias.to(acc.dtype)
        return (acc * (scales[-1] / steps)).to(torch.float32)

    # ------------------------------------------------------------ exact integer mode

    @torch.no_grad()
    def forward_integer(self, spikes: torch.Tensor | np.ndarray, record: bool = True) -> IntegerTrace:
        """Exact integer semantics in int64 on input spikes ``[T, B, n_in]`` (bool or 0/1).

        Each hidden layer runs its neuron kind's integer step on ``I = x @ Q_l + bias_l`` (``lif``:
        ``u = clamp(v − (v >> k) + I)``, spike ``u ≥ θ``, ``v = reset(u)`` on spike else ``u``);
        the output layer accumulates ``acc += I``; prediction ``argmax`` (ties: lowest index).
        """
        x_all = torch.as_tensor(np.asarray(spikes) if isinstance(spikes, np.ndarray) else spikes)
        x_all = x_all.to(torch.int64)
        if x_all.ndim != 3 or x_all.shape[2] != self.sizes[0]:
            raise ValueError(f"input spikes {tuple(x_all.shape)} are not [T, B, {self.sizes[0]}]")
        weights = self.integer_weights()
        biases = [
            torch.zeros(size, dtype=torch.int64) if bias is None else torch.from_numpy(bias)
            for size, bias in zip(self.sizes[1:], self.integer_biases(), strict=True)
        ]
        kinds = [neuron_kind(kind) for kind in self.kinds]
        params = [
            self._neuron_params(index, threshold, 1.0, quantise=True)
            for index, threshold in enumerate(self.integer_thresholds())
        ]
        steps, batch = x_all.shape[:2]
        sizes = self.sizes[1:-1]
        states = [kind.initial_state(batch, size) for kind, size in zip(kinds, sizes, strict=True)]
        spike_record = [torch.zeros(steps if record else 0, batch, size, dtype=torch.bool) for size in sizes]
        potential_record = [
            torch.zeros(steps if record else 0, batch, size, dtype=torch.int64) for size in sizes
        ]
        outputs = torch.zeros(batch, self.sizes[-1], dtype=torch.int64)
        for step in range(steps):
            x = x_all[step]
            for index, kind in enumerate(kinds):
                current = x @ weights[index] + biases[index]
                fired, states[index] = kind.integer_step(current, states[index], params[index])
                if record:
                    spike_record[index][step] = fired
                    potential_record[index][step] = kind.potential(states[index])
                x = fired.to(torch.int64)
            outputs += x @ weights[-1] + biases[-1]
        return IntegerTrace(spike_record, potential_record, outputs, torch.argmax(outputs, dim=1))


def check_shape(net: LIFNet, sizes: Sequence[int]) -> None:
    """Raise :class:`EslError` when ``net`` is not ``sizes`` (e.g. a checkpoint for another model)."""
    if list(net.sizes) != list(sizes):
        raise EslError(
            f"model shape {'-'.join(map(str, net.sizes))} does not match {'-'.join(map(str, sizes))}"
        )


def encode_batch(images: np.ndarray, timesteps: int, encoder: Encoder | None = None) -> torch.Tensor:
    """Input spikes ``[T, B, n_in]`` (bool) from uint8 images, exactly as the hardware receives them
    (``encoder``: the artifact's, default the rate encoder with phase0 128)."""
    return torch.from_numpy(encode(np.ascontiguousarray(images), timesteps, encoder))
