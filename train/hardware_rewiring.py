"""The ``hardware-random`` rule: the chip's prune-and-regrow (:mod:`esl_hw.rewiring`) run in training.

Unlike the other rules this is a *joint* prune-and-regrow, decided on the integer weights in the
chip's storage order, so it is not a grow function of :class:`esl_hw.train.sparse_rules.GrowContext`:
:class:`esl_hw.train.sparse.SparseEngine` calls :meth:`HardwareRewiring.rewire` instead of its prune
and grow rules when ``grow == "hardware-random"``.

A layer's weight ``W`` and mask ``M`` are ``[n_in, n_out]`` (the artifact's orientation: row ``i``
is presynaptic neuron ``i``, column ``j`` postsynaptic neuron ``j``; flat index ``i · n_out + j``).
The rule keeps, per layer, what the chip's synapse memory holds between updates:

- ``row_ptr`` (fixed: every row keeps its synapse count) and ``col[p]``, the post index at every
  CSR position ``p``; at the start ``col`` is the mask's row-major order, which is what export
  writes, and an update overwrites ``col`` in place, like the chip;
- the layer's 32-bit LFSR state, carried from update to update (the first starts from ``seed``).

An update with ``k`` synapses, on the integer weights ``Q`` that export writes
(``Q = clamp(round(W ⊙ M / s), ±qmax)``)::

    w[p] = Q[row(p), col[p]]
    (col', state') = rewire_layer(CSR(row_ptr, col, w), k, state, lanes)
    M[row(p), col[p]] = False,  M[row(p), col'[p]] = True     for every rewired position p

Keeping ``col`` in storage order (rather than re-sorting it by column) makes ties in ``|w|`` go to
the same synapse as on a chip that rewires its memory in place, update after update.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from esl_hw import limits
from esl_hw.artifact import Layer
from esl_hw.errors import EslError
from esl_hw.rewiring import DEFAULT_SEED, LFSR_MASK, rewire_layer

#: The most lanes a core has (:data:`esl_hw.limits.MAX_LANES`): a config the hardware would refuse is
#: refused before training.
MAX_LANES = limits.MAX_LANES


def check_lanes(lanes: Any, key: str = "lanes") -> int:
    """``lanes`` if the hardware accepts it (a power of two in ``1..MAX_LANES``,
    :func:`esl_hw.limits.check_lanes`); otherwise :class:`EslError` showing the value."""
    return limits.check_lanes(lanes, key)


def check_seed(seed: Any, key: str = "lfsr_seed") -> int:
    """``seed`` if it is a non-zero 32-bit integer; otherwise :class:`EslError` showing the value."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 < seed <= LFSR_MASK:
        raise EslError(f"{key} must be an integer in 1..{LFSR_MASK:#x}, got {seed!r}")
    return seed


def _csr(mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``(row_ptr, col)`` of a bool ``[n_in, n_out]`` mask, row-major (the artifact's CSR order)."""
    if mask.ndim != 2:
        raise EslError(f"hardware-random rewires 2-D [n_in, n_out] weights, got shape {tuple(mask.shape)}")
    rows, cols = np.nonzero(mask.cpu().numpy())
    row_ptr = np.zeros(mask.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=mask.shape[0]), out=row_ptr[1:])
    return row_ptr, cols.astype(np.int64)


class HardwareRewiring:
    """Per-layer chip storage (``row_ptr``, ``col``) and LFSR states for the ``hardware-random`` rule.

    Parameters
    ----------
    masks:
        The engine's bool masks ``[n_in, n_out]``, one per layer (read once, to build the storage).
    lanes:
        Lanes ``L`` of the target core (a power of two): regrowth stays in the bank ``col mod L``.
    seed:
        Initial LFSR state of every layer (non-zero, 32 bits).
    """

    def __init__(self, masks: Sequence[torch.Tensor], lanes: int = 1, seed: int = DEFAULT_SEED) -> None:
        self.lanes = check_lanes(lanes)
        self.seed = check_seed(seed)
        storage = [_csr(mask) for mask in masks]
        self.shapes = [tuple(mask.shape) for mask in masks]
        self.row_ptrs = [row_ptr for row_ptr, _ in storage]
        self.columns = [col for _, col in storage]
        self.states = [self.seed] * len(storage)

    def rows(self, index: int) -> np.ndarray:
        """Presynaptic neuron of every CSR position of layer ``index``."""
        row_ptr = self.row_ptrs[index]
        return np.repeat(np.arange(len(row_ptr) - 1), np.diff(row_ptr))

    def mask(self, index: int) -> torch.Tensor:
        """The bool ``[n_in, n_out]`` mask that layer ``index``'s storage describes."""
        mask = torch.zeros(self.shapes[index], dtype=torch.bool)
        mask[torch.from_numpy(self.rows(index)), torch.from_numpy(self.columns[index])] = True
        return mask

    def layer(self, index: int, integers: torch.Tensor) -> Layer:
        """Layer ``index`` as the chip holds it: storage order and the integer weights ``integers``."""
        rows, col = self.rows(index), self.columns[index]
        weight = integers.detach().cpu().to(torch.int64).numpy()[rows, col]
        w_bits = max(2, int(np.abs(weight).max(initial=0)).bit_length() + 1)
        return Layer(
            kind="output", n_out=self.shapes[index][1], row_ptr=self.row_ptrs[index], col=col,
            weight=weight, w_bits=w_bits,
        )  # fmt: skip

    def rewire(self, index: int, integers: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rewire ``count`` synapses of layer ``index`` on its integer weights ``integers [n_in, n_out]``.

        Returns the flat indices ``(pruned, grown)`` (same length, in storage order; a column may be
        pruned and regrown in the same update) and updates the storage and the LFSR state.
        """
        if tuple(integers.shape) != self.shapes[index]:
            raise ValueError(f"integer weights {tuple(integers.shape)} for a {self.shapes[index]} layer")
        new, state, changes = rewire_layer(self.layer(index, integers), count, self.states[index], self.lanes)
        positions = np.array([position for position, _, _ in changes], dtype=np.int64)
        rows = self.rows(index)[positions]
        n_out = self.shapes[index][1]
        old = rows * n_out + self.columns[index][positions]
        grown = rows * n_out + new.col[positions]
        self.columns[index] = new.col
        self.states[index] = state
        return torch.from_numpy(old), torch.from_numpy(grown)

    def check(self, index: int, mask: torch.Tensor) -> None:
        """Raise :class:`EslError` unless ``mask`` is the connectivity of layer ``index``'s storage."""
        if not torch.equal(self.mask(index), mask.cpu()):
            raise EslError(f"layer {index}: mask does not match the hardware-random storage")

    def state_dict(self) -> dict[str, Any]:
        return {
            "lanes": self.lanes,
            "seed": self.seed,
            "states": list(self.states),
            "row_ptrs": [torch.from_numpy(row_ptr.copy()) for row_ptr in self.row_ptrs],
            "columns": [torch.from_numpy(col.copy()) for col in self.columns],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore storage order and LFSR states (from :meth:`state_dict` of the same layers)."""
        if (state["lanes"], state["seed"]) != (self.lanes, self.seed):
            raise EslError(
                f"rewiring state is for lanes={state['lanes']}, lfsr_seed={state['seed']}, "
                f"not lanes={self.lanes}, lfsr_seed={self.seed}"
            )
        row_ptrs = [row_ptr.cpu().numpy().astype(np.int64) for row_ptr in state["row_ptrs"]]
        columns = [column.cpu().numpy().astype(np.int64) for column in state["columns"]]
        if [len(row_ptr) - 1 for row_ptr in row_ptrs] != [shape[0] for shape in self.shapes]:
            raise EslError("rewiring state does not fit the layers' shapes")
        self.row_ptrs, self.columns = row_ptrs, columns
        self.states = [check_seed(int(value), "LFSR state") for value in state["states"]]
