"""Hidden layer core (``lif``, ``cubalif``): L lanes integrate into banked current memories, then an
L-wide sweep.

Neuron ``i`` lives in bank ``i mod L`` at address ``g = i div L`` (its group). Each lane has its
own event FIFO, CSR integrator (:mod:`esl_hw.rtl_gen.integrate`) and bank of currents and
potentials, so all ``L`` lanes perform one synaptic operation per cycle without conflicts.

Integrate phase, per lane and hit ``(g, w)``, a pipelined read-modify-write
(:func:`esl_hw.rtl_gen.rmw.read_modify_write`)::

    cycle h   : read cur[g]
    cycle h+2 : cur[g] <- cur[g] + w            (the word registered at h+1)

Hits on the same neuron one or two cycles apart take the sum from the forwarding registers, not
the memory, so back-to-back hits need no stall and no bubble.

Sweep phase, once every lane has written the last update of the step, one group (``L``
neurons) per cycle (``k`` = leak shift, ``ks`` = synaptic shift, θ = threshold, ``I = cur +
bias``, ``bias`` from a read-only bias bank per lane when the layer has one)::

    lif:     u = clamp_vbits(v − (v >>> k) + I)      (v + I without leak)
    cubalif: c = clamp_vbits(c − (c >>> ks) + I)     (c + I without decay)
             u = clamp_vbits(v − (v >>> k) + c)
    spike = u ≥ θ
    v     <- 0 on the last step of the inference, else (0 or u − θ) if spike, else u
    c     <- 0 on the last step, else c              (cubalif)
    cur   <- 0

A group with any spike pushes its spike mask into the spike-mask FIFO (the sweep stalls only
while that FIFO is full; by default it holds a whole step), the last group's word with the end of
the step; :class:`~esl_hw.rtl_gen.spikes.SpikeSerializer` emits the spikes downstream one per
cycle. The end-of-step markers travel in band through each lane's integrator: a lane takes one
and integrates the next step into the other bank of currents at once, while the hits before the
marker drain and the sweep reads and clears the step's bank; it takes the next marker (whose
step reuses that bank) once the sweep has issued its last group. The debug tap shows, per lane,
the potential after the step's reset (``0`` or ``u − θ`` if spike, else ``u``), before the clear
that ends an inference.

The sweep's sequencer and each lane's leak-and-fire datapath are the blocks of
:mod:`esl_hw.rtl_gen.lif_sweep` (:class:`~esl_hw.rtl_gen.lif_sweep.SweepControl`,
:class:`~esl_hw.rtl_gen.lif_sweep.LeakFireLane`); the core holds the memories and multiplexes
their ports between the integrate phase and the sweep.

The core is registered for layer kinds ``lif`` and ``cubalif`` in :mod:`esl_hw.rtl_gen.neuron_kinds`;
its Python model is the reference's step of the layer's kind (:func:`esl_hw.neuron_kinds.lif_step`,
:func:`esl_hw.neuron_kinds.cubalif_step`), which the tests use as the oracle.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from esl_hw.rtl_gen.integrate import (
    BLOCK_RAM,
    connect_lane_access,
    event_layout,
    lane_access_members,
    lane_front_ends,
)
from esl_hw.rtl_gen.lif_sweep import FORWARD_SLOTS, LeakFireLane, SweepControl, forwards, last_group_lanes
from esl_hw.rtl_gen.memory_map import access_signature, attach_access
from esl_hw.rtl_gen.plan import (
    DEFAULT_LANE_FIFO_DEPTH,
    DEFAULT_SPIKE_FIFO_DEPTH,
    MASK_SKID_WORDS,
    LayerPlan,
    check_fifo_depth,
    unsigned_bits,
)
from esl_hw.rtl_gen.rmw import RmwPorts, read_modify_write
from esl_hw.rtl_gen.spikes import SpikeSerializer, mask_layout
from esl_hw.rtl_gen.strobes import all_of, drive_stat, inference_parity, pointer_reads, stat_shape


class LifLayerCore(wiring.Component):
    """One hidden layer (``lif`` or ``cubalif``) on ``plan.lanes`` lanes: integrate events, sweep
    each step, emit spikes.

    Parameters
    ----------
    plan : LayerPlan
        A hidden layer's plan (``plan.is_lif``), which fixes the lane count ``L``.
    lane_fifo_depth : int
        Depth of each lane's event FIFO.
    spike_fifo_depth : int or None
        Depth of the spike-mask FIFO between the sweep and the serializer; ``None``: one whole step
        (:meth:`~esl_hw.rtl_gen.plan.LayerPlan.mask_fifo_depth`).
    streaming : bool
        The core streams inferences (:class:`~esl_hw.rtl_gen.hardware.HardwareConfig`): every
        ``stat_*`` port is then a pair per inference parity; else one count.

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
        Per lane, the potential after the step's reset (``0`` or ``u − θ`` when it spiked, else
        ``u``).
    tap_spike : Out(L)
        Per lane, whether the swept neuron spiked.
    stat_ptr_reads, stat_syn_reads : Out(stat_shape(...))
        Pointer and synapse memory words read this cycle (all lanes). With ``streaming`` every
        ``stat_*`` port is a pair (``ArrayLayout(unsigned, 2)``): element ``p`` counts the
        accesses of inferences of parity ``p`` (inference ``n`` has parity ``n mod 2``), so two
        inferences in flight are counted apart, and the pointer reads are counted where an
        event enters the layer (every lane reads two pointers for it); without, one count
        (the pointer reads where each lane makes them).
    stat_cur_reads, stat_cur_writes : Out(stat_shape(...))
        Current memory words read and written this cycle (both banks: up to 2L).
    stat_pot_reads, stat_pot_writes : Out(stat_shape(...))
        Potential memory words read and written this cycle.
    stat_sops : Out(stat_shape(...))
        Synaptic operations (hits) this cycle.
    stat_spike : Out(stat_shape(1, streaming))
        A spike event is emitted this cycle.
    ptr_access, syn_access, pot_access : In(access_signature(...)).array(L)
        Per lane, host access to the pointer, synapse and potential memories while the layer is
        idle (:func:`esl_hw.rtl_gen.memory_map.access_signature`; reads answer
        ``ACCESS_LATENCY`` cycles later).
    isyn_access : In(access_signature(local_bits, v_bits)).array(L)
        ``cubalif`` only: per lane, host access to the synaptic-current memory.
    """

    def __init__(
        self,
        plan: LayerPlan,
        lane_fifo_depth: int = DEFAULT_LANE_FIFO_DEPTH,
        spike_fifo_depth: int | None = DEFAULT_SPIKE_FIFO_DEPTH,
        streaming: bool = True,
    ) -> None:
        if not isinstance(plan, LayerPlan) or not plan.is_lif:
            self._MustUse__silence = True  # never elaborated: no unused-elaboratable warning
            raise ValueError(f"LifLayerCore needs the plan of a LIF layer (lif or cubalif), got {plan!r}")
        self.plan = plan
        self.lane_fifo_depth = check_fifo_depth(lane_fifo_depth)
        self.spike_fifo_depth = plan.mask_fifo_depth(spike_fifo_depth)
        self.streaming = bool(streaming)
        lanes = plan.lanes
        v_bits = plan.layer.v_bits
        members = {
            "events": In(stream.Signature(event_layout(plan.in_index_bits))),
            "spikes": Out(stream.Signature(event_layout(plan.out_index_bits))),
            "tap_valid": Out(lanes),
            "tap_group": Out(plan.local_bits),
            "tap_step": Out(unsigned_bits(plan.timesteps - 1)),
            "tap_potential": Out(data.ArrayLayout(signed(v_bits), lanes)),
            "tap_spike": Out(lanes),
            "stat_ptr_reads": Out(stat_shape(2 * lanes, streaming)),
            "stat_syn_reads": Out(stat_shape(lanes, streaming)),
            "stat_cur_reads": Out(stat_shape(2 * lanes, streaming)),
            "stat_cur_writes": Out(stat_shape(2 * lanes, streaming)),
            "stat_pot_reads": Out(stat_shape(lanes, streaming)),
            "stat_pot_writes": Out(stat_shape(lanes, streaming)),
            "stat_sops": Out(stat_shape(lanes, streaming)),
            "stat_spike": Out(stat_shape(1, streaming)),
            **lane_access_members(plan),
            "pot_access": In(access_signature(plan.local_bits, v_bits)).array(lanes),
        }
        if plan.is_cuba:
            members["isyn_access"] = In(access_signature(plan.local_bits, v_bits)).array(lanes)
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        plan = self.plan
        m = Module()
        fronts = lane_front_ends(m, plan, self.events, self.lane_fifo_depth)
        connect_lane_access(m, self, fronts)
        mask_fifo = self._spike_output(m)
        m.submodules.sweep = sweep = SweepControl(plan, self.spike_fifo_depth)
        lanes = [self._lane(m, lane, front, sweep) for lane, front in enumerate(fronts)]
        # A sweep starts once every lane has written the last update of the step.
        done = [
            _step_done(m, index, front, lane.rmw, sweep)
            for index, (front, lane) in enumerate(zip(fronts, lanes, strict=True))
        ]
        m.d.comb += [
            sweep.lanes_done.eq(all_of(done)),
            sweep.spikes.eq(Cat(*(lane.fire.spike for lane in lanes))),
            sweep.mask_level.eq(mask_fifo.level),
            mask_fifo.w_data.eq(sweep.mask_word.as_value()),
            mask_fifo.w_en.eq(sweep.mask_push),
        ]
        cur_tags = [tags for lane in lanes for tags in lane.cur_tags]
        pot_ports = [lane.pot_ports for lane in lanes]
        spike_taken = self.spikes.valid & self.spikes.ready
        streaming = self.streaming
        spike_inference = 0
        if streaming:
            spike_inference = inference_parity(
                m, spike_taken & self.spikes.payload.eos, plan.timesteps, "spikes"
            )
        m.d.comb += [
            self.tap_valid.eq(Cat(*(sweep.e_valid & lane.fire.here for lane in lanes))),
            self.tap_group.eq(sweep.e_idx),
            self.tap_step.eq(sweep.step),
            self.tap_spike.eq(sweep.spikes),
            *(self.tap_potential[index].eq(lane.fire.after) for index, lane in enumerate(lanes)),
        ]
        strobes = {  # per stat_* port, its strobes (count, inference parity)
            "ptr_reads": pointer_reads(m, plan, self.events, fronts, streaming),
            "syn_reads": [(front.syn_reads, front.syn_inference) for front in fronts],
            "cur_reads": [read for read, _ in cur_tags],
            "cur_writes": [write for _, write in cur_tags],
            "pot_reads": [(rd.en, sweep.read_inference) for rd, _ in pot_ports],
            "pot_writes": [(wr.en, sweep.write_inference) for _, wr in pot_ports],
            "sops": [(front.hit_valid, front.hit_inference) for front in fronts],
            "spike": [(spike_taken & ~self.spikes.payload.eos, spike_inference)],
        }
        for name, tagged in strobes.items():
            m.d.comb += drive_stat(getattr(self, f"stat_{name}"), tagged, streaming)
        return m

    def _spike_output(self, m: Module):
        """The spike-mask FIFO ``mask_fifo``, two words in flip-flops after it (``mask_skid``) and
        the serializer driving ``spikes``; returns the FIFO (the sweep pushes into it)."""
        plan = self.plan
        width = mask_layout(plan.local_bits, plan.lanes).size
        m.submodules.mask_fifo = mask_fifo = fifo.SyncFIFOBuffered(width=width, depth=self.spike_fifo_depth)
        # Two words in flip-flops between the FIFO and the serializer: the FIFO is popped whenever
        # they have room (a register), not by the serializer's logic, so no path runs from the
        # serializer to the FIFO's block RAM.
        m.submodules.mask_skid = skid = fifo.SyncFIFO(width=width, depth=MASK_SKID_WORDS)
        m.submodules.serializer = serializer = SpikeSerializer(
            plan.local_bits, plan.lanes, plan.out_index_bits
        )
        wiring.connect(m, serializer.spikes, wiring.flipped(self.spikes))
        m.d.comb += [
            skid.w_data.eq(mask_fifo.r_data),
            skid.w_en.eq(mask_fifo.r_rdy),
            mask_fifo.r_en.eq(skid.w_rdy),
            serializer.masks.payload.eq(skid.r_data),
            serializer.masks.valid.eq(skid.r_rdy),
            skid.r_en.eq(serializer.masks.ready),
        ]
        return mask_fifo

    def _lane(self, m: Module, lane: int, front, sweep: SweepControl) -> _Lane:
        """One lane's memories (``cur_mem<b>_even``, ``cur_mem<b>_odd``, ``pot_mem<b>``, and
        ``isyn_mem<b>``, ``bias_mem<b>`` when the layer has them), its read-modify-write of the
        currents and its :class:`LeakFireLane` (``fire<b>``), the ports multiplexed between the
        integrate phase and the sweep."""
        plan = self.plan
        banks = []
        for parity in ("even", "odd"):
            cur_mem = Memory(shape=signed(plan.acc_bits), depth=plan.groups, init=[], attrs=BLOCK_RAM)
            m.submodules[f"cur_mem{lane}_{parity}"] = cur_mem
            banks.append((cur_mem.read_port(), cur_mem.write_port()))
        pot_mem = Memory(shape=signed(plan.layer.v_bits), depth=plan.groups, init=[], attrs=BLOCK_RAM)
        m.submodules[f"pot_mem{lane}"] = pot_mem
        pot_wr, pot_rd = pot_mem.write_port(), pot_mem.read_port()
        words = tuple(rd.data for rd, _ in banks)
        rmw = read_modify_write(m, plan, front, words, lane)
        m.submodules[f"fire{lane}"] = fire = LeakFireLane(plan, lane)
        m.d.comb += [
            fire.potential.eq(pot_rd.data),
            fire.current_even.eq(words[0]),
            fire.current_odd.eq(words[1]),
            fire.odd.eq(sweep.odd),
            fire.d_idx.eq(sweep.d_idx),
        ]
        write = sweep.e_valid & fire.here
        read = sweep.issue & (sweep.addr != plan.groups - 1 if lane >= last_group_lanes(plan) else 1)
        # The potentials are only touched by the sweep (read and write enables imply it) and,
        # while the core is idle, by the host.
        if plan.subtract_reset:
            new_potential = Mux(sweep.last_step, 0, fire.after)
        else:
            new_potential = Mux(fire.spike | sweep.last_step, 0, fire.updated)
        attach_access(
            m,
            self.pot_access[lane],
            pot_rd,
            pot_wr,
            read=(sweep.addr, read),
            write=(sweep.e_idx, new_potential, write),
        )
        if forwards(plan):
            m.d.comb += fire.forward.eq(sweep.forward.any())
        _forward(m, plan, sweep, fire, "forward_potential", new_potential, f"pot{lane}")
        if plan.is_cuba:  # the synaptic current c, swept like the potential
            isyn_mem = Memory(shape=signed(plan.layer.v_bits), depth=plan.groups, init=[], attrs=BLOCK_RAM)
            m.submodules[f"isyn_mem{lane}"] = isyn_mem
            isyn_wr, isyn_rd = isyn_mem.write_port(), isyn_mem.read_port()
            m.d.comb += fire.synaptic.eq(isyn_rd.data)
            new_synaptic = Mux(sweep.last_step, 0, fire.synaptic_updated)
            attach_access(
                m,
                self.isyn_access[lane],
                isyn_rd,
                isyn_wr,
                read=(sweep.addr, read),
                write=(sweep.e_idx, new_synaptic, write),
            )
            _forward(m, plan, sweep, fire, "forward_synaptic", new_synaptic, f"isyn{lane}")
        if plan.has_bias:  # read-only: the bias of each neuron of the lane, by group
            init = plan.bias_init(lane)
            bias_mem = Memory(shape=signed(plan.bias_bits), depth=plan.groups, init=init, attrs=BLOCK_RAM)
            m.submodules[f"bias_mem{lane}"] = bias_mem
            bias_rd = bias_mem.read_port()
            m.d.comb += [bias_rd.addr.eq(sweep.addr), bias_rd.en.eq(read), fire.bias.eq(bias_rd.data)]
        # Multiplexers, not an m.If: continuous assignments in the Verilog, so Icarus never
        # sees an unevaluated always @* block (an X until its inputs first change).
        # The bank's owner (``sweep.own``, a register) picks the ports; the sweep and the lanes
        # each name the bank they read and write.
        cur_tags = []  # per bank: ((read enable, its inference), (write enable, its inference))
        for bank, (cur_rd, cur_wr) in enumerate(banks):
            swept = sweep.own[bank]
            cur_tags.append(
                (
                    (cur_rd.en, Mux(swept, sweep.read_inference, front.hit_inference)),
                    (cur_wr.en, Mux(swept, sweep.write_inference, rmw.write_inference)),
                )
            )
            m.d.comb += [
                cur_rd.addr.eq(Mux(swept, sweep.addr, rmw.read_addr)),
                cur_rd.en.eq(
                    Mux(swept, read & (sweep.read_bank == bank), rmw.read_en & (rmw.read_bank == bank))
                ),
                cur_wr.addr.eq(Mux(swept, sweep.e_idx, rmw.write_addr)),
                cur_wr.data.eq(Mux(swept, 0, rmw.write_data)),
                cur_wr.en.eq(
                    Mux(swept, write & (sweep.write_bank == bank), rmw.write_en & (rmw.write_bank == bank))
                ),
            ]
        return _Lane(rmw, fire, tuple(banks), (pot_rd, pot_wr), tuple(cur_tags))


def _forward(m: Module, plan: LayerPlan, sweep: SweepControl, fire, port: str, written, name: str) -> None:
    """With :func:`~esl_hw.rtl_gen.lif_sweep.forwards`: drive ``fire``'s forwarded ``port`` with
    the write the sweep's ``forward`` picks: ``written`` (stage E now) or one of the two writes
    before it, kept in registers ``<name>_w1``, ``<name>_w2``."""
    if not forwards(plan):
        return
    slots = [written]
    for age in range(1, FORWARD_SLOTS):
        older = Signal(signed(plan.layer.v_bits), name=f"{name}_w{age}", reset_less=True)
        m.d.sync += older.eq(slots[-1])
        slots.append(older)
    chosen = slots[-1]
    for age in reversed(range(FORWARD_SLOTS - 1)):
        chosen = Mux(sweep.forward[age], slots[age], chosen)
    m.d.comb += getattr(fire, port).eq(chosen)


def _step_done(m: Module, lane: int, front, rmw: RmwPorts, sweep: SweepControl) -> Signal:
    """The lane's flags around its end-of-step markers; returns ``done`` (registered).

    ``ahead`` is set when the lane takes a marker and cleared by ``sweep.bank_free``: the lane
    integrates the next step into the other bank meanwhile, and takes its next marker (whose
    step reuses the swept bank) only after. ``done`` is set once the hits before the marker
    have been written (at once when none is in flight, else when ``busy_old`` falls: the
    ``draining`` flag) and cleared by ``sweep.release``.
    """
    ahead = Signal(name=f"ahead{lane}")
    draining = Signal(name=f"draining{lane}")
    done = Signal(name=f"done{lane}")
    m.d.comb += front.step_ready.eq(~ahead)
    with m.If(front.step_taken):
        m.d.sync += ahead.eq(1)
        with m.If(front.busy | rmw.busy):
            m.d.sync += draining.eq(1)
        with m.Else():
            m.d.sync += done.eq(1)
    with m.If(draining & ~front.busy_old & ~rmw.busy_old):
        m.d.sync += [draining.eq(0), done.eq(1)]
    with m.If(sweep.release):
        m.d.sync += done.eq(0)
    with m.If(sweep.bank_free):
        m.d.sync += ahead.eq(0)
    return done


@dataclass
class _Lane:
    """What the core wires of one lane: its read-modify-write, its leak-and-fire datapath and its
    memory ports (current banks ``(read, write)`` even and odd, potentials ``(read, write)``) and
    per current bank its read and write enables with the parity of their inference."""

    rmw: RmwPorts
    fire: LeakFireLane
    cur_ports: tuple
    pot_ports: tuple
    cur_tags: tuple
