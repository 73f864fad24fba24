"""ESL prune-and-regrow on CSR memory, as the hardware rewiring unit performs it (the reference).

The core with ``L`` lanes stores a layer's synapses by bank (``col mod L``, one CSR per lane,
see ``esl_hw.rtl_gen.plan``); its *storage order* is lane 0's synapses in CSR order, then lane
1's, and so on (for ``L = 1`` the artifact's CSR order). Per layer, with ``k`` synapses to rewire
(0 <= k <= nnz):

1. **Prune** exactly ``k`` synapses: those of smallest ``|w|``; ties go to the lower storage
   position. Hardware: a histogram pass over ``|w|`` finds the magnitude ``m`` with
   ``count(|w| < m) < k <= count(|w| <= m)``; a selection pass in storage order then prunes every
   synapse with ``|w| < m`` and the first ``k - count(|w| < m)`` with ``|w| = m``.
2. **Regrow** every pruned synapse in place, in ascending storage position, with weight 0, in
   the same row *and the same bank* ``b = col mod L`` (so every lane's row counts stay put and
   no pointer moves), at a post index drawn from the layer's LFSR: draw ``r`` (next LFSR state),
   take its low ``bits(ceil(n_out / L) - 1)`` bits as a group ``g``, candidate ``c = g·L + b``;
   accept it when ``c < n_out`` and ``c`` is not a column of the row after pruning nor one regrown
   earlier in this update (a just-pruned column may come back); otherwise draw again. A row's
   bank always has a free column for each of its pruned synapses, so this ends. With ``L = 1``
   the new column is any free column of the row.

Training with the ``hardware-random`` growth rule must use the ``lanes`` of the target core to
get the connectivity the chip produces.

LFSR: 32-bit Galois, polynomial ``x^32 + x^22 + x^2 + x + 1`` (feedback mask ``0x80200003``),
shifting right: ``lsb = s & 1; s >>= 1; if lsb: s ^= 0x80200003``; each draw is the state after
one step. Every layer's LFSR starts from the same ``seed`` (non-zero, default ``0xACE1``) at each
update unless a state is carried over (:func:`rewire_layer` returns it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from esl_hw.artifact import Layer, Model
from esl_hw.errors import EslError

LFSR_TAPS = 0x80200003
LFSR_MASK = 0xFFFFFFFF
DEFAULT_SEED = 0xACE1


def lfsr_step(state: int) -> int:
    """One step of the 32-bit Galois LFSR (polynomial ``x^32 + x^22 + x^2 + x + 1``)."""
    if not 0 < state <= LFSR_MASK:
        raise ValueError(f"LFSR state must be a non-zero 32-bit value, got {state!r}")
    lsb = state & 1
    state >>= 1
    return state ^ LFSR_TAPS if lsb else state


def storage_order(col: np.ndarray, lanes: int = 1) -> np.ndarray:
    """CSR positions in the core's storage order: by bank ``col mod lanes``, then CSR position."""
    return np.argsort(np.asarray(col, dtype=np.int64) % lanes, kind="stable")


def prune_order(weight: np.ndarray, k: int, col: np.ndarray | None = None, lanes: int = 1) -> np.ndarray:
    """CSR positions of the ``k`` synapses to prune, in storage order: smallest ``|w|``, ties to the
    lower storage position (``col`` is needed when ``lanes > 1``)."""
    weight = np.asarray(weight, dtype=np.int64)
    order = np.arange(len(weight)) if lanes == 1 or col is None else storage_order(col, lanes)
    magnitude = np.abs(weight[order])
    chosen = np.sort(np.argsort(magnitude, kind="stable")[:k])
    return order[chosen]


def check_k(layer: Layer, k: int, where: str = "layer") -> int:
    """Return ``k`` if ``0 <= k <= layer.nnz``; otherwise raise :class:`EslError` saying by how much."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise EslError(f"{where}: k must be a non-negative integer, got {k!r}")
    if k > layer.nnz:
        raise EslError(f"{where}: k = {k} exceeds the layer's {layer.nnz} synapses by {k - layer.nnz}")
    return int(k)


def rewire_layer(
    layer: Layer, k: int, seed: int = DEFAULT_SEED, lanes: int = 1
) -> tuple[Layer, int, list[tuple[int, int, int]]]:
    """Prune ``k`` synapses of ``layer`` and regrow them (module docstring) for a core of ``lanes``.

    Returns ``(new layer, final LFSR state, changes)`` with ``changes`` the ``(CSR position, old
    col, new col)`` of every rewired synapse, in storage order.
    """
    k = check_k(layer, k)
    if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1 or lanes & (lanes - 1):
        raise EslError(f"lanes must be a power of two, got {lanes!r}")
    state = seed
    lfsr_step(state)  # validates the seed
    col = layer.col.astype(np.int64).copy()
    weight = layer.weight.astype(np.int64).copy()
    pruned = prune_order(weight, k, col, lanes)
    rows = np.repeat(np.arange(layer.n_in), np.diff(layer.row_ptr))
    groups = -(-layer.n_out // lanes)
    candidate_mask = (1 << max(1, int(groups - 1).bit_length())) - 1
    taken: dict[int, set[int]] = {}
    pruned_set = set(pruned.tolist())
    for row in np.unique(rows[pruned]):
        start, end = int(layer.row_ptr[row]), int(layer.row_ptr[row + 1])
        taken[int(row)] = {int(col[p]) for p in range(start, end) if p not in pruned_set}
    changes = []
    for position in pruned.tolist():
        row = int(rows[position])
        bank = int(col[position]) % lanes
        while True:
            state = lfsr_step(state)
            candidate = (state & candidate_mask) * lanes + bank
            if candidate < layer.n_out and candidate not in taken[row]:
                break
        taken[row].add(candidate)
        changes.append((position, int(col[position]), candidate))
        col[position] = candidate
        weight[position] = 0
    return dataclasses.replace(layer, col=col, weight=weight), state, changes


def rewire_model(model: Model, ks: Sequence[int], seed: int = DEFAULT_SEED, lanes: int = 1) -> Model:
    """Rewire every layer ``l`` of ``model`` with ``ks[l]`` synapses (each layer's LFSR from ``seed``)
    for a core of ``lanes`` lanes.

    Raises :class:`EslError` (naming the layer and the excess) when a ``k`` exceeds the layer's
    synapse count, before changing anything.
    """
    if len(ks) != len(model.layers):
        raise EslError(f"need one k per layer ({len(model.layers)}), got {len(ks)}")
    for index, (layer, k) in enumerate(zip(model.layers, ks, strict=True)):
        check_k(layer, k, f"layer {index}")
    layers = tuple(rewire_layer(layer, k, seed, lanes)[0] for layer, k in zip(model.layers, ks, strict=True))
    return dataclasses.replace(model, layers=layers)
