"""Products of binary spikes with a weight matrix at a cost per event (input sparsity), with gradients.

:func:`event_matmul`, for a bool matrix ``e [N, n_in]``::

    out[n] = Σ_{j: e[n, j]} W[j]              ∂L/∂W[j] = Σ_{n: e[n, j]} ∂L/∂out[n]

:func:`spike_train_matmul`, for spike trains ``s [T, B, n_in]``, codes each train by its *changes*
``D_t = s_t − s_{t−1}`` (``s_{−1} = 0``, entries −1, 0, 1), so that an input that spikes at every
step (a bright rate-coded pixel) is one event instead of ``T``::

    out_t = Σ_{τ ≤ t} D_τ @ W                 ∂L/∂W = Σ_τ D_τᵀ H_τ,   H_τ = Σ_{t ≥ τ} ∂L/∂out_t

Both are embedding-bag sums over the events (the signed ones weighted by ±1) plus, for the trains,
a running sum over ``t``. With integer-valued ``W`` (QAT) every partial sum is an integer, exact in
float32 below 2^24, so the results equal the dense products exactly; in float they equal them up to
rounding. The gradients are the dense ``∂L/∂W`` at every position. When ``W`` holds integers within
int8 (QAT at ``w_bits ≤ 8``), the trains' forward is instead one int8 product ``s @ W`` accumulated
in int32 (``torch._int_mm``, on the CPU's VNNI / AMX units: several times faster than a float
product, and exact).

Mixed precision (``grad_dtype=torch.bfloat16``, the trainer's ``train.weight_grad: bfloat16``): the
trains' weight gradient is instead one dense product ``∂L/∂W = Σ_t s_tᵀ ∂L/∂out_t`` with both
operands in bfloat16 (the 0/1 spikes exactly, ``∂L/∂out`` rounded to 8 bits of mantissa) and float32
accumulation, on the CPU's bf16 matrix units (AMX) where it has them; the result is rounded to
bfloat16, so each entry carries a relative error of about 2^−8. The forward is unchanged (exact).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


def _flat_nonzero(mask: torch.Tensor) -> torch.Tensor:
    """Positions (int64) of the True entries of a 1-D bool tensor; numpy's on the CPU (about twice
    as fast as torch's there)."""
    if mask.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(mask.numpy()))
    return torch.nonzero(mask).squeeze(1)


@dataclass(frozen=True)
class Events:
    """The non-zero entries of an ``[N, n]`` matrix of events: ``rows``, ``columns`` (row-major
    order) and ``signs`` (the entries, None for a bool matrix, whose entries are all 1)."""

    count: int
    width: int
    rows: torch.Tensor
    columns: torch.Tensor
    signs: torch.Tensor | None

    @classmethod
    def of(cls, events: torch.Tensor) -> Events:
        """The events of a bool or int8 (−1..1) matrix ``[N, n]``."""
        count, width = events.shape
        flat_events = events.reshape(-1)
        flat = torch.nonzero(flat_events).squeeze(1)
        rows = torch.div(flat, width, rounding_mode="floor")
        signs = None if events.dtype == torch.bool else flat_events[flat]
        return cls(count, width, rows, flat - rows * width, signs)

    @classmethod
    def of_changes(cls, spikes: torch.Tensor) -> Events:
        """The events of :func:`spike_changes` of bool trains ``spikes [T, B, n]``, as an
        ``[T·B, n]`` matrix: an entry where a train turns on (+1) or off (−1)."""
        steps, batch, width = spikes.shape
        spikes = spikes.contiguous()
        changed = torch.empty_like(spikes)
        changed[0] = spikes[0]
        torch.bitwise_xor(spikes[1:], spikes[:-1], out=changed[1:])
        flat = _flat_nonzero(changed.view(-1))
        rows = torch.div(flat, width, rounding_mode="floor")
        signs = spikes.view(-1)[flat].to(torch.int8) * 2 - 1
        return cls(steps * batch, width, rows, flat - rows * width, signs)

    def product(self, table: torch.Tensor) -> torch.Tensor:
        """``events @ table`` ``[N, m]`` for ``table [n, m]``: per row, the signed sum of the rows of
        ``table`` at its events (an embedding-bag sum)."""
        return self._bag_sum(self.rows, self.columns, self.count, self.signs, table)

    def transposed_product(self, table: torch.Tensor) -> torch.Tensor:
        """``eventsᵀ @ table`` ``[n, m]`` for ``table [N, m]`` (the same events grouped by column)."""
        narrow = torch.int16 if self.width <= torch.iinfo(torch.int16).max else torch.int32
        order = torch.argsort(self.columns.to(narrow), stable=True)  # narrow keys sort faster
        signs = None if self.signs is None else self.signs[order]
        return self._bag_sum(self.columns[order], self.rows[order], self.width, signs, table)

    @staticmethod
    def _bag_sum(
        keys: torch.Tensor, indices: torch.Tensor, count: int, signs: torch.Tensor | None, table: torch.Tensor
    ) -> torch.Tensor:
        """Row ``r``: ``Σ_{e: keys[e] = r} signs[e] · table[indices[e]]`` (``keys`` sorted)."""
        offsets = torch.searchsorted(keys, torch.arange(count, dtype=keys.dtype))
        weights = None if signs is None else signs.to(table.dtype)
        # a detached table selects the forward-only kernel (no bookkeeping for embedding_bag's backward)
        return nn.functional.embedding_bag(
            indices, table.detach(), offsets, mode="sum", per_sample_weights=weights
        )


class _EventMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, events: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        found = Events.of(events)
        ctx.events = found
        return found.product(weight)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[None, torch.Tensor | None]:
        if not ctx.needs_input_grad[1]:
            return None, None
        return None, ctx.events.transposed_product(grad_output.contiguous())


def event_matmul(events: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``events @ weight`` for a bool matrix ``events [N, n_in]`` (module docstring)."""
    return _EventMatmul.apply(events, weight)


def spike_changes(spikes: torch.Tensor) -> torch.Tensor:
    """``D_t = s_t − s_{t−1}`` (``s_{−1} = 0``) as int8 ``[T, …]`` for bool spikes ``[T, …]``."""
    levels = spikes.contiguous().view(torch.int8)  # bool storage is one byte 0/1: no conversion
    changes = levels.clone()
    changes[1:] -= levels[:-1]
    return changes


#: ``_int_mm`` accumulates in int32: exact while ``n_in · 128 < 2^31``.
_INT8_MAX_WIDTH = (1 << 31) // 128


def int8_product(levels: torch.Tensor, weight: torch.Tensor) -> torch.Tensor | None:
    """``levels @ weight`` exactly, as int32, for int8 ``levels [N, n_in]`` (0/1 or −1..1) and an
    integer-valued ``weight`` within int8, on the CPU's int8 matrix units (VNNI / AMX); None where
    this torch has no int8 product for these operands (the caller falls back to events)."""
    if levels.shape[0] == 0 or levels.shape[1] >= _INT8_MAX_WIDTH or weight.device.type != "cpu":
        return None
    try:
        return torch._int_mm(levels, weight.to(torch.int8))
    except (RuntimeError, AttributeError, NotImplementedError):
        return None


#: The gradient precisions :func:`spike_train_matmul` takes (``None``: the weight's own, exact events).
GRAD_DTYPES = (None, torch.bfloat16)


class _SpikeTrainMatmul(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, spikes: torch.Tensor, weight: torch.Tensor, integer: bool, grad_dtype: torch.dtype | None
    ) -> torch.Tensor:
        steps, batch, width = spikes.shape
        levels = spikes.contiguous().view(torch.int8).reshape(steps * batch, width)
        product = int8_product(levels, weight) if integer else None
        if product is not None:
            out = product.to(weight.dtype).reshape(steps, batch, -1)
        else:
            out = Events.of_changes(spikes).product(weight).reshape(steps, batch, -1)
            for step in range(1, steps):
                out[step] += out[step - 1]
        ctx.grad_dtype = grad_dtype
        ctx.save_for_backward(spikes)
        return out

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[None, torch.Tensor | None, None, None]:
        if not ctx.needs_input_grad[1]:
            return None, None, None, None
        (spikes,) = ctx.saved_tensors
        steps, batch, width = spikes.shape
        if ctx.grad_dtype is not None:  # one dense low-precision product Σ_t s_tᵀ g_t (mixed precision)
            levels = spikes.contiguous().view(torch.uint8).reshape(steps * batch, width).to(ctx.grad_dtype)
            flat = grad_output.reshape(steps * batch, -1).to(ctx.grad_dtype)
            return None, torch.mm(levels.t(), flat).to(grad_output.dtype), None, None
        suffix = torch.empty(grad_output.shape, dtype=grad_output.dtype)
        suffix[-1] = grad_output[-1]
        for step in range(steps - 2, -1, -1):
            torch.add(grad_output[step], suffix[step + 1], out=suffix[step])
        changes = Events.of_changes(spikes)
        return None, changes.transposed_product(suffix.reshape(steps * batch, -1)), None, None


def spike_train_matmul(
    spikes: torch.Tensor, weight: torch.Tensor, integer: bool = False, grad_dtype: torch.dtype | None = None
) -> torch.Tensor:
    """``out_t = s_t @ weight`` for bool spike trains ``spikes [T, B, n_in]``, ``[T, B, n_out]``.

    ``integer``: ``weight`` holds integers within int8 (QAT at ``w_bits ≤ 8``), and the forward is
    one exact int8 product where torch has one (:func:`int8_product`); otherwise the trains are coded
    by their changes (module docstring). The backward runs on the changes, or with ``grad_dtype``
    (one of :data:`GRAD_DTYPES`) as one dense product in that precision (mixed precision)."""
    if grad_dtype not in GRAD_DTYPES:
        raise ValueError(f"spike_train_matmul: grad_dtype must be one of {GRAD_DTYPES}, got {grad_dtype!r}")
    return _SpikeTrainMatmul.apply(spikes, weight, integer, grad_dtype)
