"""Hardware plan of a model: widths, memory images, memory sizes and limits, before any gateware.

:func:`plan_model` turns a model and its :class:`~esl_hw.rtl_gen.hardware.HardwareConfig` into one
:class:`CorePlan`, computed once and passed to everything that builds or sizes the core (the
gateware, the testbench harness, the host link, the fit estimate, co-simulation, synthesis): the
layer plans (:class:`LayerPlan`), whether the rewiring unit is built, and the list of every memory
(:mod:`esl_hw.rtl_gen.memories`) from which :func:`memory_bits`, the host memory map, the block
estimate and synthesis's memory check are read. The limits are those of :mod:`esl_hw.limits`
(:data:`LIMITS`).

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
- hidden layers (``lif``, ``cubalif``): potentials (``v_bits``) and currents (the synaptic sum's
  width, ``Layer.synaptic_range()``), ``groups = ceil(n_out/L)`` words per bank; a ``cubalif`` layer
  also its synaptic current ``c`` (``v_bits``); a layer with a bias a read-only bias bank
  (:meth:`LayerPlan.bias_init`, ``bias_bits`` wide);
- the output layer: accumulators (``T`` times the synaptic sum's bounds and ``Model.acc_bits()``,
  whichever is wider), ``groups`` words per bank, and with a bias one table of ``T·bias[i]``
  added at readout;
- an event FIFO (``lane_fifo_depth`` words of ``{index, end-of-step}``) that lets the lanes drift
  apart within a time step;
- in a hidden layer where it pays (:func:`~esl_hw.rtl_gen.hardware.row_queue_depth`: more than
  one lane and about 0.49 to 1.74 synapses per row and lane), a row queue
  (:data:`~esl_hw.rtl_gen.hardware.ROW_QUEUE_DEPTH` words of ``{start, end, end-of-step}``,
  ``2·ptr_bits + 1`` bits) between its pointer and synapse stages.

Between layers: a spike-mask FIFO in every LIF layer (``spike_fifo_depth`` words of ``{group,
mask of L spikes, end-of-step}``) and a spike event FIFO (``fifo_depth`` words of ``{index,
end-of-step}``). With ``L = 1`` the lane CSR is the artifact's CSR.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from esl_hw import limits
from esl_hw.artifact import Layer, Model, signed_bits_for
from esl_hw.errors import EslError
from esl_hw.rtl_gen.hardware import (
    DEFAULT_FIFO_DEPTH,
    DEFAULT_LANE_FIFO_DEPTH,
    DEFAULT_SPIKE_FIFO_DEPTH,
    SYNAPSE_MEMORIES,
    HardwareConfig,
    check_fifo_depth,
    row_queue_depth,
)
from esl_hw.rtl_gen.memories import (
    MASK_SKID_WORDS,
    BankGeometry,
    BusShape,
    CoreMemory,
    LayerShape,
    Region,
    bus_shape,
    core_memories,
    host_regions,
    rewire_histogram_shape,
    rewire_limit_problem,
    unsigned_bits,
    whole_step_mask_depth,
)
from esl_hw.rtl_gen.memories import memory_bits as memory_list_bits

__all__ = [
    "COUNTER_BITS",
    "DEFAULT_FIFO_DEPTH",
    "DEFAULT_LANE_FIFO_DEPTH",
    "DEFAULT_SPIKE_FIFO_DEPTH",
    "LIMITS",
    "MASK_SKID_WORDS",
    "MAX_LANES",
    "MAX_REWIRE_W_BITS",
    "SYNAPSE_MEMORIES",
    "BusShape",
    "CoreMemory",
    "CorePlan",
    "HardwareConfig",
    "LayerPlan",
    "LayerShape",
    "Region",
    "as_plan",
    "bus_shape",
    "check_fifo_depth",
    "check_lanes",
    "dense_memory_bits",
    "memory_bits",
    "plan_layer",
    "plan_model",
    "pointer_words",
    "rewire_histogram_shape",
    "rewire_limit_problem",
    "split_lanes",
    "unsigned_bits",
]

#: Limits a generated core accepts (from :mod:`esl_hw.limits`); a model beyond them is refused with
#: :class:`EslError`. The artifact's own limits already keep neurons, inputs, timesteps and the
#: potential width within them.
LIMITS = {
    "neurons per layer": limits.MAX_NEURONS_PER_LAYER,
    "inputs per layer": limits.MAX_INPUTS_PER_LAYER,
    "synapses per layer": limits.CORE_MAX_SYNAPSES,
    "current bits": limits.CORE_MAX_CURRENT_BITS,
    "potential bits": limits.V_BITS[1],
    "accumulator bits": limits.CORE_MAX_ACC_BITS,
    "timesteps": limits.TIMESTEPS[1],
}

#: Width of the performance counters.
COUNTER_BITS = 32

#: Lane counts a core accepts (powers of two up to this, :func:`esl_hw.limits.check_lanes`).
MAX_LANES = limits.MAX_LANES

#: Widest weight the rewiring unit's histogram supports (``2^(w_bits-1) + 1`` counters).
MAX_REWIRE_W_BITS = limits.REWIRE_MAX_W_BITS


def pointer_words(row_ptr: list[int], ptr_bits: int) -> list[int]:
    """Pointer memory image: word ``j`` is ``row_ptr[j]`` with bit ``ptr_bits`` set when row
    ``j`` is empty (``row_ptr[j + 1] == row_ptr[j]``), so the event stage needs no comparator."""
    flags = [int(row_ptr[j + 1] == row_ptr[j]) for j in range(len(row_ptr) - 1)] + [0]
    return [int(ptr) | flag << ptr_bits for ptr, flag in zip(row_ptr, flags, strict=True)]


def _check_limit(what: str, where: str, value: int) -> None:
    limit = LIMITS[what]
    if value > limit:
        raise EslError(f"{where}: {what} = {value} exceeds the hardware limit {limit} by {value - limit}")


@dataclass(frozen=True)
class LayerPlan(BankGeometry):
    """Widths and memory contents of one layer core.

    ``acc_bits`` is the width of the per-neuron integration memory: the synaptic sum's width for a
    hidden layer (the bias is added in the sweep, not stored with the sum), the output
    accumulator width for the output layer (it holds ``Σ_t S_t``; ``T·bias`` is added at
    readout). ``bias_bits`` is the width of the layer's bias words (``T·bias`` for the output
    layer), 0 without a bias. ``synapse_memory`` says where the synapse words live
    (:data:`SYNAPSE_MEMORIES`).
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
    bias_bits: int = 0

    @property
    def kind(self) -> str:
        return self.layer.kind

    @property
    def is_lif(self) -> bool:
        """A hidden layer (``lif`` or ``cubalif``): a layer core with a sweep that fires spikes."""
        return self.layer.is_hidden

    @property
    def is_cuba(self) -> bool:
        """A ``cubalif`` layer: a synaptic-current state ``c`` beside the potential."""
        return self.layer.kind == "cubalif"

    @property
    def has_bias(self) -> bool:
        return self.bias_bits > 0

    @property
    def subtract_reset(self) -> bool:
        """A spiking neuron's potential becomes ``u − θ`` (``reset: subtract``), not 0."""
        return self.layer.reset == "subtract"

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

    def bias_init(self, lane: int = 0) -> list[int]:
        """Bias memory image of ``lane`` (signed values, ``bias_bits`` wide; empty without a bias):
        a hidden layer's ``bias[g·L + lane]`` per group ``g`` (0 past ``n_out``); the output
        layer's ``T·bias[i]`` per output ``i`` (one table for all lanes)."""
        if not self.has_bias:
            return []
        bias = np.asarray(self.layer.bias, dtype=np.int64)
        if not self.is_lif:
            return [int(value) for value in bias * self.timesteps]
        words = np.zeros(self.groups, dtype=np.int64)
        mine = bias[lane :: self.lanes]
        words[: len(mine)] = mine
        return [int(value) for value in words]

    def mask_fifo_depth(self, spike_fifo_depth: int | None = DEFAULT_SPIKE_FIFO_DEPTH) -> int:
        """Depth of this layer's spike-mask FIFO: ``spike_fifo_depth``, or
        :func:`~esl_hw.rtl_gen.memories.whole_step_mask_depth` for ``None``."""
        if spike_fifo_depth is None:
            return whole_step_mask_depth(self.groups)
        return check_fifo_depth(spike_fifo_depth)

    @property
    def nnz(self) -> int:
        """Synapses of the layer (all lanes)."""
        return self.layer.nnz

    @property
    def shape(self) -> LayerShape:
        """What sizes this layer core's memories (:class:`~esl_hw.rtl_gen.memories.LayerShape`)."""
        return LayerShape(
            index=self.index,
            kind=self.kind,
            n_in=self.n_in,
            n_out=self.n_out,
            lane_nnz=tuple(self.lane_nnz(lane) for lane in range(self.lanes)),
            w_bits=self.w_bits,
            v_bits=self.layer.v_bits or 0,
            acc_bits=self.acc_bits,
            bias_bits=self.bias_bits,
        )

    @property
    def row_queue_depth(self) -> int:
        """Entries of each lane's row queue (:class:`~esl_hw.rtl_gen.integrate.CsrIntegrator`):
        :func:`~esl_hw.rtl_gen.hardware.row_queue_depth` in a hidden layer, none in the output
        layer (:data:`~esl_hw.rtl_gen.hardware.ROW_QUEUE_DEPTH`)."""
        return row_queue_depth(self.lanes, self.nnz, self.n_in) if self.is_lif else 0

    def syn_block_words(self) -> int:
        """Words per synapse-memory block of the gateware (:meth:`LayerShape.syn_block_words`)."""
        return self.shape.syn_block_words(self.synapse_memory)


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
    """Return ``lanes`` if it is a power of two in ``1 .. MAX_LANES``, else raise :class:`EslError`
    (:func:`esl_hw.limits.check_lanes`, the one rule for lanes)."""
    return limits.check_lanes(lanes)


def plan_layer(model: Model, index: int, lanes: int = 1, synapse_memory: str = "block") -> LayerPlan:
    """Plan layer ``index`` of ``model`` on ``lanes`` lanes; raise :class:`EslError` beyond :data:`LIMITS`."""
    check_lanes(lanes)
    layer = model.layers[index]
    where = f"layer {index}"
    _check_limit("neurons per layer", where, layer.n_out)
    _check_limit("inputs per layer", where, layer.n_in)
    _check_limit("synapses per layer", where, layer.nnz)
    low, high = layer.synaptic_range()
    bias_low, bias_high = layer.bias_range()
    if layer.is_hidden:
        _check_limit("current bits", where, layer.current_bits())
        _check_limit("potential bits", where, layer.v_bits)
        acc_bits = signed_bits_for(low, high)  # the synaptic sum; the sweep adds the bias
    else:
        steps = model.timesteps
        acc_bits = max(model.acc_bits(), signed_bits_for(low * steps, high * steps))
        _check_limit("accumulator bits", where, acc_bits)
        bias_low, bias_high = bias_low * steps, bias_high * steps  # the table holds T·bias
    bias_bits = 0 if layer.bias is None else signed_bits_for(bias_low, bias_high)
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
        synapse_memory=synapse_memory,
        bias_bits=bias_bits,
    )


@dataclass(frozen=True, eq=False)
class CorePlan(Sequence[LayerPlan]):
    """The plan of one generated core: the model, its :class:`HardwareConfig`, every layer's
    :class:`LayerPlan` and the list of every memory (:mod:`esl_hw.rtl_gen.memories`).

    Computed once by :func:`plan_model` and passed to everything that builds or sizes the core:
    :class:`~esl_hw.rtl_gen.SNNCore`, the testbench harness, the host link, the fit estimate,
    co-simulation and synthesis. It is also the sequence of its layer plans (``plan[0]``,
    ``for layer in plan``, ``len(plan)``).

    Attributes
    ----------
    model : Model
        The artifact.
    config : HardwareConfig
        The options of the core.
    layers : tuple of LayerPlan
        One per layer, in order.
    rewiring : bool
        The core has the rewiring unit (``config.rewiring`` resolved against the model).
    memories : tuple of CoreMemory
        Every memory of the core (:func:`esl_hw.rtl_gen.memories.core_memories`).
    """

    model: Model
    config: HardwareConfig
    layers: tuple[LayerPlan, ...]
    rewiring: bool
    memories: tuple[CoreMemory, ...] = field(repr=False)

    def __repr__(self) -> str:
        sizes = "-".join(str(size) for size in [self.model.n_inputs, *(layer.n_out for layer in self.layers)])
        return f"CorePlan({sizes}, {self.config}, rewiring={self.rewiring}, {len(self.memories)} memories)"

    def __getitem__(self, index):
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[LayerPlan]:
        return iter(self.layers)

    @property
    def lanes(self) -> int:
        return self.config.lanes

    @property
    def shapes(self) -> list[LayerShape]:
        return [layer.shape for layer in self.layers]

    @property
    def regions(self) -> list[Region]:
        """The host memory map: every memory the host port reaches, by id."""
        return host_regions(self.memories)

    @property
    def bus_shape(self) -> BusShape:
        """Widths of the host memory bus."""
        return bus_shape(self.regions)

    def memory_bits(self) -> dict[str, int]:
        """Bits of on-chip memory per role and ``total`` (see :func:`memory_bits`)."""
        return memory_list_bits(self.memories)

    def memory_images(self) -> list[list[int]]:
        """The words of every host-mapped memory (by id) of the idle core: the pointer words with
        their empty-row flags, the synapse words in storage order, potentials, synaptic currents
        and accumulators 0."""
        images = []
        for region in self.regions:
            layer = self.layers[region.layer]
            if region.kind == "ptr":
                images.append(layer.ptr_words(region.lane))
            elif region.kind == "syn":
                images.append(layer.syn_init(region.lane))
            else:
                images.append([0] * region.depth)
        return images


def plan_model(
    model: Model, config: HardwareConfig | int | None = None, synapse_memory: str | None = None
) -> CorePlan:
    """Plan the core of ``model`` under ``config`` (see :func:`plan_layer` for the limits).

    ``config`` is a :class:`HardwareConfig`; ``None`` means
    :meth:`HardwareConfig.for_model` (the lanes the model was trained for, or 1); a number is a
    lane count (the older form ``plan_model(model, lanes, synapse_memory)``).

    Raises
    ------
    EslError
        A model beyond :data:`LIMITS`, or ``config.rewiring`` true for a model beyond the
        rewiring unit's limits.
    """
    if not isinstance(config, HardwareConfig):  # None, or a lane count (the configuration checks it)
        config = HardwareConfig.for_model(model, config, synapse_memory=synapse_memory)
    elif synapse_memory is not None and synapse_memory != config.synapse_memory:
        raise EslError(
            f"synapse_memory={synapse_memory!r} differs from the configuration's {config.synapse_memory!r}"
        )
    _check_limit("timesteps", "model", model.timesteps)
    layers = tuple(
        plan_layer(model, index, config.lanes, config.synapse_memory) for index in range(len(model.layers))
    )
    problem = rewire_limit_problem(layers)
    if config.rewiring and problem is not None:
        raise EslError(f"cannot add the rewiring unit: {problem}")
    rewiring = problem is None if config.rewiring is None else config.rewiring
    memories = core_memories([layer.shape for layer in layers], config, rewiring)
    return CorePlan(model, config, layers, rewiring, memories)


def as_plan(model: Model | CorePlan, lanes: int | None = None, **options) -> CorePlan:
    """``model`` itself when it is a :class:`CorePlan`, else its plan under
    :meth:`HardwareConfig.for_model` ``(model, lanes, **options)``.

    The options (``fifo_depth``, ``lane_fifo_depth``, ``spike_fifo_depth``, ``synapse_memory``,
    ``rewiring``, ``streaming``) and ``lanes`` are the older keyword arguments of the functions
    that now take a plan; ``None`` leaves one unset. Given with a plan, each must equal the plan's own.
    """
    if isinstance(model, CorePlan):
        given = {"lanes": lanes, **options}
        clash = {
            name: value
            for name, value in given.items()
            if value is not None and value != getattr(model.config, name)
        }
        if clash:
            shown = ", ".join(f"{name}={value!r}" for name, value in clash.items())
            raise EslError(f"{shown} differs from the plan's {model.config}")
        return model
    if not isinstance(model, Model):
        raise TypeError(f"model must be an esl_hw.artifact.Model or a CorePlan, got {type(model).__name__}")
    return plan_model(model, HardwareConfig.for_model(model, lanes, **options))


def memory_bits(
    model: Model | CorePlan,
    fifo_depth: int | None = None,
    lanes: int | None = None,
    lane_fifo_depth: int | None = None,
    spike_fifo_depth: int | None = None,
) -> dict[str, int]:
    """Bits of on-chip memory per kind in the core :class:`~esl_hw.rtl_gen.SNNCore` generates.

    ``model`` is the artifact (with the older keyword options, unset ones at their defaults, the
    lanes the model's own) or a :class:`CorePlan`. Keys: ``row_pointers``, ``synapses``,
    ``potentials``, ``currents``, ``accumulators``, ``fifos``, ``rewiring`` (the rewiring unit's
    histogram, 0 without the unit) and ``total``: depth times width of every memory of the plan's
    memory list (a lane without synapses still has a one-word synapse memory; banks are
    ``ceil(n_out/L)`` deep; FIFOs count their full depth).
    """
    options = {
        "fifo_depth": fifo_depth,
        "lane_fifo_depth": lane_fifo_depth,
        "spike_fifo_depth": spike_fifo_depth,
    }
    return as_plan(model, lanes, **options).memory_bits()


def dense_memory_bits(model: Model | CorePlan) -> dict[str, int]:
    """Memory of a dense design of the same network, for comparison with :func:`memory_bits`.

    Every weight of the ``n_in x n_out`` matrices (``w_bits`` each, no pointers, no indices), plus
    the same potentials, currents and accumulators (one word per neuron).
    """
    plans = plan_model(model.model if isinstance(model, CorePlan) else model, 1)
    totals = {
        "weights": sum(plan.n_in * plan.n_out * plan.w_bits for plan in plans),
        "potentials": sum(plan.n_out * plan.layer.v_bits for plan in plans if plan.is_lif),
        "currents": sum(plan.n_out * plan.acc_bits for plan in plans if plan.is_lif),
        "synaptic_currents": sum(plan.n_out * plan.layer.v_bits for plan in plans if plan.is_cuba),
        "biases": sum(plan.n_out * plan.bias_bits for plan in plans),
        "accumulators": plans[-1].n_out * plans[-1].acc_bits,
    }
    totals["total"] = sum(totals.values())
    return totals
