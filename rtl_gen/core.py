"""The whole event-driven SNN core: layer cores chained by spike FIFOs, plus performance counters.

::

    events ──► LIF core 0 ──► FIFO ──► LIF core 1 ──► FIFO ──► … ──► output core ──► outputs, done

The host sends, per time step, the indices of the spiking inputs and then one end-of-step marker;
after ``T`` markers the output core reads out the accumulators, the prediction and ``done``.

Performance counters run from the first input event an idle core accepts to the final output
word (inclusive) and are latched into the ``perf_*`` ports when ``done`` pulses (two cycles after
the final output word, see :data:`COUNTER_STAGES`); they assume the host waits for ``done`` before
it sends the next inference's events.
"""

from __future__ import annotations

import os
from pathlib import Path

from amaranth import Module, Signal, signed
from amaranth.back import verilog
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from esl_hw.artifact import Model
from esl_hw.errors import EslError
from esl_hw.rtl_gen.integrate import event_layout
from esl_hw.rtl_gen.lif import LifLayerCore
from esl_hw.rtl_gen.output import OutputLayerCore, output_layout
from esl_hw.rtl_gen.plan import (
    COUNTER_BITS,
    DEFAULT_FIFO_DEPTH,
    DEFAULT_LANE_FIFO_DEPTH,
    DEFAULT_SPIKE_FIFO_DEPTH,
    check_fifo_depth,
    plan_model,
    unsigned_bits,
)

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
    """Event-driven LIF core for ``model`` with ``lanes`` lanes per layer, memories initialised from it.

    Parameters
    ----------
    model : Model
        A validated artifact (any number of LIF layers, any sizes and widths within
        :data:`esl_hw.rtl_gen.plan.LIMITS`).
    lanes : int
        Lanes per layer core ``L`` (a power of two): ``L`` synaptic operations and ``L`` neurons
        of the sweep per cycle, memories banked by post-synaptic index mod ``L``.
    fifo_depth : int
        Depth of the spike FIFOs between layers.
    lane_fifo_depth : int
        Depth of each lane's event FIFO.
    spike_fifo_depth : int
        Depth of each LIF layer's spike-mask FIFO.

    Attributes
    ----------
    events : In(stream.Signature(event_layout(bits(n_in - 1))))
        Input events: payload ``index`` (input neuron) and ``eos`` (end-of-step marker).
    outputs : Out(stream.Signature(output_layout(bits(n_out - 1), model.acc_bits())))
        Output accumulators ``{index, value, last}`` after each inference.
    done : Out(1)
        Pulses two cycles after the final output word of an inference is accepted, with the
        counters latched.
    prediction : Out(bits(n_out - 1))
        Argmax of the last inference's outputs (ties to the lowest index).
    tap<l>_valid, tap<l>_group, tap<l>_step, tap<l>_potential, tap<l>_spike
        Debug tap of LIF layer ``l``, ``L`` neurons wide: bit ``k`` of ``valid`` says that neuron
        ``group·L + k`` is swept this cycle (once per neuron per step); ``step``; per lane its
        potential after the step's reset (``L`` packed ``v_bits`` signed words, lane 0 lowest) and
        its spike bit.
    perf_<name> : Out(32)
        Counters of the last completed inference, ``name`` in :func:`counter_names`: ``cycles``,
        ``sops`` (synaptic operations), reads and writes of the pointer (``ptr``), synapse
        (``syn``), current (``cur``), potential (``pot``) and accumulator (``acc``) memories, and
        ``spikes<l>`` per LIF layer.
    """

    def __init__(
        self,
        model: Model,
        lanes: int = 1,
        fifo_depth: int = DEFAULT_FIFO_DEPTH,
        lane_fifo_depth: int = DEFAULT_LANE_FIFO_DEPTH,
        spike_fifo_depth: int = DEFAULT_SPIKE_FIFO_DEPTH,
    ) -> None:
        if not isinstance(model, Model):
            self._MustUse__silence = True  # never elaborated: no unused-elaboratable warning
            raise TypeError(f"model must be an esl_hw.artifact.Model, got {type(model).__name__}")
        self.model = model
        try:
            self.fifo_depth = check_fifo_depth(fifo_depth)
            self.lane_fifo_depth = check_fifo_depth(lane_fifo_depth)
            self.spike_fifo_depth = check_fifo_depth(spike_fifo_depth)
            self.plans = plan_model(model, lanes)
        except EslError:
            self._MustUse__silence = True
            raise
        self.lanes = lanes
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
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        cores = []
        for plan in self.plans:
            if plan.is_lif:
                core = LifLayerCore(plan, self.lane_fifo_depth, self.spike_fifo_depth)
            else:
                core = OutputLayerCore(plan, self.lane_fifo_depth)
            m.submodules[f"layer{plan.index}"] = core
            cores.append(core)
        wiring.connect(m, wiring.flipped(self.events), cores[0].events)
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
        self._add_counters(m, cores, output.done)
        return m

    def _add_counters(self, m: Module, cores: list, finish) -> None:
        """Counters over the strobes of every layer core, two register stages behind them.

        Stage 1 registers each core's per-cycle strobes, stage 2 their sum over the cores, so no
        adder follows a memory read or another adder in the same cycle. ``start``, ``finish`` (the
        output core's ``done``) and the counting window travel through the same two stages, so
        the totals are exactly those of the window; ``done`` is ``finish`` two cycles later, when
        the totals are latched.
        """
        busy = Signal()
        start = Signal()
        m.d.comb += start.eq(self.events.valid & self.events.ready & ~busy)
        with m.If(start):
            m.d.sync += busy.eq(1)
        with m.If(finish):
            m.d.sync += busy.eq(0)
        counting = _delayed(m, busy | start, COUNTER_STAGES, "count")
        first = _delayed(m, start, COUNTER_STAGES, "start")
        latch = _delayed(m, finish, COUNTER_STAGES, "finish")
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


def emit_verilog(
    model: Model,
    out_dir: str | os.PathLike[str],
    name: str = "snn_core",
    fifo_depth: int = DEFAULT_FIFO_DEPTH,
    lanes: int = 1,
) -> Path:
    """Write the Verilog of :class:`SNNCore` for ``model`` to ``out_dir/<name>.v`` and return its path.

    The top module is ``name`` with ports ``clk``, ``rst`` and those of :class:`SNNCore`
    (``events__valid``, ``events__ready``, ``events__payload`` …, struct payloads flattened with
    the first field in the low bits).
    """
    if not name.isidentifier():
        raise EslError(f"module name {name!r} is not a Verilog identifier")
    core = SNNCore(model, lanes=lanes, fifo_depth=fifo_depth)
    text = verilog.convert(core, name=name, emit_src=False)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.v"
    path.write_text(text)
    return path
