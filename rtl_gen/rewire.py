"""On-chip rewiring unit: ESL prune-and-regrow of one layer's synapse memories, in place.

Exactly the algorithm of :func:`esl_hw.rewiring.rewire_layer` (the reference): on request
``(layer, k, seed)`` while the core is idle, with the layer's synapses in storage order (lane 0's
synapse memory, then lane 1's, …):

1. **Histogram pass**: ``hist[|w|] += 1`` for every synapse word (a memory of
   ``2^(w_bits-1) + 1`` counters, read-modify-write with forwarding, one word per cycle).
2. **Threshold pass**: scan ``hist[0 ..]`` (clearing it) for the magnitude ``m`` with
   ``count(|w| < m) < k <= count(|w| <= m)``; ``quota = k - count(|w| < m)`` ties to prune.
3. **Selection pass**, in storage order, row by row (row ends from the lane's pointer memory): a
   word is pruned when ``|w| < m``, or ``|w| = m`` while ``quota > 0`` (then ``quota -= 1``). A
   pruned word at position ``p`` of row ``r`` in lane ``b`` is regrown at once: draw
   ``s <- lfsr_step(s)``, ``g = s & (2^local_bits - 1)``; reject when ``g·L + b >= n_out``;
   otherwise scan the row's words ``q`` of lane ``b`` and reject when a *taken* word has group
   ``g`` (taken: ``q < p``, which holds either a kept or an already regrown synapse, or ``q > p``
   and not to be pruned, judged with the tie quota left after ``p``); on acceptance write
   ``{g, weight 0}`` to ``p``. The pass stops after the ``k``-th regrown synapse.

Each pass's data path is a block of :mod:`esl_hw.rtl_gen.rewire_passes` (histogram, threshold,
selection, regrow, with the layer tables and the reads in flight); the unit's state machine
sequences them, owns the position in storage order and drives the memory bus.

Requests with ``k`` above the layer's synapse count, an unknown layer or seed 0 are refused:
``error`` is set and no memory is written. ``k = 0`` finishes at once.

Cycle cost, from the ``start`` cycle to the ``done`` cycle (``H = 2^(w_bits-1) + 1``, ``n_b(r)``
the synapses of row ``r`` in lane ``b``)::

    1 + (nnz + lanes without synapses + 1 to 10) + (H + 3)
      + Σ over visited rows 7 + Σ over visited words 7 + lanes finished
      + Σ over pruned synapses (1 + Σ over draws (1 + [g·L + b < n_out]·(n_b(r) + 7)))

where the visited rows and words are those up to the ``k``-th pruned one in storage order
(:func:`rewire_cycles` counts it exactly; ``H`` is sized by the widest layer of the core). Every
memory access goes through the core's host memory bus (:mod:`esl_hw.rtl_gen.memory_map`), one
per cycle, reads answering ``READ_LATENCY`` (5) cycles later: the histogram and row scans keep a
read in flight every cycle, a row end and a judged word wait ``READ_LATENCY`` cycles
(``ROW_WAIT1`` .., ``WORD_WAIT1`` ..). The unit registers the bus's read data (``rdata``) before
any logic, the magnitude of a histogram word before the histogram's address, and the histogram's
read data before its adder (histogram pass, a read-modify-write with forwarding) and before the
threshold pass's adder and comparator (timing: the bus data comes through
the synapse-block and memory multiplexers). Row ends are the pointer words without their
empty-row flag (bit ``ptr_bits``), which the unit never writes: rewiring keeps every row's
synapse count, so the flags stay valid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from esl_hw.artifact import Layer
from esl_hw.errors import EslError
from esl_hw.rewiring import lfsr_step, rewire_layer, storage_order
from esl_hw.rtl_gen.integrate import NO_RW_CHECK
from esl_hw.rtl_gen.lfsr import LFSR_BITS, Lfsr
from esl_hw.rtl_gen.memory_map import READ_LATENCY, bus_shape, bus_signature, memory_map
from esl_hw.rtl_gen.plan import (
    MAX_REWIRE_W_BITS,  # noqa: F401  (the unit's limit, re-exported)
    LayerPlan,
    rewire_limit_problem,
    split_lanes,
    unsigned_bits,
)
from esl_hw.rtl_gen.rewire_passes import (
    HistogramPass,
    LayerTables,
    ReadsInFlight,
    RegrowPass,
    RewireWidths,
    SelectionPass,
    ThresholdPass,
    rewire_widths,
    table,
)

#: Width of the ``k`` request field.
K_BITS = 32


def _histogram_cycles(lane_nnz: list[int]) -> int:
    """Cycles of the histogram pass: one per word (one per lane without words), then the drain."""
    issued = [flag for nnz in lane_nnz for flag in ([True] * nnz or [False])]
    cycle = len(issued)
    drain = range(1, READ_LATENCY + 5)  # reads in flight, rdata, the histogram's h1, h2, h3 (write)
    while any(0 <= cycle - back < len(issued) and issued[cycle - back] for back in drain):
        cycle += 1
    return cycle + 1


def rewire_cycles(layer: Layer, k: int, seed: int, lanes: int, w_bits: int | None = None) -> int:
    """Cycles :class:`RewireUnit` spends on request ``(layer, k, seed)``, from the ``start`` cycle
    up to (not including) the ``done`` cycle; ``w_bits`` is the widest layer of the core (sizes
    the histogram; default the layer's). Refused requests and ``k = 0`` take 1 cycle."""
    if k == 0 or k > layer.nnz or seed == 0:
        return 1
    magnitudes = (1 << ((w_bits or layer.w_bits) - 1)) + 1
    row_ptr, _, _ = split_lanes(layer, lanes)
    lane_nnz = [int(pointers[-1]) for pointers in row_ptr]
    cycles = 1 + _histogram_cycles(lane_nnz) + magnitudes + 3
    _, _, changes = rewire_layer(layer, k, seed, lanes)
    order = storage_order(layer.col, lanes)
    rank = np.empty(layer.nnz, dtype=np.int64)
    rank[order] = np.arange(layer.nnz)
    new_col = {int(rank[position]): new for position, _, new in changes}
    mask = (1 << unsigned_bits(-(-layer.n_out // lanes) - 1)) - 1
    state, remaining = seed, k
    for lane in range(lanes):
        first = sum(lane_nnz[:lane])  # storage index of the lane's word 0
        pos = row = 0
        while True:
            cycles += 1  # ROW
            if row == layer.n_in or pos == lane_nnz[lane]:
                break
            cycles += READ_LATENCY + 1  # ROW_WAIT1 .., ROW_END
            start, end = pos, int(row_ptr[lane][row + 1])
            while pos < end:
                cycles += 2 + READ_LATENCY  # WORD, WORD_WAIT1 .., JUDGE
                if first + pos in new_col:
                    while True:
                        state = lfsr_step(state)
                        cycles += 1  # DRAW
                        column = (state & mask) * lanes + lane
                        if column < layer.n_out:
                            cycles += end - start + 2 + READ_LATENCY  # CHECK: scan the row, drain
                            if column == new_col[first + pos]:
                                break
                    cycles += 1  # WRITE
                    remaining -= 1
                    if remaining == 0:
                        return cycles
                pos += 1
            row += 1
    raise AssertionError("fewer than k synapses were pruned")


def wait_states(m: Module, name: str, then: str) -> None:
    """States ``name1`` .. ``name<READ_LATENCY>``, one cycle each, then state ``then``: a bus read
    issued in the state before ``name1`` is in the unit's ``rdata`` register in ``then``."""
    for i in range(1, READ_LATENCY + 1):
        with m.State(f"{name}{i}"):
            m.next = f"{name}{i + 1}" if i < READ_LATENCY else then


class RewireUnit(wiring.Component):
    """Prune-and-regrow of one layer's synapse memories in place (module docstring).

    Parameters
    ----------
    plans : list of LayerPlan
        The core's layers (all ``w_bits <= MAX_REWIRE_W_BITS``, else :class:`EslError`).

    Attributes
    ----------
    start : In(1)
        Pulse with ``layer``, ``k`` and ``seed`` valid to start an update (ignored while busy).
    layer : In(bits(layers - 1))
        The layer to rewire.
    k : In(32)
        Synapses to prune and regrow.
    seed : In(32)
        Initial LFSR state (non-zero).
    busy : Out(1)
        An update is running (from the cycle after ``start`` until ``done``).
    done : Out(1)
        Pulses when the update has finished (or was refused).
    error : Out(1)
        The last request was refused (``k`` above the layer's synapse count, unknown layer or
        seed 0); held until the next ``start``.
    state : Out(32)
        The LFSR state after the last draw (the seed when nothing was drawn).
    bus : Out(bus_signature(...))
        Master of the core's memory bus (:func:`esl_hw.rtl_gen.memory_map.bus_signature`).
    """

    def __init__(self, plans: list[LayerPlan]) -> None:
        problem = rewire_limit_problem(plans)
        if problem is not None:
            self._MustUse__silence = True  # never elaborated: no unused-elaboratable warning
            raise EslError(problem)
        self.plans = plans
        self.regions = memory_map(plans)
        self.shape = bus_shape(self.regions)
        super().__init__(
            {
                "start": In(1),
                "layer": In(unsigned_bits(len(plans) - 1)),
                "k": In(K_BITS),
                "seed": In(LFSR_BITS),
                "busy": Out(1),
                "done": Out(1),
                "error": Out(1),
                "state": Out(LFSR_BITS),
                "bus": Out(bus_signature(self.shape)),
            }
        )

    def elaborate(self, platform) -> Module:
        widths = rewire_widths(self.plans)
        m = Module()
        blocks = _Blocks(
            lfsr=Lfsr(),
            tables=LayerTables(self.plans),
            reads=ReadsInFlight(),
            histogram=HistogramPass(widths.magnitudes, widths.count_bits, widths.w_max),
            threshold=ThresholdPass(widths.magnitudes, widths.count_bits, widths.w_max),
            selection=SelectionPass(widths.count_bits, widths.w_max),
            regrow=RegrowPass(widths),
        )
        for name, block in vars(blocks).items():
            m.submodules[name] = block
        m.submodules.hist = hist = Memory(
            shape=widths.count_bits, depth=widths.magnitudes, init=[], attrs=NO_RW_CHECK
        )
        hist_ports = (hist.write_port(), hist.read_port())
        regs = _Registers(
            layer=Signal.like(self.layer, name="layer"),
            lane=Signal(range(widths.lanes + 1), name="lane"),
            k=Signal(widths.count_bits, name="k"),
            remaining=Signal(widths.count_bits, name="remaining"),
            pos=Signal(widths.pos_bits, name="pos"),  # histogram pass: address; then the word p
            row=Signal(widths.row_bits, name="row"),
            row_start=Signal(widths.pos_bits, name="row_start"),
            row_end=Signal(widths.pos_bits, name="row_end"),
            error=Signal(name="error_flag"),
            rdata=Signal(widths.data_bits, name="rdata", reset_less=True),  # the bus's read data
        )
        self._connect(m, widths, blocks, regs, hist_ports[1])
        with m.FSM() as fsm:
            self._request_state(m, widths, blocks, regs)
            self._count_states(m, widths, blocks, regs, hist_ports)
            self._select_states(m, widths, blocks, regs)
            self._regrow_states(m, blocks, regs)
            with m.State("FINISH"):
                m.next = "IDLE"
        # Plain expressions of the state register (continuous assignments in Verilog, defined
        # from time 0 in every simulator, unlike outputs of a process that waits for a change).
        m.d.comb += [self.busy.eq(~fsm.ongoing("IDLE")), self.done.eq(fsm.ongoing("FINISH"))]
        return m

    def _connect(self, m: Module, widths: RewireWidths, blocks: _Blocks, regs: _Registers, hist_rd) -> None:
        """The data paths between the registers and the blocks, whatever the state."""
        lfsr, tables, reads = blocks.lfsr, blocks.tables, blocks.reads
        threshold, selection, regrow = blocks.threshold, blocks.selection, blocks.regrow
        m.d.sync += regs.rdata.eq(self.bus.r_data)
        m.d.comb += [
            self.error.eq(regs.error),
            self.state.eq(lfsr.state),
            lfsr.seed.eq(self.seed),
            self.bus.w_data.eq(regrow.candidate),  # a regrown word: {group, weight 0}
            tables.layer.eq(regs.layer),
            tables.lane.eq(regs.lane),
            tables.word.eq(regs.rdata),
            blocks.histogram.word_valid.eq(reads.valid),
            blocks.histogram.word_mag.eq(tables.magnitude),
            blocks.histogram.hist.rd_data.eq(hist_rd.data),
            threshold.k.eq(regs.k),
            threshold.hist.rd_data.eq(hist_rd.data),
            selection.load.eq(threshold.found),
            selection.load_threshold.eq(threshold.magnitude),
            selection.load_quota.eq(threshold.quota),
            selection.magnitude.eq(tables.magnitude),
        ]
        m.d.comb += [
            regrow.random.eq(lfsr.following[: widths.group_bits]),
            regrow.group_mask.eq(tables.group_mask),
            regrow.n_out.eq(tables.n_out),
            regrow.lane.eq(regs.lane),
            regrow.row_start.eq(regs.row_start),
            regrow.row_end.eq(regs.row_end),
            regrow.pos.eq(regs.pos),
            regrow.threshold.eq(selection.threshold),
            regrow.quota.eq(selection.quota),
            regrow.word_valid.eq(reads.valid),
            regrow.word_group.eq(tables.group),
            regrow.word_mag.eq(tables.magnitude),
        ]

    def _above_nnz(self, count_bits: int):
        """``k`` exceeds the requested layer's synapse count: a bit of ``k`` above the counters'
        width, or its low bits above the count (a narrow comparator, the same answer)."""
        nnz = table([plan.layer.nnz for plan in self.plans], count_bits)(self.layer)
        return (self.k[count_bits:] != 0) | (self.k[:count_bits] > nnz)

    def _request_state(self, m: Module, widths: RewireWidths, blocks: _Blocks, regs: _Registers) -> None:
        """IDLE: take a request; refuse it, finish at once (``k = 0``) or start the histogram."""
        with m.State("IDLE"), m.If(self.start):
            refuse = (self.layer >= len(self.plans)) | (self.seed == 0)
            m.d.comb += blocks.lfsr.load.eq(1)
            m.d.sync += [
                regs.layer.eq(self.layer),
                regs.k.eq(self.k),
                regs.remaining.eq(self.k),
                regs.lane.eq(0),
                regs.pos.eq(0),
                regs.error.eq(0),
            ]
            with m.If(refuse | self._above_nnz(widths.count_bits)):
                m.d.sync += regs.error.eq(1)
                m.next = "FINISH"
            with m.Elif(self.k == 0):
                m.next = "FINISH"
            with m.Else():
                m.next = "HIST"

    def _count_states(
        self, m: Module, widths: RewireWidths, blocks: _Blocks, regs: _Registers, hist_ports
    ) -> None:
        """HIST: read every synapse word of the layer into the histogram pass, lane by lane;
        THRESHOLD: the threshold pass."""
        bus, tables, reads, histogram = self.bus, blocks.tables, blocks.reads, blocks.histogram
        lane, pos = regs.lane, regs.pos
        hist_wr, hist_rd = hist_ports
        with m.State("HIST"):
            issue = (lane < widths.lanes) & (pos < tables.lane_nnz)
            m.d.comb += [
                bus.mem.eq(tables.syn_id),
                bus.addr.eq(pos),
                bus.r_en.eq(issue),
                histogram.enable.eq(1),
            ]
            m.d.comb += [reads.shift.eq(1), reads.issue.eq(issue)]
            _drive_histogram(m, histogram.hist, hist_rd, hist_wr)
            with m.If(issue):
                with m.If(pos + 1 == tables.lane_nnz):
                    m.d.sync += [pos.eq(0), lane.eq(lane + 1)]
                with m.Else():
                    m.d.sync += pos.eq(pos + 1)
            with m.Elif(lane < widths.lanes):
                m.d.sync += lane.eq(lane + 1)  # a lane without synapses
            with m.If((lane == widths.lanes) & ~(reads.busy | histogram.busy)):
                m.d.comb += blocks.threshold.start.eq(1)
                m.next = "THRESHOLD"

        with m.State("THRESHOLD"):
            m.d.comb += blocks.threshold.enable.eq(1)
            _drive_histogram(m, blocks.threshold.hist, hist_rd, hist_wr)
            with m.If(blocks.threshold.done):
                m.d.sync += [lane.eq(0), regs.row.eq(0), pos.eq(0)]
                m.next = "ROW"

    def _select_states(self, m: Module, widths: RewireWidths, blocks: _Blocks, regs: _Registers) -> None:
        """ROW .. JUDGE: the selection pass, row by row and word by word through every lane."""
        bus, tables, lanes = self.bus, blocks.tables, widths.lanes
        lane, row, pos = regs.lane, regs.row, regs.pos
        with m.State("ROW"):
            with m.If(lane == lanes):
                m.next = "FINISH"  # not reached: k <= nnz words are pruned before
            with m.Elif((row == tables.n_in) | (pos == tables.lane_nnz)):
                m.d.sync += [lane.eq(lane + 1), row.eq(0), pos.eq(0)]
            with m.Else():
                m.d.comb += [bus.mem.eq(tables.ptr_id), bus.addr.eq(row + 1), bus.r_en.eq(1)]
                m.next = "ROW_WAIT1"

        wait_states(m, "ROW_WAIT", "ROW_END")

        with m.State("ROW_END"):
            pointer = regs.rdata[: len(pos)] & tables.ptr_mask  # without the empty-row flag
            m.d.sync += [regs.row_start.eq(pos), regs.row_end.eq(pointer)]
            with m.If(pointer == pos):
                m.d.sync += row.eq(row + 1)
                m.next = "ROW"
            with m.Else():
                m.next = "WORD"

        with m.State("WORD"):
            m.d.comb += [bus.mem.eq(tables.syn_id), bus.addr.eq(pos), bus.r_en.eq(1)]
            m.next = "WORD_WAIT1"

        wait_states(m, "WORD_WAIT", "JUDGE")

        with m.State("JUDGE"):
            m.d.comb += blocks.selection.judge.eq(1)
            with m.If(blocks.selection.prune):
                m.next = "DRAW"
            with m.Else():
                _next_word(m, regs)

    def _regrow_states(self, m: Module, blocks: _Blocks, regs: _Registers) -> None:
        """DRAW, CHECK: the regrow pass until a group is accepted and free; WRITE: the regrown
        word, then the next word, or the end after the ``k``-th."""
        bus, reads, regrow, syn_id = self.bus, blocks.reads, blocks.regrow, blocks.tables.syn_id
        with m.State("DRAW"):
            m.d.comb += [blocks.lfsr.step.eq(1), regrow.draw.eq(1)]
            with m.If(regrow.accept):
                m.d.comb += reads.clear.eq(1)
                m.next = "CHECK"

        with m.State("CHECK"):
            m.d.comb += [
                bus.mem.eq(syn_id),
                bus.addr.eq(regrow.addr),
                bus.r_en.eq(regrow.issue),
            ]
            m.d.comb += [regrow.check.eq(1), reads.shift.eq(1), reads.issue.eq(regrow.issue)]
            with m.If(~regrow.issue & ~reads.busy):
                with m.If(regrow.conflict):
                    m.next = "DRAW"
                with m.Else():
                    m.next = "WRITE"

        with m.State("WRITE"):
            m.d.comb += [bus.mem.eq(syn_id), bus.addr.eq(regs.pos), bus.w_en.eq(1)]
            m.d.sync += regs.remaining.eq(regs.remaining - 1)
            with m.If(regs.remaining == 1):
                m.next = "FINISH"
            with m.Else():
                _next_word(m, regs)


@dataclass
class _Blocks:
    """The unit's blocks (:mod:`esl_hw.rtl_gen.rewire_passes` and the LFSR), submodules of the
    same names."""

    lfsr: Lfsr
    tables: LayerTables
    reads: ReadsInFlight
    histogram: HistogramPass
    threshold: ThresholdPass
    selection: SelectionPass
    regrow: RegrowPass


@dataclass
class _Registers:
    """The unit's own registers: the request, the position in storage order, the read data."""

    layer: Signal
    lane: Signal
    k: Signal
    remaining: Signal
    pos: Signal
    row: Signal
    row_start: Signal
    row_end: Signal
    error: Signal
    rdata: Signal


def _drive_histogram(m: Module, port, hist_rd, hist_wr) -> None:
    """Connect a pass's histogram ports (:func:`histogram_port_signature`) to the memory's, in
    the current state."""
    m.d.comb += [
        hist_rd.addr.eq(port.rd_addr),
        hist_rd.en.eq(port.rd_en),
        hist_wr.addr.eq(port.wr_addr),
        hist_wr.data.eq(port.wr_data),
        hist_wr.en.eq(port.wr_en),
    ]


def _next_word(m: Module, regs: _Registers) -> None:
    """Move past word ``pos``: to the next row at the row's end, else to its next word."""
    m.d.sync += regs.pos.eq(regs.pos + 1)
    with m.If(regs.pos + 1 == regs.row_end):
        m.d.sync += regs.row.eq(regs.row + 1)
        m.next = "ROW"
    with m.Else():
        m.next = "WORD"
