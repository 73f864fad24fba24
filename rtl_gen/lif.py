"""LIF layer core: L lanes integrate into banked current memories, then an L-wide sweep.

Neuron ``i`` lives in bank ``i mod L`` at address ``g = i div L`` (its group). Each lane has its
own event FIFO, CSR integrator (:mod:`esl_hw.rtl_gen.integrate`) and bank of currents and
potentials, so all ``L`` lanes perform one synaptic operation per cycle without conflicts.

Integrate phase, per lane and hit ``(g, w)``::

    cycle h   : read cur[g]                     (read port transparent for the write port)
    cycle h+1 : cur[g] <- cur[g] + w

A hit on the same neuron in cycle ``h+1`` reads through the write of cycle ``h+1``
(transparency), so back-to-back hits need no stall and no bubble.

Sweep phase, once every lane holds the end-of-step marker, one group (``L`` neurons) per cycle
(``k`` = leak shift, θ = threshold)::

    u     = clamp_vbits(v − (v >>> k) + cur)     (v + cur without leak)
    spike = u ≥ θ
    v     <- 0 if spike or last step of the inference else u
    cur   <- 0

A group with any spike pushes its spike mask into the spike-mask FIFO (the sweep stalls only
while that FIFO is full); after the last group an end-of-step word follows, the lanes are
released and integrate the next step while :class:`~esl_hw.rtl_gen.spikes.SpikeSerializer`
emits the spikes downstream one per cycle. The debug tap shows, per lane, the potential after
the step's reset (``0 if spike else u``), before the clear that ends an inference.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from esl_hw.artifact import signed_range
from esl_hw.rtl_gen.integrate import (
    add_strobes,
    connect_lane_access,
    event_layout,
    lane_access_members,
    lane_front_ends,
    register_hit,
)
from esl_hw.rtl_gen.memory_map import access_signature, attach_access
from esl_hw.rtl_gen.plan import (
    DEFAULT_LANE_FIFO_DEPTH,
    DEFAULT_SPIKE_FIFO_DEPTH,
    LayerPlan,
    check_fifo_depth,
    unsigned_bits,
)
from esl_hw.rtl_gen.spikes import SpikeSerializer, mask_layout


def lif_update(potential: int, current: int, v_bits: int, threshold: int, leak_shift: int | None):
    """Python model of one sweep step: ``(spike, potential after reset, u)`` for integers."""
    leaked = potential if leak_shift is None else potential - (potential >> leak_shift)
    low, high = signed_range(v_bits)
    updated = min(max(leaked + current, low), high)
    spike = updated >= threshold
    return spike, 0 if spike else updated, updated


class LifLayerCore(wiring.Component):
    """One LIF layer on ``plan.lanes`` lanes: integrate events, sweep each step, emit spikes.

    Parameters
    ----------
    plan : LayerPlan
        A LIF layer's plan (``plan.is_lif``), which fixes the lane count ``L``.
    lane_fifo_depth : int
        Depth of each lane's event FIFO.
    spike_fifo_depth : int
        Depth of the spike-mask FIFO between the sweep and the serializer.

    Attributes
    ----------
    events : In(stream.Signature(event_layout(plan.in_index_bits)))
        Input spike events and end-of-step markers.
    spikes : Out(stream.Signature(event_layout(plan.out_index_bits)))
        Output spike events (ascending neuron index) and one end-of-step marker per step.
    tap_valid : Out(L)
        Bit ``k``: neuron ``tap_group·L + k`` is swept this cycle (once per neuron per step).
    tap_group : Out(plan.local_bits)
        Group being swept.
    tap_step : Out(range(plan.timesteps))
        Time step of the sweep.
    tap_potential : Out(data.ArrayLayout(signed(v_bits), L))
        Per lane, the potential after the step's reset (``0`` when it spiked, else ``u``).
    tap_spike : Out(L)
        Per lane, whether the swept neuron spiked.
    stat_ptr_reads, stat_syn_reads : Out
        Pointer and synapse memory words read this cycle (all lanes).
    stat_cur_reads, stat_cur_writes : Out
        Current memory words read and written this cycle.
    stat_pot_reads, stat_pot_writes : Out
        Potential memory words read and written this cycle.
    stat_sops : Out
        Synaptic operations (hits) this cycle.
    stat_spike : Out(1)
        A spike event is emitted this cycle.
    ptr_access, syn_access, pot_access : In(access_signature(...)).array(L)
        Per lane, host access to the pointer, synapse and potential memories while the layer is
        idle (:func:`esl_hw.rtl_gen.memory_map.access_signature`; reads answer one cycle later).
    """

    def __init__(
        self,
        plan: LayerPlan,
        lane_fifo_depth: int = DEFAULT_LANE_FIFO_DEPTH,
        spike_fifo_depth: int = DEFAULT_SPIKE_FIFO_DEPTH,
    ) -> None:
        if not isinstance(plan, LayerPlan) or not plan.is_lif:
            self._MustUse__silence = True  # never elaborated: no unused-elaboratable warning
            raise ValueError(f"LifLayerCore needs the plan of a LIF layer, got {plan!r}")
        self.plan = plan
        self.lane_fifo_depth = check_fifo_depth(lane_fifo_depth)
        self.spike_fifo_depth = check_fifo_depth(spike_fifo_depth)
        lanes = plan.lanes
        v_bits = plan.layer.v_bits
        super().__init__(
            {
                "events": In(stream.Signature(event_layout(plan.in_index_bits))),
                "spikes": Out(stream.Signature(event_layout(plan.out_index_bits))),
                "tap_valid": Out(lanes),
                "tap_group": Out(plan.local_bits),
                "tap_step": Out(unsigned_bits(plan.timesteps - 1)),
                "tap_potential": Out(data.ArrayLayout(signed(v_bits), lanes)),
                "tap_spike": Out(lanes),
                "stat_ptr_reads": Out(unsigned_bits(2 * lanes)),
                "stat_syn_reads": Out(unsigned_bits(lanes)),
                "stat_cur_reads": Out(unsigned_bits(lanes)),
                "stat_cur_writes": Out(unsigned_bits(lanes)),
                "stat_pot_reads": Out(unsigned_bits(lanes)),
                "stat_pot_writes": Out(unsigned_bits(lanes)),
                "stat_sops": Out(unsigned_bits(lanes)),
                "stat_spike": Out(1),
                **lane_access_members(plan),
                "pot_access": In(access_signature(plan.local_bits, v_bits)).array(lanes),
            }
        )

    def elaborate(self, platform) -> Module:
        plan = self.plan
        layer = plan.layer
        lanes, groups = plan.lanes, plan.groups
        v_bits = layer.v_bits
        m = Module()
        fronts = lane_front_ends(m, plan, self.events, self.lane_fifo_depth)
        connect_lane_access(m, self, fronts)

        # Sweep pipeline: stage A issues the reads of group a_idx, stage B updates group b_idx.
        sweeping = Signal()
        marking = Signal()
        a_idx = Signal(range(groups + 1))
        a_active = Signal()
        b_valid = Signal()
        b_idx = Signal(plan.local_bits)
        step = Signal(unsigned_bits(plan.timesteps - 1))
        last_step = Signal()
        m.d.comb += [a_active.eq(sweeping & (a_idx < groups)), last_step.eq(step == plan.timesteps - 1)]

        m.submodules.mask_fifo = mask_fifo = fifo.SyncFIFOBuffered(
            width=mask_layout(plan.local_bits, lanes).size, depth=self.spike_fifo_depth
        )
        m.submodules.serializer = serializer = SpikeSerializer(plan.local_bits, lanes, plan.out_index_bits)
        wiring.connect(m, serializer.spikes, wiring.flipped(self.spikes))
        m.d.comb += [
            serializer.masks.payload.eq(mask_fifo.r_data),
            serializer.masks.valid.eq(mask_fifo.r_rdy),
            mask_fifo.r_en.eq(serializer.masks.ready),
        ]

        low, high = signed_range(v_bits)
        last_lanes = layer.n_out - (groups - 1) * lanes  # neurons in the last group
        in_last_group = Signal()
        m.d.comb += in_last_group.eq(b_idx == groups - 1)
        spikes, present, updated_all = [], [], []
        cur_ports, pot_ports = [], []
        for lane in range(lanes):
            cur_mem = Memory(shape=signed(plan.acc_bits), depth=groups, init=[])
            pot_mem = Memory(shape=signed(v_bits), depth=groups, init=[])
            m.submodules[f"cur_mem{lane}"] = cur_mem
            m.submodules[f"pot_mem{lane}"] = pot_mem
            cur_wr = cur_mem.write_port()
            cur_rd = cur_mem.read_port(transparent_for=(cur_wr,))
            pot_wr = pot_mem.write_port()
            pot_rd = pot_mem.read_port()
            cur_ports.append((cur_rd, cur_wr))
            pot_ports.append((pot_rd, pot_wr))
            potential, current = pot_rd.data, cur_rd.data
            leaked = potential if layer.leak_shift is None else potential - (potential >> layer.leak_shift)
            total = Signal(signed(max(v_bits, plan.acc_bits) + 2), name=f"total{lane}")
            updated = Signal(signed(v_bits), name=f"updated{lane}")
            spike = Signal(name=f"spike{lane}")
            here = Signal(name=f"present{lane}")
            m.d.comb += [
                total.eq(leaked + current),
                updated.eq(Mux(total < low, low, Mux(total > high, high, total))),
                here.eq(b_valid & (~in_last_group if lane >= last_lanes else 1)),
                spike.eq(here & (updated >= layer.threshold)),
            ]
            spikes.append(spike)
            present.append(here)
            updated_all.append(updated)

        mask = Signal(lanes)
        m.d.comb += mask.eq(Cat(*spikes))
        stall = Signal()
        advance = Signal()
        retire = Signal()
        m.d.comb += [
            stall.eq(b_valid & (mask != 0) & ~mask_fifo.w_rdy),
            advance.eq(sweeping & ~stall),
            retire.eq(b_valid & ~stall),
        ]
        mask_word = Signal(mask_layout(plan.local_bits, lanes))
        m.d.comb += [
            mask_word.group.eq(b_idx),
            mask_word.mask.eq(mask),
            mask_word.eos.eq(marking),
            mask_fifo.w_data.eq(mask_word.as_value()),
            mask_fifo.w_en.eq((retire & (mask != 0)) | marking),
        ]

        # Memory port multiplexing between the integrate and the sweep phases, per lane.
        for lane, front in enumerate(fronts):
            (cur_rd, cur_wr), (pot_rd, pot_wr) = cur_ports[lane], pot_ports[lane]
            rmw_valid, rmw_col, rmw_weight = register_hit(m, plan, front, lane)
            write = retire & present[lane]
            read = advance & a_active & (a_idx != groups - 1 if lane >= last_lanes else 1)
            # The potentials are only touched by the sweep (read and write enables imply it).
            attach_access(
                m,
                self.pot_access[lane],
                pot_rd,
                pot_wr,
                read=(a_idx, read),
                write=(b_idx, Mux(spikes[lane] | last_step, 0, updated_all[lane]), write),
            )
            with m.If(sweeping):
                m.d.comb += [
                    cur_rd.addr.eq(a_idx),
                    cur_rd.en.eq(read),
                    cur_wr.addr.eq(b_idx),
                    cur_wr.data.eq(0),
                    cur_wr.en.eq(write),
                ]
            with m.Else():
                m.d.comb += [
                    cur_rd.addr.eq(front.hit_col),
                    cur_rd.en.eq(front.hit_valid),
                    cur_wr.addr.eq(rmw_col),
                    cur_wr.data.eq(cur_rd.data + rmw_weight),
                    cur_wr.en.eq(rmw_valid),
                ]

        with m.If(advance):
            m.d.sync += [b_valid.eq(a_active), b_idx.eq(a_idx)]
            with m.If(a_active):
                m.d.sync += a_idx.eq(a_idx + 1)
            with m.Else():
                m.d.sync += b_valid.eq(0)
                with m.If(~b_valid):
                    m.d.sync += [sweeping.eq(0), marking.eq(1)]

        all_marked = Signal()
        m.d.comb += all_marked.eq(add_strobes([front.step_valid for front in fronts]) == lanes)
        with m.If(all_marked & ~sweeping & ~marking):
            m.d.sync += [sweeping.eq(1), a_idx.eq(0)]
        with m.If(marking & mask_fifo.w_rdy):
            m.d.comb += [front.step_ready.eq(1) for front in fronts]
            m.d.sync += [marking.eq(0), step.eq(Mux(last_step, 0, step + 1))]

        m.d.comb += [
            self.tap_valid.eq(Cat(*(retire & here for here in present))),
            self.tap_group.eq(b_idx),
            self.tap_step.eq(step),
            self.tap_spike.eq(mask),
            self.stat_ptr_reads.eq(add_strobes([front.ptr_reads for front in fronts])),
            self.stat_syn_reads.eq(add_strobes([front.syn_reads for front in fronts])),
            self.stat_cur_reads.eq(add_strobes([rd.en for rd, _ in cur_ports])),
            self.stat_cur_writes.eq(add_strobes([wr.en for _, wr in cur_ports])),
            self.stat_pot_reads.eq(add_strobes([rd.en for rd, _ in pot_ports])),
            self.stat_pot_writes.eq(add_strobes([wr.en for _, wr in pot_ports])),
            self.stat_sops.eq(add_strobes([front.hit_valid for front in fronts])),
            self.stat_spike.eq(self.spikes.valid & self.spikes.ready & ~self.spikes.payload.eos),
        ]
        for lane, spike in enumerate(spikes):
            m.d.comb += self.tap_potential[lane].eq(Mux(spike, 0, updated_all[lane]))
        return m
