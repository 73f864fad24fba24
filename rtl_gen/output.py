"""Output layer core: exact accumulation over all steps, then readout and argmax.

Integrate phase: as in the LIF core, ``L`` lanes, each with its own event FIFO, CSR and bank of
accumulators (output ``i`` in bank ``i mod L``), ``acc[col] <- acc[col] + w`` per hit by a
pipelined read-modify-write (:func:`~esl_hw.rtl_gen.rmw.read_modify_write`: forwarding, no
bubble on back-to-back hits to one output).
The accumulators keep their value across steps, so a lane takes the end-of-step markers of
steps ``0 .. T-2`` in band, without waiting for the other lanes or for its hits to drain (each
lane counts its markers); the lanes meet only at the ``T``-th marker. After it the core reads
``acc[0 .. n_out-1]`` out on ``outputs`` (one word per cycle, bank ``i mod L``, through a
registered stage, stalling while ``outputs.ready`` is low), clears each accumulator, computes
the prediction (argmax, ties to the lowest index) and pulses ``done``.

Bias: the contract adds ``bias[i]`` to ``acc[i]`` every step, so the outputs are ``Σ_t S_t[i] +
T·bias[i]``. The accumulators hold the synaptic sums ``Σ_t S_t`` only; a read-only table
``bias_mem`` of ``T·bias[i]`` (one word per output, read with the accumulator in stage A) is added
in stage C, so a layer with a bias costs no cycle and the accumulators read by the host are
what the lanes integrated (0 between inferences either way).
"""

from __future__ import annotations

from amaranth import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from esl_hw.rtl_gen.integrate import (
    NO_RW_CHECK,
    connect_lane_access,
    event_layout,
    lane_access_members,
    lane_front_ends,
)
from esl_hw.rtl_gen.memory_map import access_signature, attach_access
from esl_hw.rtl_gen.plan import DEFAULT_LANE_FIFO_DEPTH, LayerPlan, check_fifo_depth, unsigned_bits
from esl_hw.rtl_gen.rmw import read_modify_write
from esl_hw.rtl_gen.strobes import all_of, any_of, drive_stat, pointer_reads, stat_shape


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
        The output layer's plan (``plan.kind == "output"``), which fixes the lane count ``L``.
    lane_fifo_depth : int
        Depth of each lane's event FIFO.
    streaming : bool
        The core streams inferences: every ``stat_*`` port is then a pair per inference parity
        (:class:`~esl_hw.rtl_gen.lif.LifLayerCore`); else one count.

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
    stat_ptr_reads, stat_syn_reads : Out(stat_shape(...))
        Pointer and synapse memory words read this cycle (all lanes); with ``streaming``, as
        every ``stat_*`` port, a pair: element ``p`` counts the accesses of inferences of parity
        ``p`` (:class:`~esl_hw.rtl_gen.lif.LifLayerCore`).
    stat_acc_reads, stat_acc_writes : Out(stat_shape(...))
        Accumulator memory words read and written this cycle (the readout's belong to the
        inference read out).
    stat_sops : Out(stat_shape(...))
        Synaptic operations (hits) this cycle.
    ptr_access, syn_access, acc_access : In(access_signature(...)).array(L)
        Per lane, host access to the pointer, synapse and accumulator memories while the layer is
        idle (:func:`esl_hw.rtl_gen.memory_map.access_signature`; reads answer
        ``ACCESS_LATENCY`` cycles later).
    """

    def __init__(
        self, plan: LayerPlan, lane_fifo_depth: int = DEFAULT_LANE_FIFO_DEPTH, streaming: bool = True
    ) -> None:
        if not isinstance(plan, LayerPlan) or plan.is_lif:
            self._MustUse__silence = True  # never elaborated: no unused-elaboratable warning
            raise ValueError(f"OutputLayerCore needs the plan of the output layer, got {plan!r}")
        self.plan = plan
        self.lane_fifo_depth = check_fifo_depth(lane_fifo_depth)
        self.streaming = bool(streaming)
        lanes = plan.lanes
        super().__init__(
            {
                "events": In(stream.Signature(event_layout(plan.in_index_bits))),
                "outputs": Out(stream.Signature(output_layout(plan.out_index_bits, plan.acc_bits))),
                "done": Out(1),
                "prediction": Out(plan.out_index_bits),
                "stat_ptr_reads": Out(stat_shape(2 * lanes, streaming)),
                "stat_syn_reads": Out(stat_shape(lanes, streaming)),
                "stat_acc_reads": Out(stat_shape(lanes, streaming)),
                "stat_acc_writes": Out(stat_shape(lanes, streaming)),
                "stat_sops": Out(stat_shape(lanes, streaming)),
                **lane_access_members(plan),
                "acc_access": In(access_signature(plan.local_bits, plan.acc_bits)).array(lanes),
            }
        )

    def elaborate(self, platform) -> Module:
        plan = self.plan
        lanes, lane_bits = plan.lanes, plan.lane_bits
        m = Module()
        fronts = lane_front_ends(m, plan, self.events, self.lane_fifo_depth)
        connect_lane_access(m, self, fronts)

        # Readout pipeline: A issues the read of output a_idx, B: the word at the read port,
        # C: the word registered and offered on ``outputs`` (all stages hold under backpressure).
        reading = Signal()
        a_idx = Signal(range(plan.n_out + 1))
        a_active = Signal()
        b_valid = Signal()
        b_idx = Signal(plan.out_index_bits)
        c_valid = Signal()
        c_idx = Signal(plan.out_index_bits)
        c_value = Signal(signed(plan.acc_bits))
        c_last = Signal()
        best_value = Signal(signed(plan.acc_bits))
        best_index = Signal(plan.out_index_bits)
        m.d.comb += [
            a_active.eq(reading & (a_idx < plan.n_out)),
            c_last.eq(c_idx == plan.n_out - 1),
        ]
        stall = Signal()
        advance = Signal()
        retire = Signal()
        m.d.comb += [
            stall.eq(c_valid & ~self.outputs.ready),
            advance.eq(reading & ~stall),
            retire.eq(c_valid & ~stall),
        ]

        a_lane = a_idx[:lane_bits] if lanes > 1 else 0
        c_lane = c_idx[:lane_bits] if lanes > 1 else 0
        ports, rmws = [], []
        for lane, front in enumerate(fronts):
            acc_mem = Memory(shape=signed(plan.acc_bits), depth=plan.groups, init=[], attrs=NO_RW_CHECK)
            m.submodules[f"acc_mem{lane}"] = acc_mem
            acc_wr, acc_rd = acc_mem.write_port(), acc_mem.read_port()
            ports.append((acc_rd, acc_wr))
            rmw = read_modify_write(m, plan, front, acc_rd.data, lane)
            rmws.append(rmw)
            # Readout (read, clear) or integration (read-modify-write); host access when idle.
            # Multiplexers, not an m.If (see lif.py: no unevaluated always @* block in Icarus).
            attach_access(
                m,
                self.acc_access[lane],
                acc_rd,
                acc_wr,
                read=(
                    Mux(reading, a_idx >> lane_bits, rmw.read_addr),
                    Mux(reading, advance & a_active & (a_lane == lane), rmw.read_en),
                ),
                write=(
                    Mux(reading, c_idx >> lane_bits, rmw.write_addr),
                    Mux(reading, 0, rmw.write_data),
                    Mux(reading, retire & (c_lane == lane), rmw.write_en),
                ),
            )
        b_lane = b_idx[:lane_bits] if lanes > 1 else 0
        value = Array(rd.data for rd, _ in ports)[b_lane] if lanes > 1 else ports[0][0].data
        if plan.has_bias:  # T·bias[i], read with acc[i] (stage A), added in stage C
            init = plan.bias_init()
            bias_mem = Memory(shape=signed(plan.bias_bits), depth=plan.n_out, init=init, attrs=NO_RW_CHECK)
            m.submodules.bias_mem = bias_mem
            bias_rd = bias_mem.read_port()
            m.d.comb += [bias_rd.addr.eq(a_idx), bias_rd.en.eq(advance & a_active)]
            value = value + bias_rd.data

        # The lanes' last markers are consumed by ``release``, a registered pulse after the
        # readout, so no lane's ready logic depends on every other lane's.
        release = Signal()
        m.d.sync += release.eq(0)
        at_last = [self._count_steps(m, lane, front, release) for lane, front in enumerate(fronts)]
        all_marked = Signal()
        drained = Signal()
        m.d.comb += [
            all_marked.eq(
                all_of([front.step_valid & last for front, last in zip(fronts, at_last, strict=True)])
            ),
            drained.eq(~any_of([rmw.busy for rmw in rmws])),
        ]
        with m.If(all_marked & drained & ~reading & ~release):
            m.d.sync += [reading.eq(1), a_idx.eq(0)]

        with m.If(advance):
            m.d.sync += [
                b_valid.eq(a_active),
                b_idx.eq(a_idx),
                c_valid.eq(b_valid),
                c_idx.eq(b_idx),
                c_value.eq(value),
            ]
            with m.If(a_active):
                m.d.sync += a_idx.eq(a_idx + 1)

        new_best = Signal()
        m.d.comb += new_best.eq((c_idx == 0) | (c_value > best_value))
        with m.If(retire & new_best):
            m.d.sync += [best_value.eq(c_value), best_index.eq(c_idx)]
        readout_inference = Signal()  # parity of the inference read out (toggles at each done)
        # A plain expression, not an assignment under m.If: Icarus would see an always @* block
        # that stays X until its inputs first change (the core's in-flight count reads done).
        m.d.comb += self.done.eq(retire & c_last)
        with m.If(retire & c_last):
            m.d.sync += [
                self.prediction.eq(Mux(new_best, c_idx, best_index)),
                reading.eq(0),
                release.eq(1),
                readout_inference.eq(~readout_inference),
            ]

        acc_reads = [
            (rd.en, Mux(reading, readout_inference, front.hit_inference))
            for (rd, _), front in zip(ports, fronts, strict=True)
        ]
        acc_writes = [
            (wr.en, Mux(reading, readout_inference, rmw.write_inference))
            for (_, wr), rmw in zip(ports, rmws, strict=True)
        ]
        streaming = self.streaming
        m.d.comb += [
            self.outputs.valid.eq(c_valid),
            self.outputs.payload.index.eq(c_idx),
            self.outputs.payload.value.eq(c_value),
            self.outputs.payload.last.eq(c_last),
        ]
        strobes = {  # per stat_* port, its strobes (count, inference parity)
            "ptr_reads": pointer_reads(m, plan, self.events, fronts, streaming),
            "syn_reads": [(front.syn_reads, front.syn_inference) for front in fronts],
            "acc_reads": acc_reads,
            "acc_writes": acc_writes,
            "sops": [(front.hit_valid, front.hit_inference) for front in fronts],
        }
        for name, tagged in strobes.items():
            m.d.comb += drive_stat(getattr(self, f"stat_{name}"), tagged, streaming)
        return m

    def _count_steps(self, m: Module, lane: int, front, release: Signal) -> Signal:
        """Lane ``lane``'s step counter: the lane takes each marker but the ``T``-th at once
        (``front.step_ready``), the ``T``-th with ``release``. Returns the flag ``steps = T −
        1`` (registered: the lane's next marker is its inference's last)."""
        timesteps = self.plan.timesteps
        steps = Signal(unsigned_bits(timesteps - 1), name=f"steps{lane}")
        at_last = Signal(init=int(timesteps == 1), name=f"at_last{lane}")
        following = Mux(at_last, 0, steps + 1)
        m.d.comb += front.step_ready.eq(~at_last | release)
        with m.If(front.step_taken):
            m.d.sync += [steps.eq(following), at_last.eq(following == timesteps - 1)]
        return at_last
