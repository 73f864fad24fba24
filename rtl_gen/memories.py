"""The memory list of a generated core: every memory, once, with what each consumer needs of it.

:func:`core_memories` lists every memory the core generates for a set of layer shapes and a
:class:`~esl_hw.rtl_gen.hardware.HardwareConfig` (:class:`CoreMemory`: gateware name, role, depth,
width, read ports, placement, host id). Everything else about memories is read from that list:

- the gateware names of the memories (:attr:`CoreMemory.parts`; the test suite checks them
  against the elaborated core, depth and width included);
- :func:`memory_bits` (depth x width per role);
- the host memory map (:func:`host_regions`, :class:`Region`, :class:`BusShape`: the memories
  with a host id, in id order);
- the block-memory estimate of :mod:`esl_hw.fpga.fit` (blocks per memory of a device family);
- synthesis's check that every memory placed ``block`` came out as block RAM or SPRAM, and the
  Yosys script's exemption of those memories from the iCE40's small-memories-to-flip-flops rule
  (:mod:`esl_hw.fpga.synth`).

:class:`LayerShape` is what sizes a layer's memories (sizes, widths, synapses per lane): a
:class:`~esl_hw.rtl_gen.plan.LayerPlan` gives its own (:attr:`LayerPlan.shape`), and the fit
advice lists the memories of hypothetical layers (another density, another weight width) the
same way.

Host memory map, per layer in order, lanes ``b = 0 .. L-1`` within each kind: ``ptr``, ``syn``,
then ``pot`` (hidden layers) and ``isyn`` (``cubalif`` layers: the synaptic current ``c``), or
``acc`` (the output layer), ids counted from 0 over the layers. Bias memories are read-only
tables initialised from the artifact, not on the host map (like the threshold and the leak).

This module imports neither numpy nor amaranth.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from esl_hw import limits
from esl_hw.rtl_gen.hardware import ICE40_SPRAM, SYNAPSE_BLOCK_RAM, HardwareConfig, row_queue_depth

#: Words of flip-flops between each spike-mask FIFO and its serializer (the FIFO is popped when they
#: have room, so the serializer's logic never reaches the FIFO's block RAM in one cycle).
MASK_SKID_WORDS = 2

#: Memory roles, the keys of :func:`memory_bits` (``total`` aside).
ROLES = (
    "row_pointers",
    "synapses",
    "potentials",
    "currents",
    "synaptic_currents",
    "biases",
    "accumulators",
    "fifos",
    "rewiring",
)

#: Where a memory must be placed: ``block`` (block RAM or SPRAM: synthesis checks it, and the
#: gateware asks Yosys for it) or ``any`` (the tools choose: LUT RAM, flip-flops or block RAM).
PLACEMENTS = ("block", "any")

#: Memory kinds the host port reaches, in id order within a layer (``pot`` for hidden layers, then
#: ``isyn`` for ``cubalif`` layers; ``acc`` for the output layer).
HOST_KINDS = ("ptr", "syn", "pot", "isyn", "acc")


def unsigned_bits(value: int) -> int:
    """Bits of an unsigned number holding ``0 .. value`` (at least 1)."""
    return max(1, int(value).bit_length())


class BankGeometry:
    """How ``n_out`` neurons spread over ``lanes`` banks, for any class with ``n_out``, ``lanes``
    and ``w_bits`` (the layer plan and the hypothetical layer shapes of the fit advice)."""

    n_out: int
    lanes: int
    w_bits: int

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


@dataclass(frozen=True)
class LayerShape(BankGeometry):
    """The numbers of one layer core that size its memories.

    ``lane_nnz`` holds the synapses of every lane (``L`` entries); ``acc_bits`` is the width of
    the per-neuron integration memory (currents of a hidden layer, accumulators of the output
    layer); ``v_bits`` is 0 for the output layer; ``bias_bits`` the width of the bias words (0:
    no bias).
    """

    index: int
    kind: str
    n_in: int
    n_out: int
    lane_nnz: tuple[int, ...]
    w_bits: int
    v_bits: int
    acc_bits: int
    bias_bits: int = 0

    @property
    def is_lif(self) -> bool:
        """A hidden layer (``lif`` or ``cubalif``)."""
        return self.kind in ("lif", "cubalif")

    @property
    def is_cuba(self) -> bool:
        return self.kind == "cubalif"

    @property
    def lanes(self) -> int:
        return len(self.lane_nnz)

    @property
    def nnz(self) -> int:
        return sum(self.lane_nnz)

    @property
    def row_queue_depth(self) -> int:
        """Entries of each lane's row queue: :func:`~esl_hw.rtl_gen.hardware.row_queue_depth` in
        a hidden layer, none in the output layer (:data:`~esl_hw.rtl_gen.hardware.ROW_QUEUE_DEPTH`)."""
        return row_queue_depth(self.lanes, self.nnz, self.n_in) if self.is_lif else 0

    @property
    def in_index_bits(self) -> int:
        return unsigned_bits(self.n_in - 1)

    @property
    def out_index_bits(self) -> int:
        return unsigned_bits(self.n_out - 1)

    @property
    def ptr_bits(self) -> int:
        """Width of a row pointer: ``bits(max_b nnz_b)``."""
        return unsigned_bits(max(self.lane_nnz))

    def syn_depth(self, lane: int = 0) -> int:
        """Depth of a lane's synapse memory (one dummy word when the lane has no synapse)."""
        return max(1, self.lane_nnz[lane])

    def syn_block_words(self, synapse_memory: str = "block") -> int:
        """Words per synapse-memory block: an SPRAM's, or the deepest shape of
        :data:`~esl_hw.rtl_gen.hardware.SYNAPSE_BLOCK_RAM` for the word width."""
        if synapse_memory == "spram":
            return ICE40_SPRAM.shapes[0][0]
        return SYNAPSE_BLOCK_RAM.deepest_words(self.syn_bits)

    def mask_fifo_depth(self, spike_fifo_depth: int | None = None) -> int:
        """Depth of the spike-mask FIFO: ``spike_fifo_depth``, or :func:`whole_step_mask_depth`
        for ``None``."""
        return whole_step_mask_depth(self.groups) if spike_fifo_depth is None else spike_fifo_depth


#: Stages after the reads of the longest sweep (``cubalif``'s, :mod:`esl_hw.rtl_gen.lif_sweep`): a
#: layer with fewer groups runs the sweeps of consecutive steps with groups of two of them in flight.
MAX_SWEEP_STAGES = 6


def whole_step_mask_depth(groups: int) -> int:
    """The default depth of a layer's spike-mask FIFO: ``max(groups, MAX_SWEEP_STAGES) + 2``, so
    that a whole step of mask words and the end-of-step word fit behind the sweep's room check
    ``level + in flight < depth - 1``, and a layer of few groups never stalls its sweeps on it."""
    return max(groups, MAX_SWEEP_STAGES) + 2


@dataclass(frozen=True)
class CoreMemory:
    """One memory of the generated core.

    Attributes
    ----------
    name : str
        Its path below :class:`~esl_hw.rtl_gen.SNNCore` (``layer0.front1.syn_mem``); a FIFO's
        storage memory is ``<name>.storage``; a synapse memory split into blocks is ``<name>``,
        ``<name>1``, … (:attr:`parts`).
    role : str
        What it holds, a key of :func:`memory_bits` (:data:`ROLES`).
    kind : str
        ``ptr``, ``syn``, ``pot``, ``isyn``, ``cur``, ``bias``, ``acc``, ``lane_fifo``,
        ``row_queue``, ``mask_fifo``, ``mask_skid``, ``spike_fifo`` or ``hist``.
    layer, lane : int or None
        Where it lives (``None``: not per layer, or not per lane).
    depth, width : int
        Words and bits per word (a FIFO counts its whole depth, its output register included).
    read_ports : int
        Read ports of the datapath (a block RAM with fewer serves them with copies).
    placement : str
        ``block`` or ``any`` (:data:`PLACEMENTS`).
    host_loaded : bool
        Its contents are written by the host before the first inference (SPRAM: not initialised
        by the bitstream).
    host_id : int or None
        Its id on the host port (``None``: not mapped).
    split_words : int
        Words per gateware block when it is split into blocks, else 0.
    """

    name: str
    role: str
    kind: str
    layer: int | None
    lane: int | None
    depth: int
    width: int
    read_ports: int = 1
    placement: str = "any"
    host_loaded: bool = False
    host_id: int | None = None
    split_words: int = 0

    @property
    def bits(self) -> int:
        return self.depth * self.width

    @property
    def is_fifo(self) -> bool:
        return self.role == "fifos"

    @property
    def parts(self) -> tuple[tuple[str, int], ...]:
        """``(path, depth)`` of each memory the gateware instantiates for it (a buffered FIFO's
        storage holds ``depth - 1`` words, the last one is its output register)."""
        if self.kind in ("mask_skid", "row_queue"):  # unbuffered: every word in its storage
            return ((f"{self.name}.storage", self.depth),)
        if self.is_fifo:
            return ((f"{self.name}.storage", self.depth - 1),)
        if not self.split_words:
            return ((self.name, self.depth),)
        blocks = -(-self.depth // self.split_words)
        words = self.split_words
        return tuple(
            (self.name + (str(block) if block else ""), min(words, self.depth - block * words))
            for block in range(blocks)
        )


def layer_memories(shape: LayerShape, config: HardwareConfig) -> list[CoreMemory]:
    """The memories of one layer core (host-mapped ones in id order: pointers, synapses, then
    potentials and synaptic currents, or accumulators, lanes ``0 .. L-1`` within each)."""
    index, lanes, groups = shape.index, shape.lanes, shape.groups
    prefix = f"layer{index}"
    split = shape.syn_block_words(config.synapse_memory)

    def memory(name: str, role: str, kind: str, lane: int | None, depth: int, width: int, **more):
        return CoreMemory(f"{prefix}.{name}", role, kind, index, lane, depth, width, **more)

    memories = []
    for lane in range(lanes):
        memories.append(
            memory(
                f"front{lane}.ptr_mem",
                "row_pointers",
                "ptr",
                lane,
                shape.n_in + 1,
                shape.ptr_bits + 1,
                read_ports=2,
                placement="block",
                host_id=-1,
            )
        )
    for lane in range(lanes):
        depth = shape.syn_depth(lane)
        memories.append(
            memory(
                f"front{lane}.syn_mem",
                "synapses",
                "syn",
                lane,
                depth,
                shape.syn_bits,
                placement="block",
                host_loaded=config.synapse_memory == "spram",
                host_id=-1,
                split_words=split if depth > split else 0,
            )
        )
    if shape.is_lif:
        # The neuron state: potentials, and the synaptic currents c of a cubalif layer.
        states = [("pot", "potentials")] + ([("isyn", "synaptic_currents")] if shape.is_cuba else [])
        for kind, role in states:
            for lane in range(lanes):
                state = memory(f"{kind}_mem{lane}", role, kind, lane, groups, shape.v_bits, placement="block")
                memories.append(replace(state, host_id=-1))
        for lane in range(lanes):
            for parity in ("even", "odd"):  # the currents of even and odd steps
                memories.append(
                    memory(
                        f"cur_mem{lane}_{parity}",
                        "currents",
                        "cur",
                        lane,
                        groups,
                        shape.acc_bits,
                        placement="block",
                    )
                )
        if shape.bias_bits:
            for lane in range(lanes):  # read-only, not on the host map
                bias = memory(f"bias_mem{lane}", "biases", "bias", lane, groups, shape.bias_bits)
                memories.append(replace(bias, placement="block"))
        width = shape.local_bits + lanes + 1  # {group, mask of L spikes, end of step}
        depth = shape.mask_fifo_depth(config.spike_fifo_depth)
        memories.append(memory("mask_fifo", "fifos", "mask_fifo", None, depth, width))
        memories.append(memory("mask_skid", "fifos", "mask_skid", None, MASK_SKID_WORDS, width))
    else:
        for lane in range(lanes):
            width = shape.acc_bits
            memories.append(memory(f"acc_mem{lane}", "accumulators", "acc", lane, groups, width, host_id=-1))
        if shape.bias_bits:  # T·bias per output, added at readout
            memories.append(memory("bias_mem", "biases", "bias", None, shape.n_out, shape.bias_bits))
    for lane in range(lanes):
        width = shape.in_index_bits + 1  # {index, end of step}
        memories.append(memory(f"queue{lane}", "fifos", "lane_fifo", lane, config.lane_fifo_depth, width))
    queue_depth, queue_width = shape.row_queue_depth, 2 * shape.ptr_bits + 1  # {start, end, eos}
    if queue_depth:
        for lane in range(lanes):
            queue = memory(f"front{lane}.row_queue", "fifos", "row_queue", lane, queue_depth, queue_width)
            memories.append(queue)
    return memories


def rewire_histogram_shape(shapes) -> tuple[int, int] | None:
    """``(depth, width)`` of the rewiring unit's magnitude histogram for a core of ``shapes``
    (layer shapes or plans): ``2^(w_bits-1) + 1`` counters of ``bits(max nnz)`` (widest layer);
    ``None`` when a layer's ``w_bits`` exceeds :data:`esl_hw.limits.REWIRE_MAX_W_BITS`."""
    w_bits = max(shape.w_bits for shape in shapes)
    if w_bits > limits.REWIRE_MAX_W_BITS:
        return None
    return (1 << (w_bits - 1)) + 1, unsigned_bits(max(shape.nnz for shape in shapes))


def rewire_limit_problem(shapes) -> str | None:
    """Why the rewiring unit cannot be generated for ``shapes`` (layer shapes or plans; ``None``
    when it can)."""
    for shape in shapes:
        if shape.w_bits > limits.REWIRE_MAX_W_BITS:
            return (
                f"layer {shape.index}: w_bits = {shape.w_bits} exceeds the rewiring unit's limit "
                f"{limits.REWIRE_MAX_W_BITS} (a histogram of 2^(w_bits-1)+1 magnitude counters)"
            )
    return None


def core_memories(shapes: list[LayerShape], config: HardwareConfig, rewiring: bool) -> tuple[CoreMemory, ...]:
    """Every memory of the core of ``shapes`` under ``config`` (:func:`layer_memories` of each layer,
    the spike FIFOs between layers and, with ``rewiring``, the rewiring unit's histogram), host
    ids numbered in order."""
    memories: list[CoreMemory] = []
    for shape in shapes:
        memories += layer_memories(shape, config)
    for shape in shapes[:-1]:
        width = shape.out_index_bits + 1  # {index, end of step}
        name, depth = f"fifo{shape.index}", config.fifo_depth
        memories.append(CoreMemory(name, "fifos", "spike_fifo", shape.index, None, depth, width))
    histogram = rewire_histogram_shape(shapes) if rewiring else None
    if histogram is not None:
        memories.append(CoreMemory("rewire.hist", "rewiring", "hist", None, None, *histogram))
    numbered, next_id = [], 0
    for memory in memories:
        if memory.host_id is not None:  # -1: mapped, id to be given
            memory = replace(memory, host_id=next_id)
            next_id += 1
        numbered.append(memory)
    return tuple(numbered)


def memory_bits(memories: list[CoreMemory] | tuple[CoreMemory, ...]) -> dict[str, int]:
    """Bits per role (:data:`ROLES`, each present, 0 when absent) and ``total``."""
    totals = dict.fromkeys(ROLES, 0)
    for memory in memories:
        totals[memory.role] += memory.bits
    totals["total"] = sum(totals.values())
    return totals


@dataclass(frozen=True)
class Region:
    """One memory of the core on the host port: its id, where it lives, its depth and width."""

    id: int
    layer: int
    kind: str
    lane: int
    depth: int
    width: int


def host_regions(memories: list[CoreMemory] | tuple[CoreMemory, ...]) -> list[Region]:
    """The host-mapped memories of ``memories``, indexed by id."""
    mapped = sorted((memory for memory in memories if memory.host_id is not None), key=lambda m: m.host_id)
    return [Region(m.host_id, m.layer, m.kind, m.lane, m.depth, m.width) for m in mapped]


@dataclass(frozen=True)
class BusShape:
    """Widths of the host memory bus: memory id, word address and data."""

    id_bits: int
    addr_bits: int
    data_bits: int


def bus_shape(regions: list[Region]) -> BusShape:
    """The bus that reaches every memory of ``regions``."""
    return BusShape(
        id_bits=unsigned_bits(len(regions) - 1),
        addr_bits=unsigned_bits(max(region.depth for region in regions) - 1),
        data_bits=max(region.width for region in regions),
    )
