"""Output layer core: exact accumulation over all steps, then readout and argmax.

Integrate phase: as in the LIF core, ``acc[col] <- acc[col] + w`` per hit by a pipelined
read-modify-write (transparent read port, no bubble on back-to-back hits to one output). The
accumulators keep their value across steps. After the ``T``-th end-of-step marker the core reads
``acc[0 .. n_out-1]`` out on ``outputs`` (one word per cycle, stalling while ``outputs.ready`` is
low), clears each accumulator, computes the prediction (argmax, ties to the lowest index) and
pulses ``done``.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from esl_hw.rtl_gen.integrate import CsrIntegrator, event_layout
from esl_hw.rtl_gen.plan import LayerPlan, unsigned_bits


def output_layout(index_bits: int, value_bits: int) -> data.StructLayout:
    """Payload of the output stream: ``index``, signed ``value`` and ``last`` (final word)."""
    if index_bits < 1 or value_bits < 1:
        raise ValueError(f"widths must be at least 1, got index_bits={index_bits} value_bits={value_bits}")
    return data.StructLayout({"index": unsigned(index_bits), "value": signed(value_bits), "last": 1})


class OutputLayerCore(wiring.Component):
    """The output layer: accumulate over ``T`` steps, read out, argmax.

    Parameters
    ----------
    plan : LayerPlan
        The output layer's plan (``plan.kind == "output"``).

    Attributes
    ----------
    events : In(stream.Signature(event_layout(plan.in_index_bits)))
        Input spike events and end-of-step markers.
    outputs : Out(stream.Signature(output_layout(plan.out_index_bits, plan.acc_bits)))
        ``acc[0 .. n_out-1]`` after the last step, ``last`` set on the final word.
    done : Out(1)
        Pulses in the cycle the final output word is accepted.
    prediction : Out(plan.out_index_bits)
        Argmax of the outputs (ties to the lowest index); valid from ``done`` on, held until the
        next inference completes.
    stat_ptr_reads, stat_syn_reads : Out(2), Out(1)
        Pointer and synapse memory words read this cycle.
    stat_acc_reads, stat_acc_writes : Out(1)
        Accumulator memory words read and written this cycle.
    stat_sops : Out(1)
        A synaptic operation (hit) happens this cycle.
    """

    def __init__(self, plan: LayerPlan) -> None:
        if not isinstance(plan, LayerPlan) or plan.is_lif:
            self._MustUse__silence = True  # never elaborated: no unused-elaboratable warning
            raise ValueError(f"OutputLayerCore needs the plan of the output layer, got {plan!r}")
        self.plan = plan
        super().__init__(
            {
                "events": In(stream.Signature(event_layout(plan.in_index_bits))),
                "outputs": Out(stream.Signature(output_layout(plan.out_index_bits, plan.acc_bits))),
                "done": Out(1),
                "prediction": Out(plan.out_index_bits),
                "stat_ptr_reads": Out(2),
                "stat_syn_reads": Out(1),
                "stat_acc_reads": Out(1),
                "stat_acc_writes": Out(1),
                "stat_sops": Out(1),
            }
        )

    def elaborate(self, platform) -> Module:
        plan = self.plan
        m = Module()
        m.submodules.front = front = CsrIntegrator(plan)
        wiring.connect(m, wiring.flipped(self.events), front.events)
        m.submodules.acc_mem = acc_mem = Memory(shape=signed(plan.acc_bits), depth=plan.n_out, init=[])
        acc_wr = acc_mem.write_port()
        acc_rd = acc_mem.read_port(transparent_for=(acc_wr,))

        rmw_valid = Signal()
        rmw_col = Signal(plan.out_index_bits)
        rmw_weight = Signal(signed(plan.w_bits))
        m.d.sync += [
            rmw_valid.eq(front.hit_valid),
            rmw_col.eq(front.hit_col),
            rmw_weight.eq(front.hit_weight),
        ]

        step = Signal(unsigned_bits(plan.timesteps - 1))
        last_step = Signal()
        reading = Signal()
        a_idx = Signal(range(plan.n_out + 1))
        a_active = Signal()
        b_valid = Signal()
        b_idx = Signal(plan.out_index_bits)
        b_last = Signal()
        best_value = Signal(signed(plan.acc_bits))
        best_index = Signal(plan.out_index_bits)
        m.d.comb += [
            last_step.eq(step == plan.timesteps - 1),
            a_active.eq(reading & (a_idx < plan.n_out)),
            b_last.eq(b_idx == plan.n_out - 1),
        ]
        value = acc_rd.data
        stall = Signal()
        advance = Signal()
        retire = Signal()
        m.d.comb += [
            stall.eq(b_valid & ~self.outputs.ready),
            advance.eq(reading & ~stall),
            retire.eq(b_valid & ~stall),
        ]

        with m.If(reading):
            m.d.comb += [
                acc_rd.addr.eq(a_idx),
                acc_rd.en.eq(advance & a_active),
                acc_wr.addr.eq(b_idx),
                acc_wr.data.eq(0),
                acc_wr.en.eq(retire),
            ]
        with m.Else():
            m.d.comb += [
                acc_rd.addr.eq(front.hit_col),
                acc_rd.en.eq(front.hit_valid),
                acc_wr.addr.eq(rmw_col),
                acc_wr.data.eq(acc_rd.data + rmw_weight),
                acc_wr.en.eq(rmw_valid),
            ]

        with m.If(front.step_valid & ~reading):
            with m.If(last_step):
                m.d.sync += [reading.eq(1), a_idx.eq(0)]
            with m.Else():
                m.d.comb += front.step_ready.eq(1)
                m.d.sync += step.eq(step + 1)

        with m.If(advance):
            m.d.sync += [b_valid.eq(a_active), b_idx.eq(a_idx)]
            with m.If(a_active):
                m.d.sync += a_idx.eq(a_idx + 1)

        new_best = Signal()
        m.d.comb += new_best.eq((b_idx == 0) | (value > best_value))
        with m.If(retire & new_best):
            m.d.sync += [best_value.eq(value), best_index.eq(b_idx)]
        with m.If(retire & b_last):
            m.d.comb += [self.done.eq(1), front.step_ready.eq(1)]
            m.d.sync += [
                self.prediction.eq(Mux(new_best, b_idx, best_index)),
                reading.eq(0),
                step.eq(0),
            ]

        m.d.comb += [
            self.outputs.valid.eq(b_valid),
            self.outputs.payload.index.eq(b_idx),
            self.outputs.payload.value.eq(value),
            self.outputs.payload.last.eq(b_last),
            self.stat_ptr_reads.eq(front.ptr_reads),
            self.stat_syn_reads.eq(front.syn_reads),
            self.stat_acc_reads.eq(acc_rd.en),
            self.stat_acc_writes.eq(acc_wr.en),
            self.stat_sops.eq(front.hit_valid),
        ]
        return m
