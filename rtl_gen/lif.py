"""LIF layer core: CSR integrate into a current memory, then a sweep applying leak, threshold, reset.

Integrate phase (per hit ``(col, w)`` from :class:`~esl_hw.rtl_gen.integrate.CsrIntegrator`)::

    cycle h   : read cur[col]                   (read port transparent for the write port)
    cycle h+1 : cur[col] <- cur[col] + w

A hit on the same neuron in cycle ``h+1`` reads through the write of cycle ``h+1``
(transparency), so back-to-back hits need no stall and no bubble.

Sweep phase, on the end-of-step marker, one neuron per cycle (``k`` = leak shift, θ = threshold)::

    u     = clamp_vbits(v − (v >>> k) + cur)     (v + cur without leak)
    spike = u ≥ θ
    v     <- 0 if spike or last step of the inference else u
    cur   <- 0

Each spike is emitted downstream as an event (the sweep stalls while the stream is not ready),
then the end-of-step marker. The debug tap shows the potential after the step's reset
(``0 if spike else u``), before the clear that ends an inference.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from esl_hw.artifact import signed_range
from esl_hw.rtl_gen.integrate import CsrIntegrator, event_layout
from esl_hw.rtl_gen.plan import LayerPlan, unsigned_bits


def lif_update(potential: int, current: int, v_bits: int, threshold: int, leak_shift: int | None):
    """Python model of one sweep step: ``(spike, potential after reset, u)`` for integers."""
    leaked = potential if leak_shift is None else potential - (potential >> leak_shift)
    low, high = signed_range(v_bits)
    updated = min(max(leaked + current, low), high)
    spike = updated >= threshold
    return spike, 0 if spike else updated, updated


class LifLayerCore(wiring.Component):
    """One LIF layer: integrate input events, sweep on each end-of-step marker, emit spikes.

    Parameters
    ----------
    plan : LayerPlan
        A LIF layer's plan (``plan.is_lif``).

    Attributes
    ----------
    events : In(stream.Signature(event_layout(plan.in_index_bits)))
        Input spike events and end-of-step markers.
    spikes : Out(stream.Signature(event_layout(plan.out_index_bits)))
        Output spike events (ascending neuron index) and one end-of-step marker per step.
    tap_valid : Out(1)
        A neuron is swept this cycle (once per neuron per step).
    tap_index : Out(plan.out_index_bits)
        Index of the swept neuron.
    tap_step : Out(range(plan.timesteps))
        Time step of the sweep.
    tap_potential : Out(signed(v_bits))
        Potential after the step's reset (``0`` when it spiked, else ``u``).
    tap_spike : Out(1)
        Whether the swept neuron spiked.
    stat_ptr_reads, stat_syn_reads : Out(2), Out(1)
        Pointer and synapse memory words read this cycle.
    stat_cur_reads, stat_cur_writes : Out(1)
        Current memory words read and written this cycle.
    stat_pot_reads, stat_pot_writes : Out(1)
        Potential memory words read and written this cycle.
    stat_sops : Out(1)
        A synaptic operation (hit) happens this cycle.
    stat_spike : Out(1)
        A spike event is emitted this cycle.
    """

    def __init__(self, plan: LayerPlan) -> None:
        if not isinstance(plan, LayerPlan) or not plan.is_lif:
            self._MustUse__silence = True  # never elaborated: no unused-elaboratable warning
            raise ValueError(f"LifLayerCore needs the plan of a LIF layer, got {plan!r}")
        self.plan = plan
        v_bits = plan.layer.v_bits
        super().__init__(
            {
                "events": In(stream.Signature(event_layout(plan.in_index_bits))),
                "spikes": Out(stream.Signature(event_layout(plan.out_index_bits))),
                "tap_valid": Out(1),
                "tap_index": Out(plan.out_index_bits),
                "tap_step": Out(unsigned_bits(plan.timesteps - 1)),
                "tap_potential": Out(signed(v_bits)),
                "tap_spike": Out(1),
                "stat_ptr_reads": Out(2),
                "stat_syn_reads": Out(1),
                "stat_cur_reads": Out(1),
                "stat_cur_writes": Out(1),
                "stat_pot_reads": Out(1),
                "stat_pot_writes": Out(1),
                "stat_sops": Out(1),
                "stat_spike": Out(1),
            }
        )

    def elaborate(self, platform) -> Module:
        plan = self.plan
        layer = plan.layer
        v_bits = layer.v_bits
        m = Module()
        m.submodules.front = front = CsrIntegrator(plan)
        wiring.connect(m, wiring.flipped(self.events), front.events)
        m.submodules.cur_mem = cur_mem = Memory(shape=signed(plan.acc_bits), depth=plan.n_out, init=[])
        m.submodules.pot_mem = pot_mem = Memory(shape=signed(v_bits), depth=plan.n_out, init=[])
        cur_wr = cur_mem.write_port()
        cur_rd = cur_mem.read_port(transparent_for=(cur_wr,))
        pot_wr = pot_mem.write_port()
        pot_rd = pot_mem.read_port()

        # Read-modify-write stage of the integrate phase.
        rmw_valid = Signal()
        rmw_col = Signal(plan.out_index_bits)
        rmw_weight = Signal(signed(plan.w_bits))
        m.d.sync += [
            rmw_valid.eq(front.hit_valid),
            rmw_col.eq(front.hit_col),
            rmw_weight.eq(front.hit_weight),
        ]

        # Sweep pipeline: stage A issues the reads of neuron a_idx, stage B updates neuron b_idx.
        sweeping = Signal()
        marking = Signal()
        a_idx = Signal(range(plan.n_out + 1))
        a_active = Signal()
        b_valid = Signal()
        b_idx = Signal(plan.out_index_bits)
        step = Signal(unsigned_bits(plan.timesteps - 1))
        last_step = Signal()
        m.d.comb += [a_active.eq(sweeping & (a_idx < plan.n_out)), last_step.eq(step == plan.timesteps - 1)]

        potential, current = pot_rd.data, cur_rd.data
        leaked = potential if layer.leak_shift is None else potential - (potential >> layer.leak_shift)
        low, high = signed_range(v_bits)
        total = Signal(signed(max(v_bits, plan.acc_bits) + 2))
        updated = Signal(signed(v_bits))
        spike = Signal()
        m.d.comb += [
            total.eq(leaked + current),
            updated.eq(Mux(total < low, low, Mux(total > high, high, total))),
            spike.eq(updated >= layer.threshold),
        ]
        stall = Signal()
        advance = Signal()
        retire = Signal()
        m.d.comb += [
            stall.eq(b_valid & spike & ~self.spikes.ready),
            advance.eq(sweeping & ~stall),
            retire.eq(b_valid & ~stall),
        ]

        # Memory port multiplexing between the integrate and the sweep phases.
        with m.If(sweeping):
            m.d.comb += [
                cur_rd.addr.eq(a_idx),
                cur_rd.en.eq(advance & a_active),
                pot_rd.addr.eq(a_idx),
                pot_rd.en.eq(advance & a_active),
                cur_wr.addr.eq(b_idx),
                cur_wr.data.eq(0),
                cur_wr.en.eq(retire),
                pot_wr.addr.eq(b_idx),
                pot_wr.data.eq(Mux(spike | last_step, 0, updated)),
                pot_wr.en.eq(retire),
            ]
        with m.Else():
            m.d.comb += [
                cur_rd.addr.eq(front.hit_col),
                cur_rd.en.eq(front.hit_valid),
                cur_wr.addr.eq(rmw_col),
                cur_wr.data.eq(cur_rd.data + rmw_weight),
                cur_wr.en.eq(rmw_valid),
                pot_rd.en.eq(0),
            ]

        with m.If(advance):
            m.d.sync += [b_valid.eq(a_active), b_idx.eq(a_idx)]
            with m.If(a_active):
                m.d.sync += a_idx.eq(a_idx + 1)
            with m.Else():
                m.d.sync += b_valid.eq(0)
                with m.If(~b_valid):
                    m.d.sync += [sweeping.eq(0), marking.eq(1)]

        with m.If(front.step_valid & ~sweeping & ~marking):
            m.d.sync += [sweeping.eq(1), a_idx.eq(0)]

        m.d.comb += [
            self.spikes.valid.eq((b_valid & spike) | marking),
            self.spikes.payload.index.eq(Mux(marking, 0, b_idx)),
            self.spikes.payload.eos.eq(marking),
        ]
        with m.If(marking & self.spikes.ready):
            m.d.comb += front.step_ready.eq(1)
            m.d.sync += [marking.eq(0), step.eq(Mux(last_step, 0, step + 1))]

        m.d.comb += [
            self.tap_valid.eq(retire),
            self.tap_index.eq(b_idx),
            self.tap_step.eq(step),
            self.tap_potential.eq(Mux(spike, 0, updated)),
            self.tap_spike.eq(spike),
            self.stat_ptr_reads.eq(front.ptr_reads),
            self.stat_syn_reads.eq(front.syn_reads),
            self.stat_cur_reads.eq(cur_rd.en),
            self.stat_cur_writes.eq(cur_wr.en),
            self.stat_pot_reads.eq(pot_rd.en),
            self.stat_pot_writes.eq(pot_wr.en),
            self.stat_sops.eq(front.hit_valid),
            self.stat_spike.eq(retire & spike),
        ]
        return m
