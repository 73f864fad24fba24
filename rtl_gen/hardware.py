"""The hardware configuration of a generated core, and the memory primitives it is laid out for.

:class:`HardwareConfig` holds every option of a core that is not in the model artifact: lanes,
FIFO depths, where the synapse memories live, whether the rewiring unit is built and whether the
core streams inferences. It is
validated once, when it is made (:data:`esl_hw.limits.LANES`, :data:`esl_hw.limits.FIFO_DEPTH`), and
:func:`esl_hw.rtl_gen.plan.plan_model` turns model and configuration into the one plan that the
gateware, the testbench harness, the host link, the fit estimate, co-simulation and synthesis
read::

    config = HardwareConfig.for_model(model)           # the lanes the model was trained for, or 1
    plan = plan_model(model, config)                   # widths, memory images, the memory list
    SNNCore(plan); harness_verilog(plan); run_cosim(plan, images); synthesize(plan, "ecp5-85k", out)

:class:`RamPrimitive` describes a block memory of an FPGA (its shapes, read ports, whether the
bitstream initialises it). The FPGA families of :mod:`esl_hw.fpga.targets` are built from these,
and the core's synapse memories are split into blocks of :data:`SYNAPSE_BLOCK_RAM` (the ECP5 EBR,
on every target) or :data:`ICE40_SPRAM` words.

This module imports neither numpy nor amaranth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from esl_hw import limits
from esl_hw.errors import EslError

#: Default depth of the spike FIFOs between layers.
DEFAULT_FIFO_DEPTH = 16

#: Default depth of each lane's event FIFO (how far the lanes may drift apart, in events).
DEFAULT_LANE_FIFO_DEPTH = 32

#: Entries of each lane's row queue, where a layer core has one (:func:`row_queue_depth`): the row
#: ranges and end-of-step markers its pointer stage has read and its synapse stage has not yet
#: taken, so the pointer stage drops rows empty in the lane at one event per cycle while a longer
#: row streams (:class:`~esl_hw.rtl_gen.integrate.CsrIntegrator`). On the demo's shape at 16 lanes
#: eight entries took nearly all of the gain sixteen did (four noticeably less); on the ECP5 the
#: queue is LUT RAM (16 words per cell), so eight cost hardly more logic than four. Only hidden
#: layers get them: the output layer's lanes take a few spikes per step and do not set the pace
#: (queues there too left the cycles of the demo's shape at 16 lanes and of the trained
#: 784-800-10 at density 0.05 on 8 lanes exactly as they were).
ROW_QUEUE_DEPTH = 8

#: The least expected saving, as a ratio of cycles per event, for which a layer gets row queues.
#: The Poisson estimate of :func:`row_queue_depth` overstates the saving once rows hold more than
#: about one synapse per lane (the lane FIFOs already absorb most of it there: measured 1 to 2 %
#: at ``λ`` of about 2, where the estimate says 6 to 8 %), hence a margin of 10 %, not 5 %.
ROW_QUEUE_MIN_GAIN = 1.10


def row_queue_depth(lanes: int, synapses: int, inputs: int) -> int:
    """Entries of each lane's row queue in a layer of ``inputs`` rows and ``synapses`` synapses on
    ``lanes`` lanes: :data:`ROW_QUEUE_DEPTH` where the queues are expected to save at least
    :data:`ROW_QUEUE_MIN_GAIN`, else none.

    With ``λ = synapses / (inputs · lanes)`` synapses per row and lane, taken as Poisson, a lane
    without a queue pays ``E[max(1, n)] = λ + e^(−λ)`` cycles per event and with one
    ``max(1, λ)``: the queues are built when ``λ + e^(−λ) >= 1.10 · max(1, λ)``, that is for
    about ``0.49 <= λ <= 1.74`` and more than one lane. Outside that window rows are nearly all
    empty in a lane (every event costs its one cycle either way) or nearly never (every row costs
    its synapses either way), and the queue would be logic for nothing; with one lane a row is
    empty in the lane only when it is empty in the layer."""
    if lanes <= 1 or inputs <= 0:
        return 0
    rate = synapses / (inputs * lanes)
    return ROW_QUEUE_DEPTH if rate + math.exp(-rate) >= ROW_QUEUE_MIN_GAIN * max(1.0, rate) else 0


#: Default depth of the spike-mask FIFO behind each LIF layer's sweep: ``None`` sizes it to one whole
#: step (every group plus the end-of-step word, :meth:`~esl_hw.rtl_gen.plan.LayerPlan.mask_fifo_depth`),
#: so the sweep never waits for the next layer within a step and the layer goes on integrating the
#: next step while the next layer drains its spikes. (The sweep issues a group only while the FIFO
#: has room for every group in its six-stage pipeline.)
DEFAULT_SPIKE_FIFO_DEPTH: int | None = None

#: Where the synapse memories live: ``block`` (block RAM initialised by the bitstream) or
#: ``spram`` (iCE40 UP5K single-port SPRAM, 16384 x 16 per block, loaded by the host).
SYNAPSE_MEMORIES = ("block", "spram")


def check_fifo_depth(fifo_depth: Any, name: str = "fifo_depth") -> int:
    """Return ``fifo_depth`` if it is a usable FIFO depth (:data:`esl_hw.limits.FIFO_DEPTH`), else
    raise :class:`EslError` naming ``name`` and the value."""
    low, high = limits.FIFO_DEPTH
    if not limits.is_int(fifo_depth) or fifo_depth < low:
        raise EslError(f"{name} must be an integer >= {low}, got {limits.shown(fifo_depth)}")
    if fifo_depth > high:
        raise EslError(f"{name} = {fifo_depth} exceeds the hardware limit {high} by {fifo_depth - high}")
    return fifo_depth


@dataclass(frozen=True)
class RamPrimitive:
    """One kind of FPGA block memory.

    Attributes
    ----------
    cell : str
        Netlist cell type (``DP16KD``).
    shapes : tuple of (words, bits)
        Its configurations a memory with up to :attr:`read_ports` read ports can use, deepest first.
    single_port_shapes : tuple of (words, bits)
        Further configurations only a memory with one read port can use (the ECP5's 512 x 36).
    read_ports : int
        Read ports one block serves; a memory with more is built from copies.
    initialised : bool
        Whether the bitstream can set its contents (SPRAM: no, the host writes them).
    """

    cell: str
    shapes: tuple[tuple[int, int], ...]
    single_port_shapes: tuple[tuple[int, int], ...] = ()
    read_ports: int = 2
    initialised: bool = True

    def deepest_words(self, width: int) -> int:
        """Words of ``width`` bits one block holds in its deepest fitting shape (wider words use
        blocks side by side in the widest shape of :attr:`shapes`)."""
        for words, bits in self.shapes:
            if width <= bits:
                return words
        return self.shapes[-1][0]

    def blocks(self, depth: int, width: int, read_ports: int = 1) -> int:
        """Blocks for a ``depth`` x ``width`` memory with ``read_ports`` read ports: the cheapest
        shape, as Yosys' memory mapper takes it, times the copies the read ports need."""
        shapes = self.shapes + (self.single_port_shapes if read_ports <= 1 else ())
        best = min(math.ceil(width / bits) * math.ceil(depth / words) for words, bits in shapes)
        return best * math.ceil(read_ports / self.read_ports)


#: Lattice ECP5 ``DP16KD`` (18 kbit, true dual port).
ECP5_EBR = RamPrimitive(
    "DP16KD", ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18)), single_port_shapes=((512, 36),)
)
#: Lattice iCE40 ``SB_RAM40_4K`` (4 kbit, one read port).
ICE40_EBR = RamPrimitive("SB_RAM40_4K", ((2048, 2), (1024, 4), (512, 8), (256, 16)), read_ports=1)
#: Lattice iCE40 UltraPlus ``SB_SPRAM256KA`` (256 kbit, 16384 x 16, one port, not initialised).
ICE40_SPRAM = RamPrimitive("SB_SPRAM256KA", ((16384, 16),), read_ports=1, initialised=False)

#: The block RAM a synapse memory in block RAM is split for (:meth:`RamPrimitive.deepest_words` of
#: its word width per block), whatever the target: a finer split for a smaller block RAM would
#: add multiplexers and registers to the core.
SYNAPSE_BLOCK_RAM = ECP5_EBR


def model_lanes(model) -> int:
    """The lanes ``model`` was trained for (its ``metadata.rewiring.lanes``, written by export for
    the ``hardware-random`` rule), or 1."""
    rewiring = model.metadata.get("rewiring") if isinstance(model.metadata, dict) else None
    lanes = rewiring.get("lanes") if isinstance(rewiring, dict) else None
    return 1 if lanes is None else lanes


@dataclass(frozen=True)
class HardwareConfig:
    """Every option of a generated core that is not in the model, validated when it is made.

    Attributes
    ----------
    lanes : int
        Lanes per layer core ``L`` (a power of two, :func:`esl_hw.limits.check_lanes`): ``L``
        synaptic operations and ``L`` neurons of the sweep per cycle, memories banked by
        post-synaptic index mod ``L``.
    fifo_depth : int
        Depth of the spike FIFOs between layers.
    lane_fifo_depth : int
        Depth of each lane's event FIFO.
    spike_fifo_depth : int or None
        Depth of each LIF layer's spike-mask FIFO; ``None``: one whole step of the layer.
    synapse_memory : str
        ``block`` (block RAM initialised by the bitstream) or ``spram`` (iCE40 SPRAM, written by
        the host before the first inference; the simulation starts with it loaded).
    rewiring : bool or None
        Build the rewiring unit: ``None`` whenever the model allows it (``w_bits <=``
        :data:`esl_hw.limits.REWIRE_MAX_W_BITS`), ``True`` always (the plan refuses a model
        beyond its limits), ``False`` never.
    streaming : bool
        Streamed inferences (default ``True``): the core takes the next inference's events right
        after the last end-of-step marker of the one before (at most two in flight) and keeps
        every performance counter per inference (a parity tag on every strobe, two running
        totals per counter). ``False`` builds the core that takes one inference at a time (the
        host waits for ``done`` before the next events) with one running total per counter:
        the same results, bit for bit, and the same cycles per inference, in fewer logic cells
        (about 840 fewer iCE40 logic cells on a 784-800-10 core, see
        :func:`esl_hw.fpga.fit.streaming_logic_cells`).

    Raises
    ------
    EslError
        A value out of its range, quoting it.
    """

    lanes: int = 1
    fifo_depth: int = DEFAULT_FIFO_DEPTH
    lane_fifo_depth: int = DEFAULT_LANE_FIFO_DEPTH
    spike_fifo_depth: int | None = DEFAULT_SPIKE_FIFO_DEPTH
    synapse_memory: str = "block"
    rewiring: bool | None = None
    streaming: bool = True

    def __post_init__(self) -> None:
        limits.check_lanes(self.lanes)
        check_fifo_depth(self.fifo_depth, "fifo_depth")
        check_fifo_depth(self.lane_fifo_depth, "lane_fifo_depth")
        if self.spike_fifo_depth is not None:
            check_fifo_depth(self.spike_fifo_depth, "spike_fifo_depth")
        if not isinstance(self.synapse_memory, str) or self.synapse_memory not in SYNAPSE_MEMORIES:
            raise EslError(
                f"synapse_memory must be one of {', '.join(SYNAPSE_MEMORIES)}, "
                f"got {limits.shown(self.synapse_memory)}"
            )
        if self.rewiring is not None and not isinstance(self.rewiring, bool):
            raise EslError(f"rewiring must be True, False or None, got {limits.shown(self.rewiring)}")
        if not isinstance(self.streaming, bool):
            raise EslError(f"streaming must be True or False, got {limits.shown(self.streaming)}")

    @classmethod
    def for_model(cls, model, lanes: int | None = None, **options: Any) -> HardwareConfig:
        """The configuration of a core for ``model``: ``lanes`` or, when ``None``, the lanes the
        model was trained for (:func:`model_lanes`); every other option given and not ``None``
        (``fifo_depth``, ``lane_fifo_depth``, ``spike_fifo_depth``, ``synapse_memory``,
        ``rewiring``, ``streaming``), the defaults for the rest."""
        given = {name: value for name, value in options.items() if value is not None}
        return cls(lanes=model_lanes(model) if lanes is None else lanes, **given)
