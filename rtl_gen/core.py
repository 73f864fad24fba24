"""The whole event-driven SNN core: layer cores chained by spike FIFOs, plus performance counters.

::

    events ──► LIF core 0 ──► FIFO ──► LIF core 1 ──► FIFO ──► … ──► output core ──► outputs, done

The host sends, per time step, the indices of the spiking inputs and then one end-of-step marker;
after ``T`` markers the output core reads out the accumulators, the prediction and ``done``.

With the hardware option ``streaming`` (:class:`~esl_hw.rtl_gen.hardware.HardwareConfig`, on by
default) inferences stream: the next inference's events are accepted as soon as the last
end-of-step marker of the one before has been, while the later layers finish it; at most
:data:`MAX_IN_FLIGHT` (2) are in flight (the first word of a third waits for the oldest's
``done``). Results (outputs, ``done``, prediction, counters) come out one inference at a time, in
order. A host that waits for ``done`` before the next events sees one inference at a time.
Performance counters then count each inference's own work: every layer core tags its strobes
with the parity of the inference they belong to, and two running totals per counter keep the two
inferences in flight apart; ``cycles`` runs from the inference's first accepted input word to
its final output word (inclusive).

Without ``streaming`` the core takes one inference at a time: the host waits for ``done`` before
it sends the next inference's events, and one running total per counter counts from the first
input event an idle core accepts to the final output word (inclusive). Results, counters and
cycles of an inference are the same either way; the core without streaming is about 840 iCE40
logic cells smaller on a 784-800-10 model (no parity tags, no second totals).

Either way the counters are latched into the ``perf_*`` ports when ``done`` pulses (two cycles
after the final output word, see :data:`COUNTER_STAGES`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from amaranth import Module, Mux, Signal, signed
from amaranth.back import verilog
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from esl_hw.artifact import Model
from esl_hw.errors import EslError
from esl_hw.rtl_gen.integrate import event_layout
from esl_hw.rtl_gen.memory_map import READ_LATENCY, add_bus_decoder, bus_signature
from esl_hw.rtl_gen.neuron_kinds import build_layer_core, layer_core_kind
from esl_hw.rtl_gen.output import output_layout
from esl_hw.rtl_gen.plan import COUNTER_BITS, CorePlan, as_plan, unsigned_bits
from esl_hw.rtl_gen.rewire import K_BITS, RewireUnit

#: Counters that sum a per-cycle strobe of every layer core that has it.
SUMMED_COUNTERS = (
    "sops",
    "ptr_reads",
    "syn_reads",
    "cur_reads",
    "cur_writes",
    "pot_reads",
    "pot_writes",
    "acc_reads",
    "acc_writes",
)


def counter_names(model: Model) -> list[str]:
    """Names of the ``perf_<name>`` counter ports of the core generated for ``model``."""
    hidden = [f"spikes{index}" for index in range(len(model.hidden_layers))]
    return ["cycles", *SUMMED_COUNTERS, *hidden]


class SNNCore(wiring.Component):
    """Event-driven LIF core of a plan: ``L`` lanes per layer, memories initialised from the model.

    ``SNNCore(plan)`` builds the core of a :class:`~esl_hw.rtl_gen.plan.CorePlan` (model plus
    :class:`~esl_hw.rtl_gen.hardware.HardwareConfig`, :func:`~esl_hw.rtl_gen.plan.plan_model`);
    ``SNNCore(model, lanes=…, …)`` plans the model itself with the options given (the older form:
    each option unset or ``None`` takes the configuration's default, the lanes the model's own).

    Parameters
    ----------
    model : CorePlan or Model
        The plan, or a validated artifact (any number of LIF layers, any sizes and widths within
        :data:`esl_hw.rtl_gen.plan.LIMITS`).
    lanes, fifo_depth, lane_fifo_depth, spike_fifo_depth, rewiring, synapse_memory, streaming
        The options of :class:`~esl_hw.rtl_gen.hardware.HardwareConfig`: lanes per layer core
        ``L`` (a power of two; ``L`` synaptic operations and ``L`` neurons of the sweep per
        cycle, memories banked by post-synaptic index mod ``L``), the depths of the spike FIFOs
        between layers, of each lane's event FIFO and of each LIF layer's spike-mask FIFO
        (``None``: one whole step, ``max(groups, 6) + 2`` words, so a sweep never waits for the next
        layer), the rewiring unit (:class:`esl_hw.rtl_gen.rewire.RewireUnit` and its request
        ports; ``None``: whenever every layer is within its limits, ``w_bits <= 8``; ``True``
        raises :class:`EslError` naming the limit otherwise) and where the synapse memories live
        (``block``: block RAM initialised by the bitstream; ``spram``: iCE40 SPRAM, written by
        the host before the first inference; the simulation starts with it loaded), and whether
        inferences stream (module docstring; ``None``: the default, on). Given with a plan, each
        must be the plan's own.

    Attributes
    ----------
    events : In(stream.Signature(event_layout(bits(n_in - 1))))
        Input events: payload ``index`` (input neuron) and ``eos`` (end-of-step marker); ``T``
        markers per inference. With ``streaming`` the next inference's events may follow the
        last marker at once (not ready for a third inference's first word while two are in
        flight); without, the host waits for ``done`` before the next inference's events.
    outputs : Out(stream.Signature(output_layout(bits(n_out - 1), model.acc_bits())))
        Output accumulators ``{index, value, last}`` after each inference.
    done : Out(1)
        Pulses two cycles after the final output word of an inference is accepted, with the
        counters latched (once per inference, in the order the inferences were sent).
    prediction : Out(bits(n_out - 1))
        Argmax of the last inference's outputs (ties to the lowest index).
    tap<l>_valid, tap<l>_group, tap<l>_step, tap<l>_potential, tap<l>_spike
        Debug tap of LIF layer ``l``, ``L`` neurons wide: bit ``k`` of ``valid`` says that neuron
        ``group·L + k`` is swept this cycle (once per neuron per step); ``step``; per lane its
        potential after the step's reset (``L`` packed ``v_bits`` signed words, lane 0 lowest) and
        its spike bit.
    perf_<name> : Out(32)
        Counters of the last completed inference (its own work, also when with ``streaming`` the
        next one overlapped it), ``name`` in :func:`counter_names`: ``cycles`` (latency, first accepted
        input word to final output word, inclusive),
        ``sops`` (synaptic operations), reads and writes of the pointer (``ptr``), synapse
        (``syn``), current (``cur``), potential (``pot``) and accumulator (``acc``) memories, and
        ``spikes<l>`` per LIF layer.
    idle : Out(1)
        No inference in flight and no rewiring in progress: host accesses and rewire requests
        are accepted. A waiting request holds off the next inference's first word (with
        ``streaming``: not the rest of an inference already started, so a stream drains and the
        request is served).
    host_valid, host_write : In(1)
        A host memory access (a write when ``host_write``); it is accepted in a cycle with
        ``idle`` (``host_ready``) and reaches its memory ``BUS_STAGES`` (2) cycles later, in
        order with the accesses before it; input events are held off while it waits and until
        it has reached its memory.
    host_mem, host_addr : In
        Memory id and word address (:mod:`esl_hw.rtl_gen.memory_map`, ``self.regions``).
    host_wdata : In(data_bits)
        Write data (the memory keeps the low ``width`` bits).
    host_ready : Out(1)
        The access is performed this cycle (``host_valid & idle``).
    host_rvalid : Out(1), host_rdata : Out(data_bits)
        ``READ_LATENCY`` (5) cycles after an accepted read: the word, zero-extended (0 off the
        map); reads may follow each other every cycle.
    rewire_start : In(1)
        With ``idle``: start a prune-and-regrow of layer ``rewire_layer`` with ``rewire_k``
        synapses and LFSR seed ``rewire_seed`` (only with ``rewiring``).
    rewire_layer : In(bits(layers - 1)), rewire_k : In(32), rewire_seed : In(32)
        The request (sampled with ``rewire_start``).
    rewire_busy, rewire_done, rewire_error : Out(1)
        Update running; pulse at its end; the last request was refused (``k`` above the layer's
        synapse count, unknown layer, seed 0: memory untouched).
    rewire_state : Out(32)
        The LFSR state after the last update's final draw (carry it over as the next seed).
    """

    def __init__(
        self,
        model: CorePlan | Model,
        lanes: int | None = None,
        fifo_depth: int | None = None,
        lane_fifo_depth: int | None = None,
        spike_fifo_depth: int | None = None,
        rewiring: bool | None = None,
        synapse_memory: str | None = None,
        streaming: bool | None = None,
    ) -> None:
        options = {"fifo_depth": fifo_depth, "lane_fifo_depth": lane_fifo_depth}
        options.update(spike_fifo_depth=spike_fifo_depth, rewiring=rewiring, synapse_memory=synapse_memory)
        options.update(streaming=streaming)
        try:
            plan = as_plan(model, lanes, **options)
        except (TypeError, EslError):
            self._MustUse__silence = True  # never elaborated: no unused-elaboratable warning
            raise
        config = plan.config
        self.plan = plan
        self.plans = plan  # the layer plans (a CorePlan is the sequence of them)
        self.model = plan.model
        self.lanes = lanes = plan.lanes
        self.fifo_depth = config.fifo_depth
        self.lane_fifo_depth = config.lane_fifo_depth
        self.spike_fifo_depth = config.spike_fifo_depth
        self.synapse_memory = config.synapse_memory
        self.rewiring = plan.rewiring
        self.streaming = config.streaming
        self.regions = plan.regions
        self.bus_shape = shape = plan.bus_shape
        model = plan.model
        first, last = self.plans[0], self.plans[-1]
        members = {
            "events": In(stream.Signature(event_layout(first.in_index_bits))),
            "outputs": Out(stream.Signature(output_layout(last.out_index_bits, last.acc_bits))),
            "done": Out(1),
            "prediction": Out(last.out_index_bits),
        }
        for plan in self.plans[:-1]:
            tap = f"tap{plan.index}_"
            members[tap + "valid"] = Out(lanes)
            members[tap + "group"] = Out(plan.local_bits)
            members[tap + "step"] = Out(unsigned_bits(model.timesteps - 1))
            members[tap + "potential"] = Out(data.ArrayLayout(signed(plan.layer.v_bits), lanes))
            members[tap + "spike"] = Out(lanes)
        for name in counter_names(model):
            members[f"perf_{name}"] = Out(COUNTER_BITS)
        members.update(
            idle=Out(1),
            host_valid=In(1),
            host_write=In(1),
            host_mem=In(shape.id_bits),
            host_addr=In(shape.addr_bits),
            host_wdata=In(shape.data_bits),
            host_ready=Out(1),
            host_rvalid=Out(1),
            host_rdata=Out(shape.data_bits),
        )
        if self.rewiring:
            members.update(
                rewire_start=In(1),
                rewire_layer=In(unsigned_bits(len(self.plans) - 1)),
                rewire_k=In(K_BITS),
                rewire_seed=In(32),
                rewire_busy=Out(1),
                rewire_done=Out(1),
                rewire_error=Out(1),
                rewire_state=Out(32),
            )
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        cores = []
        for plan in self.plans:
            core = build_layer_core(plan, self.lane_fifo_depth, self.spike_fifo_depth, self.streaming)
            m.submodules[f"layer{plan.index}"] = core
            cores.append(core)
        busy = Signal()  # an inference is in flight
        hold = Signal()  # input events are held off (rewiring, a host access waiting, two in flight)
        control = self._add_input_control(m) if self.streaming else None
        m.d.comb += [
            cores[0].events.payload.eq(self.events.payload),
            cores[0].events.valid.eq(self.events.valid & ~hold),
            self.events.ready.eq(cores[0].events.ready & ~hold),
        ]
        self._add_host_port(m, cores, busy, hold, control)
        for plan, core, downstream in zip(self.plans, cores, cores[1:], strict=False):
            width = plan.out_index_bits + 1
            queue = fifo.SyncFIFOBuffered(width=width, depth=self.fifo_depth)
            m.submodules[f"fifo{plan.index}"] = queue
            m.d.comb += [
                queue.w_data.eq(core.spikes.payload),
                queue.w_en.eq(core.spikes.valid),
                core.spikes.ready.eq(queue.w_rdy),
                downstream.events.payload.eq(queue.r_data),
                downstream.events.valid.eq(queue.r_rdy),
                queue.r_en.eq(downstream.events.ready),
            ]
            tap = f"tap{plan.index}_"
            for field in ("valid", "group", "step", "potential", "spike"):
                m.d.comb += getattr(self, tap + field).eq(getattr(core, "tap_" + field))
        output = cores[-1]
        wiring.connect(m, output.outputs, wiring.flipped(self.outputs))
        m.d.comb += self.prediction.eq(output.prediction)
        if control is None:
            self._add_counters(m, cores, busy, output.done)
        else:
            self._add_stream_counters(m, cores, busy, output.done, control)
        return m

    def _add_host_port(
        self, m: Module, cores: list, busy: Signal, hold: Signal, control: _InputControl | None
    ) -> None:
        """The memory bus from the host (or the rewiring unit while it runs) to every memory.

        Input events are held (``hold``) while rewiring, while a request waits for an idle core
        (without streaming, ``control`` ``None``: while the core is idle; with streaming: from
        the end of an inference's input on, so the inferences in flight finish and none starts)
        and while an accepted access is still in the bus decoder's registers, so the datapath
        never shares a memory port with an access; with streaming also while two inferences are
        in flight, at the first word of the next (``control.full``)."""
        bus = bus_signature(self.bus_shape).create(path=("bus",))
        accesses = []
        for plan, core in zip(self.plans, cores, strict=True):
            for name in layer_core_kind(plan.kind).accesses:
                accesses.extend(getattr(core, name)[lane] for lane in range(plan.lanes))
        pending = add_bus_decoder(m, wiring.flipped(bus), self.regions, accesses)
        rewiring = Signal()
        request = Signal()  # a host access or rewire request waits for the core to be idle
        m.d.comb += request.eq(self.host_valid)
        if self.rewiring:
            m.submodules.rewire = unit = RewireUnit(self.plans)
            m.d.comb += [
                unit.start.eq(self.rewire_start & self.idle),
                unit.layer.eq(self.rewire_layer),
                unit.k.eq(self.rewire_k),
                unit.seed.eq(self.rewire_seed),
                rewiring.eq(unit.busy),
                request.eq(self.host_valid | self.rewire_start),
                self.rewire_busy.eq(unit.busy),
                self.rewire_done.eq(unit.done),
                self.rewire_error.eq(unit.error),
                self.rewire_state.eq(unit.state),
            ]
        m.d.comb += [
            self.idle.eq(~busy & ~rewiring),
            self.host_ready.eq(self.host_valid & self.idle),
            hold.eq(rewiring | pending | self._held(request, busy, control)),
            self.host_rdata.eq(bus.r_data),
        ]
        read = self.host_ready & ~self.host_write
        m.d.comb += self.host_rvalid.eq(_delayed(m, read, READ_LATENCY, "host_read"))
        fields = ("mem", "addr", "r_en", "w_en", "w_data")
        host = (
            self.host_mem,
            self.host_addr,
            self.host_ready & ~self.host_write,
            self.host_ready & self.host_write,
            self.host_wdata,
        )
        if self.rewiring:
            m.d.comb += unit.bus.r_data.eq(bus.r_data)
            for name, value in zip(fields, host, strict=True):
                m.d.comb += getattr(bus, name).eq(Mux(rewiring, getattr(unit.bus, name), value))
        else:
            m.d.comb += [getattr(bus, name).eq(value) for name, value in zip(fields, host, strict=True)]

    @staticmethod
    def _held(request: Signal, busy: Signal, control: _InputControl | None):
        """Whether a waiting ``request`` (or, with streaming, two inferences in flight) holds the
        input events off (:meth:`_add_host_port`)."""
        if control is None:
            return request & ~busy
        return (request & ~control.inside) | control.full

    def _add_counters(self, m: Module, cores: list, busy: Signal, finish) -> None:
        """Counters over the strobes of every layer core, two register stages behind them (the
        core without streaming: one inference at a time).

        Stage 1 registers each core's per-cycle strobes, stage 2 their sum over the cores, so no
        adder follows a memory read or another adder in the same cycle. ``start``, ``finish`` (the
        output core's ``done``) and the counting window travel through the same two stages, so
        the totals are exactly those of the window; ``done`` is ``finish`` two cycles later, when
        the totals are latched. ``busy`` (created by :meth:`elaborate`, shared with the host port)
        is set by the first accepted event and cleared with ``done``, so the core is idle (host
        accesses, rewiring) exactly from ``done`` to the next inference's first event; the
        counting window is ``first`` .. ``latch`` either way.
        """
        start = Signal()
        m.d.comb += start.eq(self.events.valid & self.events.ready & ~busy)
        counting = _delayed(m, busy | start, COUNTER_STAGES, "count")
        first = _delayed(m, start, COUNTER_STAGES, "start")
        latch = _delayed(m, finish, COUNTER_STAGES, "finish")
        with m.If(start):
            m.d.sync += busy.eq(1)
        with m.If(latch):
            m.d.sync += busy.eq(0)
        m.d.comb += self.done.eq(latch)
        strobes: dict[str, object] = {"cycles": 1}
        for name in SUMMED_COUNTERS:
            terms = [getattr(core, f"stat_{name}") for core in cores if hasattr(core, f"stat_{name}")]
            strobes[name] = _registered_sum(m, terms, name) if terms else 0
        for index, core in enumerate(cores[:-1]):
            strobes[f"spikes{index}"] = _registered_sum(m, [core.stat_spike], f"spikes{index}")
        for name, strobe in strobes.items():
            running = Signal(COUNTER_BITS, name=f"run_{name}")
            total = running + strobe
            with m.If(latch):
                m.d.sync += [getattr(self, f"perf_{name}").eq(total), running.eq(0)]
            with m.Elif(first):
                m.d.sync += running.eq(strobe)
            with m.Elif(counting):
                m.d.sync += running.eq(total)

    def _add_stream_counters(
        self, m: Module, cores: list, busy: Signal, finish, control: _InputControl
    ) -> None:
        """Counters over the strobes of every layer core, two register stages behind them, kept
        per inference while two are in flight (the core with streaming).

        Stage 1 registers each core's per-cycle strobes, stage 2 their sum over the cores, so no
        adder follows a memory read or another adder in the same cycle; ``finish`` (the output
        core's ``done``) and the counting window travel through the same two stages, so the
        totals are exactly those of the window; ``done`` is ``finish`` two cycles later, when
        the totals are latched. Every layer core's strobes come in pairs, one per inference
        parity (``stat_*[p]``, :func:`~esl_hw.rtl_gen.strobes.strobe_pair`): the counters
        keep two running totals per name, and ``done`` latches (and clears) the one of the
        inference that completed (``done_parity``, toggled at every ``done``); the input admits
        an inference only while at most one other is in flight (:meth:`_add_input_control`),
        so two totals suffice. ``cycles`` is the inference's latency: the cycle of its first
        accepted word is stamped (one stamp per parity, from a free-running cycle count) and
        ``perf_cycles = now − stamp − COUNTER_STAGES + 1`` at the latch, the cycles from that
        word to the final output word, inclusive. ``busy`` (an inference is in flight; shared
        with the host port) gates the counting, so host accesses while idle count nowhere.
        """
        counting = _delayed(m, busy | control.start, COUNTER_STAGES, "count")
        latch = _delayed(m, finish, COUNTER_STAGES, "finish")
        with m.If(control.start & ~latch):
            m.d.sync += control.in_flight.eq(control.in_flight + 1)
        with m.Elif(latch & ~control.start):
            m.d.sync += control.in_flight.eq(control.in_flight - 1)
        m.d.comb += [busy.eq(control.in_flight != 0), self.done.eq(latch)]
        done_parity = Signal()  # parity of the next inference to complete
        with m.If(latch):
            m.d.sync += done_parity.eq(~done_parity)

        clock = Signal(COUNTER_BITS)  # free-running cycle count, for the latency stamps
        stamps = [Signal(COUNTER_BITS, name=f"stamp{parity}") for parity in range(2)]
        m.d.sync += clock.eq(clock + 1)
        for parity, stamp in enumerate(stamps):
            with m.If(control.start & (control.parity == parity)):
                m.d.sync += stamp.eq(clock)
        with m.If(latch):
            stamp = Mux(done_parity, stamps[1], stamps[0])
            m.d.sync += self.perf_cycles.eq(clock - stamp - (COUNTER_STAGES - 1))

        strobes: dict[str, tuple] = {}
        for name in SUMMED_COUNTERS:
            pairs = [getattr(core, f"stat_{name}") for core in cores if hasattr(core, f"stat_{name}")]
            strobes[name] = _registered_pair(m, pairs, name) if pairs else (0, 0)
        for index, core in enumerate(cores[:-1]):
            strobes[f"spikes{index}"] = _registered_pair(m, [core.stat_spike], f"spikes{index}")
        for name, pair in strobes.items():
            for parity, strobe in enumerate(pair):
                running = Signal(COUNTER_BITS, name=f"run_{name}_{parity}")
                total = running + strobe
                with m.If(latch & (done_parity == parity)):
                    m.d.sync += [getattr(self, f"perf_{name}").eq(total), running.eq(0)]
                with m.Elif(counting):
                    m.d.sync += running.eq(total)

    def _add_input_control(self, m: Module) -> _InputControl:
        """Where inferences begin and end on the input stream, and the limit of two in flight.

        The input is *inside* an inference (``inside``) from its first accepted word to its
        ``T``-th end-of-step marker; a word accepted outside one starts an inference
        (``start``, stamped with the input's inference parity). The first word of an inference
        is held off (``full``) while two are in flight (``in_flight``, kept by
        :meth:`_add_stream_counters`: +1 at ``start``, −1 at ``done``), so at most two inferences are
        in flight and two sets of running counters are enough; the next inference's words are
        otherwise accepted as soon as the last marker of the one before has been."""
        timesteps = self.model.timesteps
        control = _InputControl(
            start=Signal(name="inference_start"),
            parity=Signal(name="input_parity"),
            in_flight=Signal(range(MAX_IN_FLIGHT + 1), name="in_flight"),
            inside=Signal(name="input_inside"),
            full=Signal(name="input_full"),
        )
        accepted = self.events.valid & self.events.ready
        last_marker = Signal()
        markers = Signal(range(timesteps), name="input_markers")
        m.d.comb += [
            last_marker.eq(self.events.payload.eos & (markers == timesteps - 1)),
            control.start.eq(accepted & ~control.inside),
            control.full.eq(~control.inside & (control.in_flight == MAX_IN_FLIGHT)),
        ]
        with m.If(accepted):
            m.d.sync += control.inside.eq(~last_marker)
            with m.If(last_marker):
                m.d.sync += [markers.eq(0), control.parity.eq(~control.parity)]
            with m.Elif(self.events.payload.eos):
                m.d.sync += markers.eq(markers + 1)
        return control


@dataclass
class _InputControl:
    """The input stream's inference bookkeeping (:meth:`SNNCore._add_input_control`)."""

    start: Signal
    parity: Signal
    in_flight: Signal
    inside: Signal
    full: Signal


#: Inferences in flight at most: the next one is admitted while the one before finishes in the
#: later layers, and the counters keep one running total per inference parity.
MAX_IN_FLIGHT = 2


#: Register stages between the layer cores' strobes and the counters (and between the output
#: core's ``done`` and the core's ``done``).
COUNTER_STAGES = 2


def _delayed(m: Module, value, stages: int, name: str) -> Signal:
    """``value`` delayed by ``stages`` registers."""
    for stage in range(stages):
        delayed = Signal(name=f"{name}_d{stage + 1}")
        m.d.sync += delayed.eq(value)
        value = delayed
    return value


def _registered_sum(m: Module, terms: list, name: str) -> Signal:
    """``sum(terms)`` two cycles late: each term registered, then the sum registered."""
    staged = []
    for index, term in enumerate(terms):
        held = Signal.like(term, name=f"strobe_{name}_{index}")
        m.d.sync += held.eq(term)
        staged.append(held)
    total = sum(staged[1:], staged[0])
    summed = Signal(len(total), name=f"strobe_{name}")
    m.d.sync += summed.eq(total)
    return summed


def _registered_pair(m: Module, pairs: list, name: str) -> tuple[Signal, Signal]:
    """Per parity ``p``, ``Σ pair[p]`` over ``pairs`` (the layer cores' ``stat_*`` ports) two
    cycles late: each term registered, then the sum registered."""
    sums = []
    for parity in range(2):
        staged = []
        for index, pair in enumerate(pairs):
            term = pair[parity]
            held = Signal(len(term), name=f"strobe_{name}_{index}_{parity}")
            m.d.sync += held.eq(term)
            staged.append(held)
        total = sum(staged[1:], staged[0])
        summed = Signal(len(total), name=f"strobe_{name}_{parity}")
        m.d.sync += summed.eq(total)
        sums.append(summed)
    return sums[0], sums[1]


def emit_verilog(
    model: CorePlan | Model,
    out_dir: str | os.PathLike[str],
    name: str = "snn_core",
    fifo_depth: int | None = None,
    lanes: int | None = None,
    synapse_memory: str | None = None,
    lane_fifo_depth: int | None = None,
    streaming: bool | None = None,
) -> Path:
    """Write the Verilog of :class:`SNNCore` for ``model`` (a plan, or a model with the options
    given) to ``out_dir/<name>.v`` and return its path.

    The top module is ``name`` with ports ``clk``, ``rst`` and those of :class:`SNNCore`
    (``events__valid``, ``events__ready``, ``events__payload`` …, struct payloads flattened with
    the first field in the low bits).
    """
    if not name.isidentifier():
        raise EslError(f"module name {name!r} is not a Verilog identifier")
    core = SNNCore(
        model,
        lanes=lanes,
        fifo_depth=fifo_depth,
        synapse_memory=synapse_memory,
        lane_fifo_depth=lane_fifo_depth,
        streaming=streaming,
    )
    text = verilog.convert(core, name=name, emit_src=False)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.v"
    path.write_text(text)
    return path
