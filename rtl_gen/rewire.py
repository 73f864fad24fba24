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

import numpy as np
from amaranth import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from esl_hw.artifact import Layer
from esl_hw.errors import EslError
from esl_hw.rewiring import lfsr_step, rewire_layer, storage_order
from esl_hw.rtl_gen.integrate import NO_RW_CHECK
from esl_hw.rtl_gen.lfsr import LFSR_BITS, Lfsr
from esl_hw.rtl_gen.memory_map import READ_LATENCY, bus_shape, bus_signature, memory_map, region_id
from esl_hw.rtl_gen.plan import (
    MAX_REWIRE_W_BITS,  # noqa: F401  (the unit's limit, re-exported)
    LayerPlan,
    rewire_histogram_shape,
    rewire_limit_problem,
    split_lanes,
    unsigned_bits,
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


def _table(values: list[int], bits: int):
    """A lookup of the constants ``values`` (``bits`` wide, the last one beyond the end): a
    function of the index returning a balanced tree of multiplexers on the index bits, i.e.
    continuous assignments in Verilog, not an ``always @*`` case block (Icarus never evaluates
    such a block while its index keeps its value from time 0)."""
    select_bits = unsigned_bits(len(values) - 1)

    def lookup(index):
        level = [Const(value, bits) for value in values]
        level += [level[-1]] * ((1 << select_bits) - len(level))
        index = Value.cast(index)
        for bit in range(select_bits):
            select = index[bit] if bit < len(index) else 0
            level = [Mux(select, high, low) for low, high in zip(level[::2], level[1::2], strict=True)]
        beyond = index >> select_bits != 0 if len(index) > select_bits else 0
        return Mux(beyond, Const(values[-1], bits), level[0])

    return lookup


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

    @staticmethod
    def _histogram_update(m: Module, hist_rd, hist_wr, word_mag, word_valid) -> tuple[Signal, Signal]:
        """Pipelined ``hist[mag] <- hist[mag] + 1`` for each word in ``rdata`` (``word_valid``),
        one per cycle, no stall, while the returned ``enable`` is set (the histogram pass)::

            cycle h   : read hist[mag]                  (h1: ``mag`` registered from ``word_mag``)
            cycle h+1 : the count at the read port      (h2)
            cycle h+2 : hist[mag] <- x + 1              (h3; x registered from h2)

        The read of cycle ``h`` misses the writes of cycles ``h`` and ``h+1``, so h3 takes ``x``
        from the count written one (``w1``) or two (``w2``) cycles earlier when it went to the same
        magnitude, else from the memory (as :func:`esl_hw.rtl_gen.integrate.read_modify_write`):
        the block-RAM output goes straight into a register. Returns ``(enable, busy)``."""
        enable = Signal(name="hist_enable")
        busy = Signal(name="hist_busy")
        width = len(hist_wr.data)
        stages = ("h1", "h2", "h3", "w1")
        h1_valid, h2_valid, h3_valid, w1_valid = (Signal(name=f"hist_{i}_valid") for i in stages)
        h1_mag, h2_mag, h3_mag, w1_mag = (Signal(len(word_mag), name=f"hist_{i}_mag") for i in stages)
        h3_data = Signal(width, name="hist_h3_data", reset_less=True)
        h3_from1 = Signal(name="hist_h3_from1")
        h3_from2 = Signal(name="hist_h3_from2")
        w1_sum = Signal(width, name="hist_w1_sum")
        w2_sum = Signal(width, name="hist_w2_sum")
        total = Signal(width, name="hist_sum")
        m.d.sync += [
            h1_valid.eq(word_valid & enable),
            h1_mag.eq(word_mag),
            h2_valid.eq(h1_valid),
            h2_mag.eq(h1_mag),
            h3_valid.eq(h2_valid),
            h3_mag.eq(h2_mag),
            h3_data.eq(hist_rd.data),
            h3_from1.eq(h3_valid & (h3_mag == h2_mag)),
            h3_from2.eq(w1_valid & (w1_mag == h2_mag)),
            w1_valid.eq(h3_valid),
            w1_mag.eq(h3_mag),
            w1_sum.eq(total),
            w2_sum.eq(w1_sum),
        ]
        with m.If(enable):
            m.d.comb += [
                hist_rd.addr.eq(h1_mag),
                hist_rd.en.eq(h1_valid),
                hist_wr.addr.eq(h3_mag),
                hist_wr.data.eq(total),
                hist_wr.en.eq(h3_valid),
            ]
        m.d.comb += [
            total.eq(Mux(h3_from1, w1_sum, Mux(h3_from2, w2_sum, h3_data)) + 1),
            busy.eq(h1_valid | h2_valid | h3_valid),
        ]
        return enable, busy

    def elaborate(self, platform) -> Module:
        plans = self.plans
        lanes = plans[0].lanes
        lane_bits = plans[0].lane_bits
        w_max = max(plan.w_bits for plan in plans)
        magnitudes, count_bits = rewire_histogram_shape(plans)
        pos_bits = max(plan.ptr_bits for plan in plans)
        row_bits = unsigned_bits(max(plan.n_in for plan in plans))
        group_bits = max(plan.local_bits for plan in plans)
        out_bits = unsigned_bits(max(plan.n_out for plan in plans)) + 1
        m = Module()
        m.submodules.lfsr = lfsr = Lfsr()
        m.submodules.hist = hist = Memory(shape=count_bits, depth=magnitudes, init=[], attrs=NO_RW_CHECK)
        hist_wr = hist.write_port()
        hist_rd = hist.read_port()
        bus = self.bus

        layer = Signal.like(self.layer)
        lane = Signal(range(lanes + 1))
        lane_nnz = _table([plan.lane_nnz(b) for plan in plans for b in range(lanes)], pos_bits)(
            layer * lanes + lane[:lane_bits] if lanes > 1 else layer
        )
        n_in = _table([plan.n_in for plan in plans], row_bits)(layer)
        n_out = _table([plan.n_out for plan in plans], out_bits)(layer)
        group_mask = _table([(1 << plan.local_bits) - 1 for plan in plans], group_bits)(layer)
        ptr_mask = _table([(1 << plan.ptr_bits) - 1 for plan in plans], pos_bits)(layer)
        id_bits = self.shape.id_bits
        ptr_id = _table([region_id(plans, plan.index, "ptr", 0) for plan in plans], id_bits)(layer) + lane
        syn_id = _table([region_id(plans, plan.index, "syn", 0) for plan in plans], id_bits)(layer) + lane

        # The synapse word of the bus's read data (registered), decoded for the selected layer.
        rdata = Signal(self.shape.data_bits, reset_less=True)
        m.d.sync += rdata.eq(bus.r_data)
        word_group = Signal(group_bits)
        word_weight = Signal(signed(w_max))
        word_mag = Signal(w_max)
        with m.Switch(layer):
            for plan in plans:
                with m.Case(plan.index):
                    low, high = plan.local_bits, plan.local_bits + plan.w_bits
                    m.d.comb += [
                        word_group.eq(rdata[:low]),
                        word_weight.eq(rdata[low:high].as_signed()),
                    ]
        m.d.comb += word_mag.eq(Mux(word_weight < 0, -word_weight, word_weight))

        k = Signal(count_bits)
        remaining = Signal(count_bits)
        pos = Signal(pos_bits)  # histogram pass: address; selection pass: the word p
        # Bus reads in flight (histogram pass, CHECK): flight[i] was issued i + 1 cycles ago,
        # flight[-1]'s data is on the bus; then sr_valid: it is in ``rdata`` (at ``sr_pos``).
        flight = [Signal(name=f"flight{i + 1}") for i in range(READ_LATENCY)]
        flight_pos = [Signal(pos_bits, name=f"flight{i + 1}_pos") for i in range(READ_LATENCY)]
        sr_valid = Signal()
        sr_pos = Signal(pos_bits)
        hist_enable, hist_busy = self._histogram_update(m, hist_rd, hist_wr, word_mag, sr_valid)
        index = Signal(range(magnitudes + 1))
        threshold_index = Signal(range(magnitudes))  # t2's index
        t1_valid = Signal()  # threshold pass: hist[t1_index] at the read port
        t1_index = Signal(range(magnitudes))
        t2_valid = Signal()  # its count registered (t2_count)
        t2_count = Signal(count_bits)
        below = Signal(count_bits)
        found = Signal()
        threshold = Signal(w_max)
        quota = Signal(count_bits)
        row = Signal(row_bits)
        row_start = Signal(pos_bits)
        row_end = Signal(pos_bits)
        candidate = Signal(group_bits)
        scan = Signal(pos_bits)
        scan_quota = Signal(count_bits)
        conflict = Signal()
        error = Signal()

        m.d.comb += [
            self.error.eq(error),
            self.state.eq(lfsr.state),
            lfsr.seed.eq(self.seed),
            bus.w_data.eq(candidate),  # a regrown word: {group, weight 0}
        ]

        reads_in_flight = Signal()
        m.d.comb += reads_in_flight.eq(sr_valid | Cat(*flight).any())

        def shift_reads(issue, address) -> None:
            """Advance the reads in flight by one cycle; ``issue`` a read of ``address`` now."""
            m.d.sync += [flight[0].eq(issue), flight_pos[0].eq(address), sr_valid.eq(flight[-1])]
            m.d.sync += [sr_pos.eq(flight_pos[-1])]
            for i in range(1, READ_LATENCY):
                m.d.sync += [flight[i].eq(flight[i - 1]), flight_pos[i].eq(flight_pos[i - 1])]

        def next_word() -> None:
            """Move past word ``pos``: to the next row at the row's end, else to its next word."""
            m.d.sync += pos.eq(pos + 1)
            with m.If(pos + 1 == row_end):
                m.d.sync += row.eq(row + 1)
                m.next = "ROW"
            with m.Else():
                m.next = "WORD"

        with m.FSM() as fsm:
            with m.State("IDLE"), m.If(self.start):
                refuse = (self.layer >= len(plans)) | (self.seed == 0)
                m.d.comb += lfsr.load.eq(1)
                m.d.sync += [
                    layer.eq(self.layer),
                    k.eq(self.k),
                    remaining.eq(self.k),
                    lane.eq(0),
                    pos.eq(0),
                    error.eq(0),
                ]
                with m.If(refuse | (self.k > _table([p.layer.nnz for p in plans], K_BITS)(self.layer))):
                    m.d.sync += error.eq(1)
                    m.next = "FINISH"
                with m.Elif(self.k == 0):
                    m.next = "FINISH"
                with m.Else():
                    m.next = "HIST"

            with m.State("HIST"):
                issue = (lane < lanes) & (pos < lane_nnz)
                m.d.comb += [bus.mem.eq(syn_id), bus.addr.eq(pos), bus.r_en.eq(issue), hist_enable.eq(1)]
                shift_reads(issue, pos)
                with m.If(issue):
                    with m.If(pos + 1 == lane_nnz):
                        m.d.sync += [pos.eq(0), lane.eq(lane + 1)]
                    with m.Else():
                        m.d.sync += pos.eq(pos + 1)
                with m.Elif(lane < lanes):
                    m.d.sync += lane.eq(lane + 1)  # a lane without synapses
                in_flight = reads_in_flight | hist_busy
                with m.If((lane == lanes) & ~in_flight):
                    m.d.sync += [index.eq(0), below.eq(0), found.eq(0), t1_valid.eq(0), t2_valid.eq(0)]
                    m.next = "THRESHOLD"

            with m.State("THRESHOLD"):
                issue = index < magnitudes
                m.d.comb += [hist_rd.addr.eq(index), hist_rd.en.eq(issue)]
                m.d.sync += [
                    t1_valid.eq(issue),
                    t1_index.eq(index),
                    t2_valid.eq(t1_valid),
                    t2_count.eq(hist_rd.data),
                    threshold_index.eq(t1_index),
                ]
                with m.If(issue):
                    m.d.sync += index.eq(index + 1)
                with m.If(t1_valid):
                    m.d.comb += [hist_wr.addr.eq(t1_index), hist_wr.data.eq(0), hist_wr.en.eq(1)]
                with m.If(t2_valid):
                    with m.If(~found & (below + t2_count >= k)):
                        m.d.sync += [found.eq(1), threshold.eq(threshold_index), quota.eq(k - below)]
                    with m.Elif(~found):
                        m.d.sync += below.eq(below + t2_count)
                with m.If(~issue & ~t1_valid & ~t2_valid):
                    m.d.sync += [lane.eq(0), row.eq(0), pos.eq(0)]
                    m.next = "ROW"

            with m.State("ROW"):
                with m.If(lane == lanes):
                    m.next = "FINISH"  # not reached: k <= nnz words are pruned before
                with m.Elif((row == n_in) | (pos == lane_nnz)):
                    m.d.sync += [lane.eq(lane + 1), row.eq(0), pos.eq(0)]
                with m.Else():
                    m.d.comb += [bus.mem.eq(ptr_id), bus.addr.eq(row + 1), bus.r_en.eq(1)]
                    m.next = "ROW_WAIT1"

            wait_states(m, "ROW_WAIT", "ROW_END")

            with m.State("ROW_END"):
                pointer = rdata[:pos_bits] & ptr_mask  # without the empty-row flag
                m.d.sync += [row_start.eq(pos), row_end.eq(pointer)]
                with m.If(pointer == pos):
                    m.d.sync += row.eq(row + 1)
                    m.next = "ROW"
                with m.Else():
                    m.next = "WORD"

            with m.State("WORD"):
                m.d.comb += [bus.mem.eq(syn_id), bus.addr.eq(pos), bus.r_en.eq(1)]
                m.next = "WORD_WAIT1"

            wait_states(m, "WORD_WAIT", "JUDGE")

            with m.State("JUDGE"):
                tie = word_mag == threshold
                with m.If((word_mag < threshold) | (tie & (quota != 0))):
                    with m.If(tie):
                        m.d.sync += quota.eq(quota - 1)
                    m.next = "DRAW"
                with m.Else():
                    next_word()

            with m.State("DRAW"):
                m.d.comb += [lfsr.step.eq(1)]
                drawn = lfsr.following[:group_bits] & group_mask
                column = Signal(group_bits + lane_bits)  # g·L + b, never truncated
                m.d.comb += column.eq(drawn << lane_bits | lane[:lane_bits] if lanes > 1 else drawn)
                with m.If(column < n_out):
                    m.d.sync += [
                        candidate.eq(drawn),
                        scan.eq(row_start),
                        scan_quota.eq(quota),
                        conflict.eq(0),
                        sr_valid.eq(0),
                        *(flag.eq(0) for flag in flight),
                    ]
                    m.next = "CHECK"

            with m.State("CHECK"):
                issue = scan < row_end
                m.d.comb += [bus.mem.eq(syn_id), bus.addr.eq(scan), bus.r_en.eq(issue)]
                shift_reads(issue, scan)
                with m.If(issue):
                    m.d.sync += scan.eq(scan + 1)
                taken = Signal()
                tie = (word_mag == threshold) & (scan_quota != 0)
                with m.If(sr_pos < pos):
                    m.d.comb += taken.eq(1)
                with m.Elif(sr_pos > pos):
                    m.d.comb += taken.eq(~((word_mag < threshold) | tie))
                    with m.If(sr_valid & tie):
                        m.d.sync += scan_quota.eq(scan_quota - 1)
                with m.If(sr_valid & taken & (word_group == candidate)):
                    m.d.sync += conflict.eq(1)
                with m.If(~issue & ~reads_in_flight):
                    with m.If(conflict):
                        m.next = "DRAW"
                    with m.Else():
                        m.next = "WRITE"

            with m.State("WRITE"):
                m.d.comb += [bus.mem.eq(syn_id), bus.addr.eq(pos), bus.w_en.eq(1)]
                m.d.sync += remaining.eq(remaining - 1)
                with m.If(remaining == 1):
                    m.next = "FINISH"
                with m.Else():
                    next_word()

            with m.State("FINISH"):
                m.next = "IDLE"
        # Plain expressions of the state register (continuous assignments in Verilog, defined
        # from time 0 in every simulator, unlike outputs of a process that waits for a change).
        m.d.comb += [self.busy.eq(~fsm.ongoing("IDLE")), self.done.eq(fsm.ongoing("FINISH"))]
        return m
