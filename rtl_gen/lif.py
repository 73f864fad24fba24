"""LIF layer core: L lanes integrate into banked current memories, then an L-wide sweep.

Neuron ``i`` lives in bank ``i mod L`` at address ``g = i div L`` (its group). Each lane has its
own event FIFO, CSR integrator (:mod:`esl_hw.rtl_gen.integrate`) and bank of currents and
potentials, so all ``L`` lanes perform one synaptic operation per cycle without conflicts.

Integrate phase, per lane and hit ``(g, w)``, a pipelined read-modify-write
(:func:`esl_hw.rtl_gen.integrate.read_modify_write`)::

    cycle h   : read cur[g]
    cycle h+2 : cur[g] <- cur[g] + w            (the word registered at h+1)

Hits on the same neuron one or two cycles apart take the sum from the forwarding registers, not
the memory, so back-to-back hits need no stall and no bubble.

Sweep phase, once every lane holds the end-of-step marker, one group (``L`` neurons) per cycle
(``k`` = leak shift, θ = threshold)::

    u     = clamp_vbits(v − (v >>> k) + cur)     (v + cur without leak)
    spike = u ≥ θ
    v     <- 0 if spike or last step of the inference else u
    cur   <- 0

A group with any spike pushes its spike mask into the spike-mask FIFO (the sweep stalls only
while that FIFO is full; by default it holds a whole step); after the last group an end-of-step
word follows, the lanes are released and integrate the next step while
:class:`~esl_hw.rtl_gen.spikes.SpikeSerializer` emits the spikes downstream one per cycle. The
debug tap shows, per lane, the potential after the step's reset (``0 if spike else u``), before
the clear that ends an inference.

The core is registered for layer kind ``lif`` in :mod:`esl_hw.rtl_gen.neuron_kinds`; its Python model
is the reference's step of that kind (:func:`esl_hw.neuron_kinds.lif_step`), which the tests use as
the oracle.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from esl_hw.artifact import signed_range
from esl_hw.rtl_gen.integrate import (
    BLOCK_RAM,
    add_strobes,
    all_of,
    any_of,
    connect_lane_access,
    event_layout,
    lane_access_members,
    lane_front_ends,
    read_modify_write,
)
from esl_hw.rtl_gen.memory_map import access_signature, attach_access
from esl_hw.rtl_gen.plan import (
    DEFAULT_LANE_FIFO_DEPTH,
    DEFAULT_SPIKE_FIFO_DEPTH,
    MASK_SKID_WORDS,
    LayerPlan,
    check_fifo_depth,
    unsigned_bits,
)
from esl_hw.rtl_gen.spikes import SpikeSerializer, mask_layout


class LifLayerCore(wiring.Component):
    """One LIF layer on ``plan.lanes`` lanes: integrate events, sweep each step, emit spikes.

    Parameters
    ----------
    plan : LayerPlan
        A LIF layer's plan (``plan.is_lif``), which fixes the lane count ``L``.
    lane_fifo_depth : int
        Depth of each lane's event FIFO.
    spike_fifo_depth : int or None
        Depth of the spike-mask FIFO between the sweep and the serializer; ``None``: one whole step
        (:meth:`~esl_hw.rtl_gen.plan.LayerPlan.mask_fifo_depth`).

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
        Current memory words read and written this cycle (both banks: up to 2L).
    stat_pot_reads, stat_pot_writes : Out
        Potential memory words read and written this cycle.
    stat_sops : Out
        Synaptic operations (hits) this cycle.
    stat_spike : Out(1)
        A spike event is emitted this cycle.
    ptr_access, syn_access, pot_access : In(access_signature(...)).array(L)
        Per lane, host access to the pointer, synapse and potential memories while the layer is
        idle (:func:`esl_hw.rtl_gen.memory_map.access_signature`; reads answer
        ``ACCESS_LATENCY`` cycles later).
    """

    def __init__(
        self,
        plan: LayerPlan,
        lane_fifo_depth: int = DEFAULT_LANE_FIFO_DEPTH,
        spike_fifo_depth: int | None = DEFAULT_SPIKE_FIFO_DEPTH,
    ) -> None:
        if not isinstance(plan, LayerPlan) or not plan.is_lif:
            self._MustUse__silence = True  # never elaborated: no unused-elaboratable warning
            raise ValueError(f"LifLayerCore needs the plan of a LIF layer, got {plan!r}")
        self.plan = plan
        self.lane_fifo_depth = check_fifo_depth(lane_fifo_depth)
        self.spike_fifo_depth = plan.mask_fifo_depth(spike_fifo_depth)
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
                "stat_cur_reads": Out(unsigned_bits(2 * lanes)),
                "stat_cur_writes": Out(unsigned_bits(2 * lanes)),
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
        lanes, groups = plan.lanes, plan.groups
        m = Module()
        fronts = lane_front_ends(m, plan, self.events, self.lane_fifo_depth)
        connect_lane_access(m, self, fronts)

        m.submodules.mask_fifo = mask_fifo = fifo.SyncFIFOBuffered(
            width=mask_layout(plan.local_bits, lanes).size, depth=self.spike_fifo_depth
        )
        # Two words in flip-flops between the FIFO and the serializer: the FIFO is popped whenever
        # they have room (a register), not by the serializer's logic, so no path runs from the
        # serializer to the FIFO's block RAM.
        width = mask_layout(plan.local_bits, lanes).size
        m.submodules.mask_skid = skid = fifo.SyncFIFO(width=width, depth=MASK_SKID_WORDS)
        m.submodules.serializer = serializer = SpikeSerializer(plan.local_bits, lanes, plan.out_index_bits)
        wiring.connect(m, serializer.spikes, wiring.flipped(self.spikes))
        m.d.comb += [
            skid.w_data.eq(mask_fifo.r_data),
            skid.w_en.eq(mask_fifo.r_rdy),
            mask_fifo.r_en.eq(skid.w_rdy),
            serializer.masks.payload.eq(skid.r_data),
            serializer.masks.valid.eq(skid.r_rdy),
            skid.r_en.eq(serializer.masks.ready),
        ]

        # Sweep pipeline: A issues the reads of group a_idx; B: words at the read ports; R: words
        # registered next to the block RAMs; C: registered again next to the datapath; D: total
        # registered; E: spikes and updates registered, written and pushed.
        sweeping = Signal()
        marking = Signal()
        a_idx = Signal(range(groups + 1))
        step = Signal(unsigned_bits(plan.timesteps - 1))
        last_step = Signal()
        stages = "brcde"
        valid = {stage: Signal(name=f"sweep_{stage}_valid") for stage in stages}
        idx = {stage: Signal(plan.local_bits, name=f"sweep_{stage}_idx") for stage in stages}
        in_flight = sum(valid[stage] for stage in stages)
        # Issue only while the mask FIFO has room for every group in flight, so nothing stalls
        # later (its write side holds depth - 1 words besides the output register). ``room`` is
        # registered: with X = FIFO level + groups in flight, X(t) <= X(t-1) + issue(t-1), so
        # room(t) = [X(t-1) + issue(t-1) < depth - 1] implies X(t) < depth - 1.
        issue = Signal()
        room = Signal(init=1)
        more = Signal()  # a_idx != groups, registered
        m.d.comb += [
            last_step.eq(step == plan.timesteps - 1),
            issue.eq(sweeping & more & room),
        ]
        m.d.sync += room.eq(mask_fifo.level + in_flight + issue < self.spike_fifo_depth - 1)
        m.d.sync += [valid["b"].eq(issue), idx["b"].eq(a_idx)]
        for before, after in zip(stages, stages[1:], strict=False):
            m.d.sync += [valid[after].eq(valid[before]), idx[after].eq(idx[before])]
        with m.If(issue):
            m.d.sync += [a_idx.eq(a_idx + 1), more.eq(a_idx != groups - 1)]

        # Two banks of currents per lane (even and odd steps): the lanes integrate step t+1 into
        # one while the sweep reads and clears step t's in the other. ``int_bank`` is the bank
        # being integrated; ``swept[b]`` (registered) says that the sweep owns bank b.
        int_bank = Signal()
        swept = [Signal(name="sweep_bank_even"), Signal(name="sweep_bank_odd")]
        cur_ports, pot_ports, rmws, lanes_out = [], [], [], []
        for lane, front in enumerate(fronts):
            banks = []
            for parity in ("even", "odd"):
                cur_mem = Memory(shape=signed(plan.acc_bits), depth=groups, init=[], attrs=BLOCK_RAM)
                m.submodules[f"cur_mem{lane}_{parity}"] = cur_mem
                banks.append((cur_mem.read_port(), cur_mem.write_port()))
            pot_mem = Memory(shape=signed(plan.layer.v_bits), depth=groups, init=[], attrs=BLOCK_RAM)
            m.submodules[f"pot_mem{lane}"] = pot_mem
            pot_wr, pot_rd = pot_mem.write_port(), pot_mem.read_port()
            cur_ports.append(banks)
            pot_ports.append((pot_rd, pot_wr))
            words = tuple(rd.data for rd, _ in banks)
            rmws.append(read_modify_write(m, plan, front, words, lane, bank_select=int_bank))
            lanes_out.append(self._lane_datapath(m, lane, pot_rd.data, words, swept[1], idx["d"]))

        e_spikes = [spike for spike, _, _ in lanes_out]
        e_mask = Signal(lanes)
        m.d.comb += e_mask.eq(Cat(*e_spikes))
        mask_word = Signal(mask_layout(plan.local_bits, lanes))
        m.d.comb += [
            mask_word.group.eq(idx["e"]),
            mask_word.mask.eq(e_mask),
            mask_word.eos.eq(marking),
            mask_fifo.w_data.eq(mask_word.as_value()),
            mask_fifo.w_en.eq((valid["e"] & (e_mask != 0)) | marking),
        ]

        # Memory port multiplexing between the integrate and the sweep phases, per lane.
        last_lanes = plan.layer.n_out - (groups - 1) * lanes  # neurons in the last group
        for lane, rmw in enumerate(rmws):
            pot_rd, pot_wr = pot_ports[lane]
            spike, updated, here = lanes_out[lane]
            write = valid["e"] & here
            read = issue & (a_idx != groups - 1 if lane >= last_lanes else 1)
            # The potentials are only touched by the sweep (read and write enables imply it) and,
            # while the core is idle, by the host.
            attach_access(
                m,
                self.pot_access[lane],
                pot_rd,
                pot_wr,
                read=(a_idx, read),
                write=(idx["e"], Mux(spike | last_step, 0, updated), write),
            )
            # Multiplexers, not an m.If: continuous assignments in the Verilog, so Icarus never
            # sees an unevaluated always @* block (an X until its inputs first change).
            for bank, (cur_rd, cur_wr) in enumerate(cur_ports[lane]):
                integrated = int_bank if bank else ~int_bank
                m.d.comb += [
                    cur_rd.addr.eq(Mux(swept[bank], a_idx, rmw.read_addr)),
                    cur_rd.en.eq(Mux(swept[bank], read, rmw.read_en & integrated)),
                    cur_wr.addr.eq(Mux(swept[bank], idx["e"], rmw.write_addr)),
                    cur_wr.data.eq(Mux(swept[bank], 0, rmw.write_data)),
                    cur_wr.en.eq(Mux(swept[bank], write, rmw.write_en & integrated)),
                ]

        with m.If(sweeping & ~more & ~any_of(list(valid.values()))):
            m.d.sync += [sweeping.eq(0), marking.eq(1), swept[0].eq(0), swept[1].eq(0)]
        all_marked = Signal()
        ready_lanes = [front.step_valid & ~rmw.busy for front, rmw in zip(fronts, rmws, strict=True)]
        m.d.comb += all_marked.eq(all_of(ready_lanes))
        # A sweep starts once every lane holds its end-of-step marker with nothing in flight; it
        # takes the bank the step was integrated into, and the lanes' markers are consumed by
        # ``release``, a registered pulse one cycle later (so no lane's ready logic depends on
        # the others'), after which they integrate the next step into the other bank.
        release = Signal()
        start = Signal()
        m.d.comb += start.eq(all_marked & ~sweeping & ~marking & ~release)
        m.d.sync += release.eq(start)
        m.d.comb += [front.step_ready.eq(release) for front in fronts]
        with m.If(start):
            m.d.sync += [
                sweeping.eq(1),
                a_idx.eq(0),
                more.eq(1),
                swept[0].eq(~int_bank),
                swept[1].eq(int_bank),
                int_bank.eq(~int_bank),
            ]
        with m.If(marking & mask_fifo.w_rdy):
            m.d.sync += [marking.eq(0), step.eq(Mux(last_step, 0, step + 1))]

        m.d.comb += [
            self.tap_valid.eq(Cat(*(valid["e"] & here for _, _, here in lanes_out))),
            self.tap_group.eq(idx["e"]),
            self.tap_step.eq(step),
            self.tap_spike.eq(e_mask),
            self.stat_ptr_reads.eq(add_strobes([front.ptr_reads for front in fronts])),
            self.stat_syn_reads.eq(add_strobes([front.syn_reads for front in fronts])),
            self.stat_cur_reads.eq(add_strobes([rd.en for banks in cur_ports for rd, _ in banks])),
            self.stat_cur_writes.eq(add_strobes([wr.en for banks in cur_ports for _, wr in banks])),
            self.stat_pot_reads.eq(add_strobes([rd.en for rd, _ in pot_ports])),
            self.stat_pot_writes.eq(add_strobes([wr.en for _, wr in pot_ports])),
            self.stat_sops.eq(add_strobes([front.hit_valid for front in fronts])),
            self.stat_spike.eq(self.spikes.valid & self.spikes.ready & ~self.spikes.payload.eos),
        ]
        for lane, (spike, updated, _) in enumerate(lanes_out):
            m.d.comb += self.tap_potential[lane].eq(Mux(spike, 0, updated))
        return m

    def _lane_datapath(self, m: Module, lane: int, potential, currents, odd: Signal, d_idx: Signal):
        """One lane of the sweep from the words at the read ports (stage B) to stage E.

        R, C: ``v``, ``cur`` registered twice (the first register may sit next to the block RAM,
        the second next to the adders; ``currents`` are the two banks' words, each registered in
        R, and C takes the swept one, bank 1 when ``odd``); D: ``total = v − (v >>> k) + cur`` registered; E:
        ``u = clamp(total)`` and ``spike = total ≥ θ`` registered (equal to ``u ≥ θ`` because
        ``1 ≤ θ ≤ max``), gated by ``here`` (the lane holds a neuron of the group). Returns the
        stage-E signals ``(spike, u, here)``.
        """
        plan, layer = self.plan, self.plan.layer
        v_bits = layer.v_bits
        low, high = signed_range(v_bits)
        r_pot = Signal(signed(v_bits), name=f"sweep_r_pot{lane}", reset_less=True)
        r_curs = [
            Signal(signed(plan.acc_bits), name=f"sweep_r_cur{lane}_{parity}", reset_less=True)
            for parity in ("even", "odd")
        ]
        c_pot = Signal(signed(v_bits), name=f"sweep_c_pot{lane}", reset_less=True)
        c_cur = Signal(signed(plan.acc_bits), name=f"sweep_c_cur{lane}", reset_less=True)
        d_total = Signal(signed(max(v_bits, plan.acc_bits) + 2), name=f"sweep_d_total{lane}")
        e_updated = Signal(signed(v_bits), name=f"sweep_e_updated{lane}")
        e_spike = Signal(name=f"sweep_e_spike{lane}")
        leaked = c_pot if layer.leak_shift is None else c_pot - (c_pot >> layer.leak_shift)
        m.d.sync += [
            r_pot.eq(potential),
            *(r_cur.eq(current) for r_cur, current in zip(r_curs, currents, strict=True)),
            c_pot.eq(r_pot),
            c_cur.eq(Mux(odd, r_curs[1], r_curs[0])),
            d_total.eq(leaked + c_cur),
            e_updated.eq(Mux(d_total < low, low, Mux(d_total > high, high, d_total))),
        ]
        last_lanes = layer.n_out - (plan.groups - 1) * plan.lanes
        if lane < last_lanes:  # a neuron in every group: no register for a constant
            m.d.sync += e_spike.eq(d_total >= layer.threshold)
            return e_spike, e_updated, 1
        e_here = Signal(name=f"sweep_e_here{lane}")
        d_here = ~(d_idx == plan.groups - 1)
        m.d.sync += [e_spike.eq(d_here & (d_total >= layer.threshold)), e_here.eq(d_here)]
        return e_spike, e_updated, e_here
