"""Hardware plan of a model: widths, memory images, memory sizes and limits, before any gateware.

Everything the generated core stores is derived here from the artifact (``esl_hw.artifact``), so
the gateware, :func:`memory_bits` and the tests agree on one set of numbers:

Lanes and banks. A core with ``L`` lanes (a power of two) splits every layer by post-synaptic
neuron: neuron ``i`` lives in bank ``b = i mod L`` at local address ``g = i div L`` (the *group*).
Lane ``b`` owns bank ``b`` and its own CSR: the synapses of every row whose post index falls in
bank ``b``, in the artifact's order. The lanes never share a memory, so there is no bank conflict
and no padding: each lane streams only real synapses. Per lane:

- row pointers ``row_ptr_b[0 .. n_in]``, ``ptr_bits = bits(max_b nnz_b)`` wide, plus one bit
  per word that flags an empty row (:func:`pointer_words`, :meth:`LayerPlan.ptr_words`);
- synapse words ``{g, weight}``, the local index ``g`` in the low ``local_bits`` bits, ``weight``
  (two's complement, ``w_bits``) above it;
- LIF layers: potentials (``v_bits``) and currents (``current_bits()``), ``groups = ceil(n_out/L)``
  words per bank;
- the output layer: accumulators (``Model.acc_bits()``), ``groups`` words per bank;
- an event FIFO (``lane_fifo_depth`` words of ``{index, end-of-step}``) that lets the lanes drift
  apart within a time step.

Between layers: a spike-mask FIFO in every LIF layer (``spike_fifo_depth`` words of ``{group,
mask of L spikes, end-of-step}``) and a spike event FIFO (``fifo_depth`` words of ``{index,
end-of-step}``). With ``L = 1`` the lane CSR is the artifact's CSR.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from esl_hw.artifact import Layer, Model
from esl_hw.errors import EslError

#: Limits a generated core accepts; a model beyond them is refused with :class:`EslError`.
LIMITS = {
    "neurons per layer": 1 << 20,
    "inputs per layer": 1 << 20,
    "synapses per layer": 1 << 24,
    "current bits": 64,
    "potential bits": 48,
    "accumulator bits": 64,
    "timesteps": 4096,
}

#: Width of the performance counters.
COUNTER_BITS = 32

#: Default depth of the spike FIFOs between layers.
DEFAULT_FIFO_DEPTH = 16

#: Default depth of each lane's event FIFO (how far the lanes may drift apart, in events).
DEFAULT_LANE_FIFO_DEPTH = 32

#: Default depth of the spike-mask FIFO behind each LIF layer's sweep: ``None`` sizes it to one whole
#: step (every group plus the end-of-step word, :meth:`LayerPlan.mask_fifo_depth`), so the sweep never
#: waits for the next layer within a step and the layer goes on integrating the next step while the
#: next layer drains its spikes. (The sweep issues a group only while the FIFO has room for every
#: group in its six-stage pipeline.)
DEFAULT_SPIKE_FIFO_DEPTH: int | None = None

#: Words of flip-flops between each spike-mask FIFO and its serializer (the FIFO is popped when they
#: have room, so the serializer's logic never reaches the FIFO's block RAM in one cycle).
MASK_SKID_WORDS = 2

#: Lane counts a core accepts (powers of two).
MAX_LANES = 64

#: Widest weight the rewiring unit's histogram supports (``2^(w_bits-1) + 1`` counters).
MAX_REWIRE_W_BITS = 8


def pointer_words(row_ptr: list[int], ptr_bits: int) -> list[int]:
    """Pointer memory image: word ``j`` is ``row_ptr[j]`` with bit ``ptr_bits`` set when row
    ``j`` is empty (``row_ptr[j + 1] == row_ptr[j]``), so the event stage needs no comparator."""
    flags = [int(row_ptr[j + 1] == row_ptr[j]) for j in range(len(row_ptr) - 1)] + [0]
    return [int(ptr) | flag << ptr_bits for ptr, flag in zip(row_ptr, flags, strict=True)]


def unsigned_bits(value: int) -> int:
    """Bits of an unsigned number holding ``0 .. value`` (at least 1)."""
    return max(1, int(value).bit_length())


def _check_limit(what: str, where: str, value: int) -> None:
    limit = LIMITS[what]
    if value > limit:
        raise EslError(f"{where}: {what} = {value} exceeds the hardware limit {limit} by {value - limit}")


@dataclass(frozen=True)
class LayerPlan:
    """Widths and memory contents of one layer core.

    ``acc_bits`` is the width of the per-neuron integration memory: the current width for a LIF
    layer, the output accumulator width for the output layer. ``synapse_memory`` says where the
    synapse words live (:data:`SYNAPSE_MEMORIES`).
    """

    index: int
    layer: Layer
    in_index_bits: int
    out_index_bits: int
    ptr_bits: int
    acc_bits: int
    timesteps: int
    lanes: int = 1
    lane_row_ptr: tuple[np.ndarray, ...] = ()
    lane_col: tuple[np.ndarray, ...] = ()
    lane_weight: tuple[np.ndarray, ...] = ()
    synapse_memory: str = "block"

    @property
    def kind(self) -> str:
        return self.layer.kind

    @property
    def is_lif(self) -> bool:
        return self.layer.kind == "lif"

    @property
    def n_in(self) -> int:
        return self.layer.n_in

    @property
    def n_out(self) -> int:
        return self.layer.n_out

    @property
    def w_bits(self) -> int:
        return self.layer.w_bits

    @property
    def lane_bits(self) -> int:
        """``log2(lanes)``: the low bits of a neuron index that select its bank."""
        return self.lanes.bit_length() - 1

    @property
    def groups(self) -> int:
        """Words per bank: ``ceil(n_out / lanes)``; the sweep visits one group per cycle."""
        return -(-self.n_out // self.lanes)

    @property
    def local_bits(self) -> int:
        """Width of a bank-local neuron index (the group)."""
        return unsigned_bits(self.groups - 1)

    @property
    def syn_bits(self) -> int:
        """Width of one synapse word ``{group, weight}``."""
        return self.local_bits + self.w_bits

    def lane_nnz(self, lane: int) -> int:
        """Synapses held by ``lane``."""
        return len(self.lane_col[lane])

    def syn_depth(self, lane: int = 0) -> int:
        """Depth of a lane's synapse memory (one dummy word when the lane has no synapse)."""
        return max(1, self.lane_nnz(lane))

    def ptr_init(self, lane: int = 0) -> list[int]:
        """Row pointer memory image of ``lane``."""
        return [int(value) for value in self.lane_row_ptr[lane]]

    def ptr_words(self, lane: int = 0) -> list[int]:
        """Pointer memory words of ``lane`` as stored: :meth:`ptr_init` with the empty-row flags
        (:func:`pointer_words`), ``ptr_bits + 1`` wide."""
        return pointer_words(self.ptr_init(lane), self.ptr_bits)

    def syn_init(self, lane: int = 0) -> list[int]:
        """Synapse memory image of ``lane``: ``group | (weight mod 2^w_bits) << local_bits``."""
        if self.lane_nnz(lane) == 0:
            return [0]
        group = self.lane_col[lane] >> self.lane_bits
        weight = self.lane_weight[lane] & ((1 << self.w_bits) - 1)
        return [int(word) for word in group | (weight << self.local_bits)]

    def mask_fifo_depth(self, spike_fifo_depth: int | None = DEFAULT_SPIKE_FIFO_DEPTH) -> int:
        """Depth of this layer's spike-mask FIFO: ``spike_fifo_depth``, or ``groups + 2`` for
        ``None`` (a whole step of mask words and the end-of-step word fit behind the sweep's
        room check ``level + in flight < depth - 1``)."""
        return self.groups + 2 if spike_fifo_depth is None else check_fifo_depth(spike_fifo_depth)

    def memory_bits(
        self,
        lane_fifo_depth: int = DEFAULT_LANE_FIFO_DEPTH,
        spike_fifo_depth: int | None = DEFAULT_SPIKE_FIFO_DEPTH,
    ) -> dict[str, int]:
        """Bits per memory kind held by this layer core (all lanes)."""
        words = self.lanes * self.groups
        bits = {
            "row_pointers": self.lanes * (self.n_in + 1) * (self.ptr_bits + 1),
            "synapses": sum(self.syn_depth(lane) for lane in range(self.lanes)) * self.syn_bits,
            "fifos": self.lanes * lane_fifo_depth * (self.in_index_bits + 1),
        }
        if self.is_lif:
            bits["potentials"] = words * self.layer.v_bits
            bits["currents"] = 2 * words * self.acc_bits  # even and odd steps
            masks = self.mask_fifo_depth(spike_fifo_depth) + MASK_SKID_WORDS
            bits["fifos"] += masks * (self.local_bits + self.lanes + 1)
        else:
            bits["accumulators"] = words * self.acc_bits
        return bits


def split_lanes(layer: Layer, lanes: int) -> tuple[tuple[np.ndarray, ...], ...]:
    """Per-lane CSR of ``layer``: ``(row_ptr_b, col_b, weight_b)`` for ``b = 0 .. lanes-1``.

    Lane ``b`` keeps the synapses with ``col mod lanes == b``, row by row, in the artifact's
    order; ``col_b`` keeps the global post index.
    """
    rows = np.repeat(np.arange(layer.n_in), np.diff(layer.row_ptr))
    bank = layer.col % lanes
    row_ptr, col, weight = [], [], []
    for lane in range(lanes):
        keep = bank == lane
        pointers = np.zeros(layer.n_in + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows[keep], minlength=layer.n_in), out=pointers[1:])
        row_ptr.append(pointers)
        col.append(layer.col[keep].astype(np.int64))
        weight.append(layer.weight[keep].astype(np.int64))
    return tuple(row_ptr), tuple(col), tuple(weight)


def check_lanes(lanes: int) -> int:
    """Return ``lanes`` if it is a power of two in ``1 .. MAX_LANES``, else raise :class:`EslError`."""
    if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1 or lanes & (lanes - 1):
        raise EslError(f"lanes must be a power of two (1, 2, 4, 8, 16, ...), got {lanes!r}")
    if lanes > MAX_LANES:
        raise EslError(f"lanes = {lanes} exceeds the hardware limit {MAX_LANES} by {lanes - MAX_LANES}")
    return lanes


def plan_layer(model: Model, index: int, lanes: int = 1) -> LayerPlan:
    """Plan layer ``index`` of ``model`` on ``lanes`` lanes; raise :class:`EslError` beyond :data:`LIMITS`."""
    check_lanes(lanes)
    layer = model.layers[index]
    where = f"layer {index}"
    _check_limit("neurons per layer", where, layer.n_out)
    _check_limit("inputs per layer", where, layer.n_in)
    _check_limit("synapses per layer", where, layer.nnz)
    if layer.kind == "lif":
        acc_bits = layer.current_bits()
        _check_limit("current bits", where, acc_bits)
        _check_limit("potential bits", where, layer.v_bits)
    else:
        acc_bits = model.acc_bits()
        _check_limit("accumulator bits", where, acc_bits)
    row_ptr, col, weight = split_lanes(layer, lanes)
    return LayerPlan(
        index=index,
        layer=layer,
        in_index_bits=unsigned_bits(layer.n_in - 1),
        out_index_bits=unsigned_bits(layer.n_out - 1),
        ptr_bits=unsigned_bits(max(len(lane) for lane in col)),
        acc_bits=acc_bits,
        timesteps=model.timesteps,
        lanes=lanes,
        lane_row_ptr=row_ptr,
        lane_col=col,
        lane_weight=weight,
    )


#: Where the synapse memories live: ``block`` (block RAM initialised by the bitstream) or
#: ``spram`` (iCE40 UP5K single-port SPRAM, 16384 x 16 per block, loaded by the host).
SYNAPSE_MEMORIES = ("block", "spram")


def plan_model(model: Model, lanes: int = 1, synapse_memory: str = "block") -> list[LayerPlan]:
    """Plan every layer of ``model`` on ``lanes`` lanes (see :func:`plan_layer`), synapse memories
    in ``synapse_memory`` (:data:`SYNAPSE_MEMORIES`)."""
    _check_limit("timesteps", "model", model.timesteps)
    if synapse_memory not in SYNAPSE_MEMORIES:
        raise EslError(f"synapse_memory must be one of {', '.join(SYNAPSE_MEMORIES)}, got {synapse_memory!r}")
    plans = [plan_layer(model, index, lanes) for index in range(len(model.layers))]
    return [replace(plan, synapse_memory=synapse_memory) for plan in plans]


def rewire_histogram_shape(plans: list[LayerPlan]) -> tuple[int, int] | None:
    """``(depth, width)`` of the rewiring unit's magnitude histogram for a core of ``plans``:
    ``2^(w_bits-1) + 1`` counters of ``bits(max nnz)`` (widest layer); ``None`` when a layer's
    ``w_bits`` exceeds :data:`MAX_REWIRE_W_BITS` (the core has no rewiring unit by default)."""
    w_bits = max(plan.w_bits for plan in plans)
    if w_bits > MAX_REWIRE_W_BITS:
        return None
    return (1 << (w_bits - 1)) + 1, unsigned_bits(max(plan.layer.nnz for plan in plans))


def check_fifo_depth(fifo_depth: int) -> int:
    """Return ``fifo_depth`` if it is a usable spike FIFO depth, else raise :class:`EslError`."""
    if isinstance(fifo_depth, bool) or not isinstance(fifo_depth, int) or fifo_depth < 2:
        raise EslError(f"fifo_depth must be an integer >= 2, got {fifo_depth!r}")
    return fifo_depth


def memory_bits(
    model: Model,
    fifo_depth: int = DEFAULT_FIFO_DEPTH,
    lanes: int = 1,
    lane_fifo_depth: int = DEFAULT_LANE_FIFO_DEPTH,
    spike_fifo_depth: int | None = DEFAULT_SPIKE_FIFO_DEPTH,
) -> dict[str, int]:
    """Bits of on-chip memory per kind in the core :class:`~esl_hw.rtl_gen.SNNCore` generates.

    Keys: ``row_pointers``, ``synapses``, ``potentials``, ``currents``, ``accumulators``,
    ``fifos``, ``rewiring`` (the rewiring unit's histogram, 0 without the unit) and ``total``.
    The figures are depth times width of the memories actually generated by default (a lane
    without synapses still has a one-word synapse memory; banks are ``ceil(n_out/L)`` deep;
    FIFOs count their full depth).
    """
    check_fifo_depth(fifo_depth)
    check_fifo_depth(lane_fifo_depth)
    if spike_fifo_depth is not None:
        check_fifo_depth(spike_fifo_depth)
    kinds = ("row_pointers", "synapses", "potentials", "currents", "accumulators", "fifos")
    totals = dict.fromkeys(kinds, 0)
    plans = plan_model(model, lanes)
    for plan in plans:
        for kind, bits in plan.memory_bits(lane_fifo_depth, spike_fifo_depth).items():
            totals[kind] += bits
    totals["fifos"] += sum(fifo_depth * (plan.out_index_bits + 1) for plan in plans[:-1])
    histogram = rewire_histogram_shape(plans)
    totals["rewiring"] = histogram[0] * histogram[1] if histogram else 0
    totals["total"] = sum(totals.values())
    return totals


def dense_memory_bits(model: Model) -> dict[str, int]:
    """Memory of a dense design of the same network, for comparison with :func:`memory_bits`.

    Every weight of the ``n_in x n_out`` matrices (``w_bits`` each, no pointers, no indices), plus
    the same potentials, currents and accumulators (one word per neuron).
    """
    plans = plan_model(model)
    totals = {
        "weights": sum(plan.n_in * plan.n_out * plan.w_bits for plan in plans),
        "potentials": sum(plan.n_out * plan.layer.v_bits for plan in plans if plan.is_lif),
        "currents": sum(plan.n_out * plan.acc_bits for plan in plans if plan.is_lif),
        "accumulators": plans[-1].n_out * plans[-1].acc_bits,
    }
    totals["total"] = sum(totals.values())
    return totals
