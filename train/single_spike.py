"""Single-spike temporal coding network of Mostafa (2018), "Supervised learning based on temporal
coding in spiking neural networks" (IEEE TNNLS 29(7)), trained with exact spike-time gradients.

Neurons are non-leaky integrate-and-fire with exponentially decaying synaptic current (τ = 1,
threshold 1). An input spike at time ``t_i`` through weight ``w_i`` adds ``w_i (1 − e^{−(t − t_i)})``
to the membrane potential for ``t ≥ t_i``. In the z-domain ``z = e^t``, a neuron whose *causal set*
``C`` (the inputs that arrive before it fires) is known fires at

    z_out = Σ_{i∈C} w_i z_i / (Σ_{i∈C} w_i − 1)

when ``Σ_{i∈C} w_i > 1``. ``C`` is the shortest prefix of the inputs sorted by time for which this
``z_out`` is valid: ``Σ w > 1`` and ``z_out`` no later than the next input (``z_out ≤ z_{k+1}``);
without one, the neuron never fires (``z = ∞``). Each neuron fires at most once. The exact gradients
follow from the formula (autograd through it gives them):

    ∂z_out/∂w_i = (z_i − z_out) / (Σ_C w − 1),   ∂z_out/∂z_i = w_i / (Σ_C w − 1)   (i ∈ C)

Cost (the paper's): cross-entropy of the softmax over ``−z`` of the output layer, so the correct
neuron must fire first, plus ``K · Σ_j max(0, 1 − Σ_i w_ij)`` per layer, which pushes every neuron to
have enough input weight to fire. Large gradients occur when ``Σ_C w`` is close to 1; the training
step therefore normalises each layer's gradient to at most unit Frobenius norm
(:func:`normalise_gradients`; our reading of the paper's gradient normalisation).

Input encoding: pixel intensity ``x ∈ [0, 255]`` spikes in slot ``k = L − 1 − floor(x L / 256)`` at
``t_k = t_max · k / (L − 1)`` (bright pixels first; black pixels last, at ``t_max``), ``z = e^t``. With
few shared slots the first layer needs one matmul per slot (:func:`first_spike_z_slots`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from esl_hw.train.neurons import straight_through

NEVER = math.inf


def encode_levels(images: np.ndarray | torch.Tensor, levels: int) -> torch.Tensor:
    """Arrival slot ``k = L − 1 − floor(x L / 256)`` per pixel ``[B, n_in]`` (bright pixels first)."""
    pixels = (images if torch.is_tensor(images) else torch.as_tensor(np.asarray(images))).to(torch.int64)
    return levels - 1 - (pixels * levels) // 256


def slot_z(levels: int, t_max: float) -> torch.Tensor:
    """``z_k = exp(t_max · k / (L − 1))`` of the ``L`` arrival slots (``L = 1``: every input at t = 0)."""
    return torch.exp(t_max * torch.arange(levels, dtype=torch.float32) / max(levels - 1, 1))


def encode_times(images: np.ndarray | torch.Tensor, levels: int = 8, t_max: float = 1.0) -> torch.Tensor:
    """Input spike times in the z-domain, ``z = exp(t_k)`` of each pixel's slot, ``[B, n_in]``."""
    return slot_z(levels, t_max)[encode_levels(images, levels)]


def _first_valid(
    cum_w: torch.Tensor, cum_wz: torch.Tensor, z_now: torch.Tensor, z_next: torch.Tensor
) -> torch.Tensor:
    """``z_out`` at the first prefix ``k`` (dim 1) with ``Σw > 1`` and ``z_k ≤ z_out ≤ z_{k+1}``."""
    denominator = cum_w - 1.0
    positive = denominator > 0
    candidate = cum_wz / torch.where(positive, denominator, torch.ones_like(denominator))
    valid = positive & (candidate <= z_next) & (candidate >= z_now)
    first = torch.argmax(valid.to(torch.uint8), dim=1, keepdim=True)  # first True along dim 1
    z_out = torch.gather(candidate, 1, first).squeeze(1)
    return torch.where(valid.any(dim=1), z_out, torch.full_like(z_out, NEVER))


def first_spike_z_slots(slots: torch.Tensor, z_slots: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """:func:`first_spike_z` for inputs that arrive in ``L`` shared slots (the encoded image).

    ``slots [B, n_in]`` holds each input's slot, ``z_slots [L]`` ascending. The weight arriving per
    slot, ``S[b, k] = Σ_{i: slot = k} w_i``, is one matmul per slot, so the cost is ``L · B · n_in ·
    n_out`` instead of a sort and gather of ``B · n_in · n_out`` per sample. An empty slot repeats the
    previous prefix, which the validity test handles.
    """
    count = len(z_slots)
    per_slot = torch.stack([(slots == k).to(weight.dtype) @ weight for k in range(count)], dim=1)
    z_column = z_slots.to(weight.dtype).view(1, count, 1)
    cum_w = torch.cumsum(per_slot, dim=1)
    cum_wz = torch.cumsum(per_slot * z_column, dim=1)
    z_next = torch.cat(
        [z_slots[1:].to(weight.dtype), torch.tensor([NEVER], dtype=weight.dtype, device=weight.device)]
    )
    return _first_valid(cum_w, cum_wz, z_column, z_next.view(1, count, 1))


def first_spike_z(z_in: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Output spike times ``z_out [B, n_out]`` of a layer (``inf``: no spike), differentiable.

    ``z_in [B, n_in]`` (``inf`` for inputs that never spike), ``weight [n_in, n_out]``.
    """
    z_sorted, order = torch.sort(z_in, dim=1)
    fired = torch.isfinite(z_sorted)
    w_sorted = weight[order] * fired.unsqueeze(2)  # [B, n_in, n_out]; silent inputs contribute 0
    z_finite = torch.where(fired, z_sorted, torch.zeros_like(z_sorted)).unsqueeze(2)
    cum_w = torch.cumsum(w_sorted, dim=1)
    cum_wz = torch.cumsum(w_sorted * z_finite, dim=1)
    next_z = torch.cat([z_sorted[:, 1:], torch.full_like(z_sorted[:, :1], NEVER)], dim=1).unsqueeze(2)
    # a silent input (z = ∞) never starts a valid prefix: z_now = ∞ fails candidate ≥ z_now
    z_now = torch.where(fired, z_sorted, torch.full_like(z_sorted, NEVER)).unsqueeze(2)
    return _first_valid(cum_w, cum_wz, z_now, next_z)


class SingleSpikeNet(nn.Module):
    """Feed-forward single-spike network ``n_in - hidden… - n_out`` with optional weight masks."""

    def __init__(
        self, hidden: Sequence[int], n_in: int = 784, n_out: int = 10, levels: int = 8, t_max: float = 1.0
    ) -> None:
        super().__init__()
        self.sizes = [n_in, *hidden, n_out]
        self.levels, self.t_max = levels, t_max
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(fan_in, fan_out))
            for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:], strict=True)
        )
        for index, weight in enumerate(self.weights):
            self.register_buffer(f"mask_{index}", torch.ones_like(weight, dtype=torch.bool))
        self.reset_parameters()

    def reset_parameters(self, densities: Sequence[float] | None = None) -> None:
        """Normal init with mean ``2/(density · n_in)`` so that a neuron's summed input weight is ~2 > 1."""
        densities = densities or [1.0] * len(self.weights)
        with torch.no_grad():
            for weight, density in zip(self.weights, densities, strict=True):
                fan_in = max(density * weight.shape[0], 1.0)
                weight.normal_(2.0 / fan_in, 2.0 / math.sqrt(fan_in))

    @property
    def n_layers(self) -> int:
        return len(self.weights)

    def masks(self) -> list[torch.Tensor]:
        return [getattr(self, f"mask_{index}") for index in range(self.n_layers)]

    def named_weights(self) -> list[tuple[str, nn.Parameter]]:
        return [(f"weights.{index}", weight) for index, weight in enumerate(self.weights)]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Output spike times ``z [B, n_out]`` for uint8-range images ``[B, n_in]``."""
        weights = [straight_through(w * m, w) for w, m in zip(self.weights, self.masks(), strict=True)]
        if images.dtype == torch.uint8:
            z_slots = slot_z(self.levels, self.t_max).to(images.device)
            z = first_spike_z_slots(encode_levels(images, self.levels), z_slots, weights[0])
        else:
            z = first_spike_z(images, weights[0])
        for weight in weights[1:]:
            z = first_spike_z(z, weight)
        return z

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """The output neuron that fires first (ties and silence: lowest index)."""
        return torch.argmin(self(images), dim=1)


def temporal_loss(z_out: torch.Tensor, labels: torch.Tensor, z_cap: float = 1e4) -> torch.Tensor:
    """Cross-entropy of ``softmax(−z)``: the correct output neuron must fire first.

    Silent outputs (``z = ∞``) count as firing at ``z_cap`` (no gradient flows through them).
    """
    capped = torch.where(torch.isfinite(z_out), z_out, torch.full_like(z_out, z_cap))
    return nn.functional.cross_entropy(-capped, labels)


def weight_sum_cost(net: SingleSpikeNet, factor: float = 1.0) -> torch.Tensor:
    """``K · Σ_layers Σ_j max(0, 1 − Σ_i w_ij)``: every neuron needs input weight above threshold."""
    total = torch.zeros((), device=net.weights[0].device)
    for weight, mask in zip(net.weights, net.masks(), strict=True):
        total = total + torch.relu(1.0 - (weight * mask).sum(dim=0)).sum()
    return factor * total


def normalise_gradients(net: SingleSpikeNet, max_norm: float = 1.0) -> None:
    """Scale each layer's weight gradient to Frobenius norm at most ``max_norm``."""
    for weight in net.weights:
        if weight.grad is not None:
            norm = float(weight.grad.norm())
            if norm > max_norm:
                weight.grad.mul_(max_norm / norm)
