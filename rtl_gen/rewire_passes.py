"""The rewiring unit's blocks, one per pass (:class:`esl_hw.rtl_gen.rewire.RewireUnit` wires them).

The unit's state machine sequences the passes; each block holds one pass's datapath and its
registers and is driven by the machine through ``enable``-like strobes: :class:`HistogramPass`
(``hist[|w|] += 1`` per word read, pipelined with forwarding), :class:`ThresholdPass` (the
pruning magnitude ``m`` and the tie quota, clearing the histogram), :class:`SelectionPass` (the
pruning rule: ``|w| < m``, or a tie while the quota lasts) and :class:`RegrowPass` (a new group:
draw, reject groups beyond the layer and groups taken in the row). :class:`LayerTables` (the
selected layer's numbers, its decoding of a synapse word) and :class:`ReadsInFlight` (which word
the unit's read-data register holds) serve them; :func:`rewire_widths` gives the shared widths.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from esl_hw.rtl_gen.memory_map import READ_LATENCY, bus_shape, memory_map, region_id
from esl_hw.rtl_gen.plan import LayerPlan, rewire_histogram_shape, unsigned_bits


@dataclass(frozen=True)
class RewireWidths:
    """Widths shared by the rewiring unit's blocks (:func:`rewire_widths`).

    ``magnitudes`` histogram counters of ``count_bits``; ``pos_bits`` a word position in a
    lane's synapse memory; ``row_bits`` a row (``0 .. n_in``); ``group_bits`` a bank-local
    neuron index; ``out_bits`` a neuron index ``g·L + b`` compared with ``n_out`` (one bit to
    spare); ``w_max`` the widest weight (a magnitude is ``w_max`` bits, ``2^(w_max-1)`` the
    largest); ``id_bits`` and ``data_bits`` the memory bus's id and data.
    """

    lanes: int
    lane_bits: int
    w_max: int
    magnitudes: int
    count_bits: int
    pos_bits: int
    row_bits: int
    group_bits: int
    out_bits: int
    id_bits: int
    data_bits: int


def rewire_widths(plans: list[LayerPlan]) -> RewireWidths:
    """The :class:`RewireWidths` of a core of ``plans`` (every ``w_bits`` within the unit's
    limit)."""
    magnitudes, count_bits = rewire_histogram_shape(plans)
    shape = bus_shape(memory_map(plans))
    return RewireWidths(
        lanes=plans[0].lanes,
        lane_bits=plans[0].lane_bits,
        w_max=max(plan.w_bits for plan in plans),
        magnitudes=magnitudes,
        count_bits=count_bits,
        pos_bits=max(plan.ptr_bits for plan in plans),
        row_bits=unsigned_bits(max(plan.n_in for plan in plans)),
        group_bits=max(plan.local_bits for plan in plans),
        out_bits=unsigned_bits(max(plan.n_out for plan in plans)) + 1,
        id_bits=shape.id_bits,
        data_bits=shape.data_bits,
    )


def check_widths(block, **widths: int) -> None:
    """Raise :class:`ValueError` naming the first of ``widths`` that is not a positive integer
    (``block``, being built, is then silenced: it is never elaborated)."""
    for name, value in widths.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            block._MustUse__silence = True  # never elaborated: no unused-elaboratable warning
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def table(values: list[int], bits: int):
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


def histogram_port_signature(magnitudes: int, count_bits: int) -> wiring.Signature:
    """The histogram memory's ports as a pass drives them: ``rd_addr``, ``rd_en`` out and
    ``rd_data`` in (the counter one cycle after ``rd_en``), ``wr_addr``, ``wr_data``, ``wr_en``
    out (written at the next clock edge)."""
    addr_bits = unsigned_bits(magnitudes - 1)
    return wiring.Signature(
        {
            "rd_addr": Out(addr_bits),
            "rd_en": Out(1),
            "rd_data": In(count_bits),
            "wr_addr": Out(addr_bits),
            "wr_data": Out(count_bits),
            "wr_en": Out(1),
        }
    )


class LayerTables(wiring.Component):
    """The selected layer's numbers (constant tables on ``layer`` and ``lane``) and its decoding
    of a synapse word ``{group, weight}``; combinational.

    Parameters
    ----------
    plans : list of LayerPlan
        The core's layers.

    Attributes
    ----------
    layer : In(bits(layers - 1))
        The selected layer (beyond the last: the tables give the last layer's numbers).
    lane : In(range(L + 1))
        The selected lane ``b`` (``L``: past the last lane; ``lane_nnz`` then wraps to lane 0).
    word : In(data_bits)
        A synapse word of the selected layer, as read from the memory bus.
    lane_nnz : Out(pos_bits)
        Synapses of lane ``b`` of the layer.
    n_in : Out(row_bits), n_out : Out(out_bits)
        The layer's inputs (rows) and neurons.
    group_mask : Out(group_bits)
        ``2^local_bits - 1``: the layer's bank-local neuron indices.
    ptr_mask : Out(pos_bits)
        ``2^ptr_bits - 1``: a pointer word without its empty-row flag.
    ptr_id, syn_id : Out(id_bits)
        Bus ids of lane ``b``'s pointer and synapse memories.
    group : Out(group_bits)
        The word's group (its low ``local_bits``).
    magnitude : Out(w_max)
        ``|w|`` of the word's weight (signed, ``w_bits`` above the group).
    """

    def __init__(self, plans: list[LayerPlan]) -> None:
        if not plans or not all(isinstance(plan, LayerPlan) for plan in plans):
            self._MustUse__silence = True  # never elaborated: no unused-elaboratable warning
            raise TypeError(f"plans must be a non-empty list of LayerPlan, got {plans!r}")
        self.plans = plans
        self.widths = widths = rewire_widths(plans)
        super().__init__(
            {
                "layer": In(unsigned_bits(len(plans) - 1)),
                "lane": In(range(widths.lanes + 1)),
                "word": In(widths.data_bits),
                "lane_nnz": Out(widths.pos_bits),
                "n_in": Out(widths.row_bits),
                "n_out": Out(widths.out_bits),
                "group_mask": Out(widths.group_bits),
                "ptr_mask": Out(widths.pos_bits),
                "ptr_id": Out(widths.id_bits),
                "syn_id": Out(widths.id_bits),
                "group": Out(widths.group_bits),
                "magnitude": Out(widths.w_max),
            }
        )

    def elaborate(self, platform) -> Module:
        plans, widths = self.plans, self.widths
        lanes, layer, lane = widths.lanes, self.layer, self.lane
        m = Module()
        lane_nnz = table([plan.lane_nnz(b) for plan in plans for b in range(lanes)], widths.pos_bits)
        region = {kind: [region_id(plans, plan.index, kind, 0) for plan in plans] for kind in ("ptr", "syn")}
        m.d.comb += [
            self.lane_nnz.eq(lane_nnz(layer * lanes + lane[: widths.lane_bits] if lanes > 1 else layer)),
            self.n_in.eq(table([plan.n_in for plan in plans], widths.row_bits)(layer)),
            self.n_out.eq(table([plan.n_out for plan in plans], widths.out_bits)(layer)),
            self.group_mask.eq(
                table([(1 << plan.local_bits) - 1 for plan in plans], widths.group_bits)(layer)
            ),
            self.ptr_mask.eq(table([(1 << plan.ptr_bits) - 1 for plan in plans], widths.pos_bits)(layer)),
            self.ptr_id.eq(table(region["ptr"], widths.id_bits)(layer) + lane),
            self.syn_id.eq(table(region["syn"], widths.id_bits)(layer) + lane),
        ]
        weight = Signal(signed(widths.w_max))
        with m.Switch(layer):
            for plan in plans:
                with m.Case(plan.index):
                    low, high = plan.local_bits, plan.local_bits + plan.w_bits
                    m.d.comb += [self.group.eq(self.word[:low]), weight.eq(self.word[low:high].as_signed())]
        m.d.comb += self.magnitude.eq(Mux(weight < 0, -weight, weight))
        return m


class ReadsInFlight(wiring.Component):
    """The bus reads in flight: whether the unit's read-data register holds the word of a read.

    While ``shift`` is held every cycle, a read issued in cycle ``t`` (``issue``) has its word in
    the register in cycle ``t + READ_LATENCY + 1``: then ``valid`` is set. Without ``shift``
    every read stands still (the unit uses this only while none is in flight). Reads come back in
    the order they were issued, so a pass that issues consecutive addresses knows each word's
    address by counting the words (:class:`RegrowPass`); no address travels with a read.

    Attributes
    ----------
    shift : In(1)
        Advance every read by one cycle.
    issue : In(1)
        With ``shift``: a read is issued this cycle.
    clear : In(1)
        Forget every read in flight and in the register (never with ``shift``).
    valid : Out(1)
        The register holds the word of a read.
    busy : Out(1)
        A read is in flight or its word in the register (``valid``).
    """

    def __init__(self) -> None:
        super().__init__({"shift": In(1), "issue": In(1), "clear": In(1), "valid": Out(1), "busy": Out(1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        # flight[i] was issued i + 1 cycles ago; flight[-1]'s data is on the bus.
        flight = [Signal(name=f"flight{i + 1}") for i in range(READ_LATENCY)]
        with m.If(self.shift):
            m.d.sync += [flight[0].eq(self.issue), self.valid.eq(flight[-1])]
            m.d.sync += [flight[i].eq(flight[i - 1]) for i in range(1, READ_LATENCY)]
        with m.If(self.clear):
            m.d.sync += [self.valid.eq(0), *(flag.eq(0) for flag in flight)]
        m.d.comb += self.busy.eq(self.valid | Cat(*flight).any())
        return m


class HistogramPass(wiring.Component):
    """Histogram pass: ``hist[|w|] <- hist[|w|] + 1`` for each word, one per cycle, no stall::

        cycle h   : read hist[mag]                  (h1: ``mag`` registered from ``word_mag``)
        cycle h+1 : the count at the read port      (h2)
        cycle h+2 : hist[mag] <- x + 1              (h3; x registered from h2)

    The read of cycle ``h`` misses the writes of cycles ``h`` and ``h+1``, so h3 takes ``x``
    from the count written one (``w1``) or two (``w2``) cycles earlier when it went to the same
    magnitude, else from the memory (as :func:`esl_hw.rtl_gen.integrate.read_modify_write`): the
    block-RAM output goes straight into a register.

    Parameters
    ----------
    magnitudes : int
        Counters of the histogram (``2^(w_max-1) + 1``).
    count_bits : int
        Width of a counter.
    w_max : int
        Width of a magnitude.

    Attributes
    ----------
    enable : In(1)
        The pass runs: ``word_valid`` is taken this cycle.
    word_valid : In(1)
        A word's magnitude is on ``word_mag`` (counted when ``enable``).
    word_mag : In(w_max)
        Its magnitude ``|w|``.
    hist : Out(histogram_port_signature(magnitudes, count_bits))
        The histogram memory's ports (to be connected while the pass runs).
    busy : Out(1)
        A counted word has not been written back yet.
    """

    def __init__(self, magnitudes: int, count_bits: int, w_max: int) -> None:
        check_widths(self, magnitudes=magnitudes, count_bits=count_bits, w_max=w_max)
        self.count_bits = count_bits
        super().__init__(
            {
                "enable": In(1),
                "word_valid": In(1),
                "word_mag": In(w_max),
                "hist": Out(histogram_port_signature(magnitudes, count_bits)),
                "busy": Out(1),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        width, hist = self.count_bits, self.hist
        stages = ("h1", "h2", "h3", "w1")
        h1_valid, h2_valid, h3_valid, w1_valid = (Signal(name=f"{i}_valid") for i in stages)
        h1_mag, h2_mag, h3_mag, w1_mag = (Signal(len(self.word_mag), name=f"{i}_mag") for i in stages)
        h3_data = Signal(width, name="h3_data", reset_less=True)
        h3_from1 = Signal(name="h3_from1")
        h3_from2 = Signal(name="h3_from2")
        w1_sum = Signal(width, name="w1_sum")
        w2_sum = Signal(width, name="w2_sum")
        total = Signal(width, name="sum")
        m.d.sync += [
            h1_valid.eq(self.word_valid & self.enable),
            h1_mag.eq(self.word_mag),
            h2_valid.eq(h1_valid),
            h2_mag.eq(h1_mag),
            h3_valid.eq(h2_valid),
            h3_mag.eq(h2_mag),
            h3_data.eq(hist.rd_data),
            h3_from1.eq(h3_valid & (h3_mag == h2_mag)),
            h3_from2.eq(w1_valid & (w1_mag == h2_mag)),
            w1_valid.eq(h3_valid),
            w1_mag.eq(h3_mag),
            w1_sum.eq(total),
            w2_sum.eq(w1_sum),
        ]
        m.d.comb += [
            hist.rd_addr.eq(h1_mag),
            hist.rd_en.eq(h1_valid),
            hist.wr_addr.eq(h3_mag),
            hist.wr_data.eq(total),
            hist.wr_en.eq(h3_valid),
            total.eq(Mux(h3_from1, w1_sum, Mux(h3_from2, w2_sum, h3_data)) + 1),
            self.busy.eq(h1_valid | h2_valid | h3_valid),
        ]
        return m


class ThresholdPass(wiring.Component):
    """Threshold pass: the pruning magnitude ``m`` and the tie quota from the histogram.

    Reads ``hist[0]``, ``hist[1]``, … one counter per cycle, clears each one the cycle after
    its read and, with the count registered (``t2``), adds it up: the first magnitude ``m`` with
    ``count(|w| <= m) >= k`` pulses ``found`` with ``magnitude = m`` and ``quota = k - count(|w|
    < m)``, the ties to prune. ``done`` is set after ``magnitudes + 2`` cycles with ``enable``
    (the last counter read, cleared and counted). One register holds ``k - count(|w| < m)``,
    counted down (one subtractor and one comparator with the count, no adder beside them).

    Parameters
    ----------
    magnitudes : int
        Counters of the histogram.
    count_bits : int
        Width of a counter (and of ``k``).
    w_max : int
        Width of a magnitude.

    Attributes
    ----------
    start : In(1)
        Restart the scan at ``hist[0]`` (never with ``enable``).
    enable : In(1)
        The pass runs this cycle.
    k : In(count_bits)
        Synapses to prune (taken with ``start``).
    hist : Out(histogram_port_signature(magnitudes, count_bits))
        The histogram memory's ports (to be connected while the pass runs).
    found : Out(1)
        ``magnitude`` and ``quota`` are the result (one cycle per scan, none when ``k`` is
        beyond the total count).
    magnitude : Out(w_max)
        The magnitude ``m`` counted this cycle.
    quota : Out(count_bits)
        ``k`` less the words below ``m`` (valid with ``found``).
    done : Out(1)
        Every counter has been read, cleared and counted (the pass is over).
    """

    def __init__(self, magnitudes: int, count_bits: int, w_max: int) -> None:
        check_widths(self, magnitudes=magnitudes, count_bits=count_bits, w_max=w_max)
        self.magnitudes = magnitudes
        self.count_bits = count_bits
        super().__init__(
            {
                "start": In(1),
                "enable": In(1),
                "k": In(count_bits),
                "hist": Out(histogram_port_signature(magnitudes, count_bits)),
                "found": Out(1),
                "magnitude": Out(w_max),
                "quota": Out(count_bits),
                "done": Out(1),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        magnitudes, hist = self.magnitudes, self.hist
        index = Signal(range(magnitudes + 1))
        t1_valid = Signal()  # hist[t1_index] at the read port
        t1_index = Signal(range(magnitudes))
        t2_valid = Signal()  # its count registered (t2_count), at t2_index
        t2_index = Signal(range(magnitudes))
        t2_count = Signal(self.count_bits)
        left = Signal(self.count_bits)  # k - count(|w| < t2_index): at least 1 until found
        found = Signal()
        issue = index < magnitudes
        m.d.comb += [
            hist.rd_addr.eq(index),
            hist.rd_en.eq(issue),
            hist.wr_addr.eq(t1_index),
            hist.wr_data.eq(0),
            hist.wr_en.eq(t1_valid),
            self.found.eq(self.enable & t2_valid & ~found & (t2_count >= left)),
            self.magnitude.eq(t2_index),
            self.quota.eq(left),
            self.done.eq(~issue & ~t1_valid & ~t2_valid),
        ]
        with m.If(self.enable):
            m.d.sync += [
                t1_valid.eq(issue),
                t1_index.eq(index),
                t2_valid.eq(t1_valid),
                t2_count.eq(hist.rd_data),
                t2_index.eq(t1_index),
            ]
            with m.If(issue):
                m.d.sync += index.eq(index + 1)
            with m.If(self.found):
                m.d.sync += found.eq(1)
            with m.Elif(t2_valid & ~found):
                m.d.sync += left.eq(left - t2_count)
        with m.If(self.start):
            m.d.sync += [index.eq(0), left.eq(self.k), found.eq(0), t1_valid.eq(0), t2_valid.eq(0)]
        return m


class SelectionPass(wiring.Component):
    """Selection pass's rule: a word is pruned when ``|w| < m``, or ``|w| = m`` while the tie
    quota lasts; judging a pruned tie uses one of the quota.

    Parameters
    ----------
    count_bits : int
        Width of the quota.
    w_max : int
        Width of a magnitude.

    Attributes
    ----------
    load : In(1)
        Take ``load_threshold`` and ``load_quota`` (from :class:`ThresholdPass`).
    load_threshold : In(w_max), load_quota : In(count_bits)
        The pruning magnitude ``m`` and the ties to prune.
    judge : In(1)
        The word on ``magnitude`` is judged this cycle (never with ``load``).
    magnitude : In(w_max)
        ``|w|`` of the word.
    prune : Out(1)
        The word is pruned (``|w| < m``, or ``|w| = m`` and ``quota > 0``).
    threshold : Out(w_max), quota : Out(count_bits)
        ``m`` and the ties still to prune.
    """

    def __init__(self, count_bits: int, w_max: int) -> None:
        check_widths(self, count_bits=count_bits, w_max=w_max)
        super().__init__(
            {
                "load": In(1),
                "load_threshold": In(w_max),
                "load_quota": In(count_bits),
                "judge": In(1),
                "magnitude": In(w_max),
                "prune": Out(1),
                "threshold": Out(w_max),
                "quota": Out(count_bits),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        tie = self.magnitude == self.threshold
        m.d.comb += self.prune.eq((self.magnitude < self.threshold) | (tie & (self.quota != 0)))
        with m.If(self.load):
            m.d.sync += [self.threshold.eq(self.load_threshold), self.quota.eq(self.load_quota)]
        with m.If(self.judge & self.prune & tie):
            m.d.sync += self.quota.eq(self.quota - 1)
        return m


class RegrowPass(wiring.Component):
    """Regrow pass: a pruned word's new group, drawn until it is a neuron of the layer and not
    taken in the row.

    ``draw``: ``g = random & group_mask`` is accepted when ``g·L + b < n_out`` (``accept``);
    then ``candidate = g`` and a check of the row starts. ``check``: the row's words
    ``row_start .. row_end - 1`` are read in order (``issue``, ``addr``, one per cycle) and, as
    each word comes back (``word_valid``; in order, so the ``q``-th word back is at
    ``row_start + q``), ``conflict`` is set when it is taken and has group ``g``. Taken: ``q <
    pos`` (kept, or regrown before), or ``q > pos`` and not to be pruned under
    :class:`SelectionPass`'s rule with the quota left after ``pos``; the word at ``pos`` itself
    (being regrown) never is. Which of the three a word is comes from a count of the words back
    and one equality with ``pos`` (``row_start <= pos < row_end``), not from magnitude comparators.

    Parameters
    ----------
    widths : RewireWidths
        The unit's widths (:func:`rewire_widths`).

    Attributes
    ----------
    draw : In(1)
        A group is drawn this cycle (a new candidate when ``accept``).
    random : In(group_bits)
        The draw's random bits (the LFSR's next state).
    group_mask : In(group_bits), n_out : In(out_bits)
        The layer's bank-local indices and neurons.
    lane : In(range(L + 1))
        The lane ``b`` of the row.
    accept : Out(1)
        ``g·L + b < n_out``.
    row_start, row_end, pos : In(pos_bits)
        The row's words and the word being regrown.
    threshold : In(w_max), quota : In(count_bits)
        The pruning rule after judging ``pos``.
    check : In(1)
        The check runs this cycle (after an accepted draw; never with ``draw``).
    issue : Out(1), addr : Out(pos_bits)
        Read the word at ``addr`` (while words are left).
    word_valid : In(1)
        The next word of the row is on ``word_group`` and ``word_mag``.
    word_group : In(group_bits), word_mag : In(w_max)
        Its group and magnitude.
    conflict : Out(1)
        A taken word of the row has group ``candidate``.
    candidate : Out(group_bits)
        The group drawn last.
    """

    def __init__(self, widths: RewireWidths) -> None:
        self.widths = widths
        super().__init__(
            {
                "draw": In(1),
                "random": In(widths.group_bits),
                "group_mask": In(widths.group_bits),
                "n_out": In(widths.out_bits),
                "lane": In(range(widths.lanes + 1)),
                "accept": Out(1),
                "row_start": In(widths.pos_bits),
                "row_end": In(widths.pos_bits),
                "pos": In(widths.pos_bits),
                "threshold": In(widths.w_max),
                "quota": In(widths.count_bits),
                "check": In(1),
                "issue": Out(1),
                "addr": Out(widths.pos_bits),
                "word_valid": In(1),
                "word_group": In(widths.group_bits),
                "word_mag": In(widths.w_max),
                "conflict": Out(1),
                "candidate": Out(widths.group_bits),
            }
        )

    def elaborate(self, platform) -> Module:
        widths = self.widths
        m = Module()
        drawn = self.random & self.group_mask
        column = Signal(widths.group_bits + widths.lane_bits)  # g·L + b, never truncated
        lane = self.lane[: widths.lane_bits]
        m.d.comb += column.eq(drawn << widths.lane_bits | lane if widths.lanes > 1 else drawn)
        m.d.comb += self.accept.eq(column < self.n_out)
        scan = Signal(widths.pos_bits)
        scan_quota = Signal(widths.count_bits)
        back = Signal(widths.pos_bits)  # the position of the next word to come back
        passed = Signal()  # the word at pos has come back: the words after it are judged
        m.d.comb += [self.issue.eq(scan < self.row_end), self.addr.eq(scan)]
        with m.If(self.draw & self.accept):
            m.d.sync += [
                self.candidate.eq(drawn),
                scan.eq(self.row_start),
                scan_quota.eq(self.quota),
                self.conflict.eq(0),
                back.eq(self.row_start),
                passed.eq(0),
            ]
        # Elif: one tree of multiplexers per register, so synthesis finds its clock enable.
        with m.Elif(self.check):
            with m.If(self.issue):
                m.d.sync += scan.eq(scan + 1)
            taken = Signal()
            at_pos = back == self.pos
            tie = (self.word_mag == self.threshold) & (scan_quota != 0)
            with m.If(passed):  # q > pos
                m.d.comb += taken.eq(~((self.word_mag < self.threshold) | tie))
                with m.If(self.word_valid & tie):
                    m.d.sync += scan_quota.eq(scan_quota - 1)
            with m.Elif(~at_pos):  # q < pos
                m.d.comb += taken.eq(1)
            with m.If(self.word_valid):
                m.d.sync += back.eq(back + 1)
                with m.If(at_pos):
                    m.d.sync += passed.eq(1)
            with m.If(self.word_valid & taken & (self.word_group == self.candidate)):
                m.d.sync += self.conflict.eq(1)
        return m
