"""CSR integrate front end: input events to a stream of synaptic hits, one per cycle.

For every input event ``j`` the front end reads ``row_ptr[j]`` and ``row_ptr[j+1]`` (two read
ports of the pointer memory) and then streams the synapse words ``row_ptr[j] .. row_ptr[j+1]-1``
out of the synapse memory, one per cycle. The pointers of the next event are fetched while the
current row streams, so back-to-back events produce back-to-back hits without a bubble; an empty
row costs one cycle of the event stage and none of the synapse stage.

Pipeline (one register stage each)::

    accept event j ──► pointer data (E) ──► row range (R) ──► synapse data = hit (H)

An end-of-step marker waits in stage E until every earlier hit has left stage H; it is then
offered on ``step_valid`` and held (blocking further events) until the consumer raises
``step_ready``, normally when its sweep or readout has finished.

With ``L`` lanes every lane has its own integrator over its own CSR (the synapses whose post
index falls in its bank, see :mod:`esl_hw.rtl_gen.plan`) and its own event FIFO;
:func:`lane_front_ends` broadcasts each input event into all lane FIFOs, so the lanes run
independently within a step and meet again at its end-of-step marker.
"""

from __future__ import annotations

from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from esl_hw.rtl_gen.memory_map import access_signature, attach_access
from esl_hw.rtl_gen.plan import LayerPlan, unsigned_bits


def event_layout(index_bits: int) -> data.StructLayout:
    """Payload of a spike event stream: ``index`` (low bits) then the end-of-step flag ``eos``."""
    if index_bits < 1:
        raise ValueError(f"index_bits must be at least 1, got {index_bits}")
    return data.StructLayout({"index": unsigned(index_bits), "eos": 1})


class CsrIntegrator(wiring.Component):
    """Turn input events into synaptic hits read from CSR memories initialised from the artifact.

    Parameters
    ----------
    plan : LayerPlan
        The layer whose row pointers and synapses this front end holds.
    lane : int
        Which lane's CSR (``0 .. plan.lanes - 1``).

    Attributes
    ----------
    events : In(stream.Signature(event_layout(plan.in_index_bits)))
        Input events ``{index, eos}``: per step the spiking inputs, then one end-of-step marker.
    hit_valid : Out(1)
        A synaptic hit is presented this cycle (no backpressure: the consumer takes one per cycle).
    hit_col : Out(plan.local_bits)
        Post-synaptic neuron of the hit, as a bank-local index (the neuron divided by the lanes).
    hit_weight : Out(signed(plan.w_bits))
        Weight of the hit.
    step_valid : Out(1)
        An end-of-step marker is waiting and every earlier hit has been presented.
    step_ready : In(1)
        The consumer has finished the step; consumes the marker.
    ptr_reads : Out(2)
        Pointer memory words read this cycle (0 or 2).
    syn_reads : Out(1)
        Synapse memory words read this cycle.
    ptr_access, syn_access : In(access_signature(...))
        Host access to the pointer and synapse memories (:mod:`esl_hw.rtl_gen.memory_map`), only
        while the integrator is idle: ``addr``, ``r_en``, ``w_en``, ``w_data`` in, ``r_data`` out
        one cycle after ``r_en``. Left at 0 they change nothing.
    """

    def __init__(self, plan: LayerPlan, lane: int = 0) -> None:
        if not isinstance(plan, LayerPlan):
            self._MustUse__silence = True  # never elaborated: no unused-elaboratable warning
            raise TypeError(f"plan must be a LayerPlan, got {plan!r}")
        if not 0 <= lane < plan.lanes:
            self._MustUse__silence = True
            raise ValueError(f"lane must be in 0..{plan.lanes - 1}, got {lane!r}")
        self.plan = plan
        self.lane = lane
        super().__init__(
            {
                "events": In(stream.Signature(event_layout(plan.in_index_bits))),
                "hit_valid": Out(1),
                "hit_col": Out(plan.local_bits),
                "hit_weight": Out(signed(plan.w_bits)),
                "step_valid": Out(1),
                "step_ready": In(1),
                "ptr_reads": Out(2),
                "syn_reads": Out(1),
                "ptr_access": In(access_signature(unsigned_bits(plan.n_in), plan.ptr_bits)),
                "syn_access": In(access_signature(plan.ptr_bits, plan.syn_bits)),
            }
        )

    def elaborate(self, platform) -> Module:
        plan = self.plan
        m = Module()
        m.submodules.ptr_mem = ptr_mem = Memory(
            shape=unsigned(plan.ptr_bits), depth=plan.n_in + 1, init=plan.ptr_init(self.lane)
        )
        m.submodules.syn_mem = syn_mem = Memory(
            shape=unsigned(plan.syn_bits), depth=plan.syn_depth(self.lane), init=plan.syn_init(self.lane)
        )
        ptr_lo = ptr_mem.read_port()
        ptr_hi = ptr_mem.read_port()
        syn_rd = syn_mem.read_port()
        ptr_wr = ptr_mem.write_port()
        syn_wr = syn_mem.write_port()

        # Stage E: pointer data of the accepted event (held by the read ports while E waits).
        e_valid = Signal()
        e_eos = Signal()
        # Stage R: synapse address range being streamed.
        r_active = Signal()
        r_addr = Signal(plan.ptr_bits)
        r_end = Signal(plan.ptr_bits)
        # Stage H: synapse word read in the previous cycle.
        h_valid = Signal()

        start, end = ptr_lo.data, ptr_hi.data
        r_last = Signal()
        r_free = Signal()
        e_empty = Signal()
        e_load = Signal()
        e_consume = Signal()
        accept = Signal()
        m.d.comb += [
            r_last.eq(r_active & (r_addr + 1 == r_end)),
            r_free.eq(~r_active | r_last),
            e_empty.eq(e_valid & ~e_eos & (start == end)),
            e_load.eq(e_valid & ~e_eos & (start != end) & r_free),
            self.step_valid.eq(e_valid & e_eos & ~r_active & ~h_valid),
            e_consume.eq(e_empty | e_load | (self.step_valid & self.step_ready)),
            self.events.ready.eq(~e_valid | e_consume),
            accept.eq(self.events.valid & self.events.ready),
        ]

        index = self.events.payload.index
        read_ptrs = accept & ~self.events.payload.eos
        m.d.comb += [
            ptr_hi.addr.eq(index + 1),
            ptr_hi.en.eq(read_ptrs),
            self.ptr_reads.eq(read_ptrs << 1),
        ]
        with m.If(accept):
            m.d.sync += [e_valid.eq(1), e_eos.eq(self.events.payload.eos)]
        with m.Elif(e_consume):
            m.d.sync += e_valid.eq(0)

        with m.If(e_load):
            m.d.sync += [r_active.eq(1), r_addr.eq(start), r_end.eq(end)]
        with m.Elif(r_last):
            m.d.sync += r_active.eq(0)
        with m.Elif(r_active):
            m.d.sync += r_addr.eq(r_addr + 1)

        m.d.comb += [
            self.syn_reads.eq(r_active),
        ]
        attach_access(m, self.ptr_access, ptr_lo, ptr_wr, read=(index, read_ptrs))
        attach_access(m, self.syn_access, syn_rd, syn_wr, read=(r_addr, r_active))
        m.d.sync += h_valid.eq(r_active)
        m.d.comb += [
            self.hit_valid.eq(h_valid),
            self.hit_col.eq(syn_rd.data[: plan.local_bits]),
            self.hit_weight.eq(syn_rd.data[plan.local_bits :].as_signed()),
        ]
        return m


def register_hit(
    m: Module, plan: LayerPlan, front: CsrIntegrator, lane: int
) -> tuple[Signal, Signal, Signal]:
    """The read-modify-write stage's registers: ``front``'s synapse hit (valid, column, weight),
    one cycle later, while the current/accumulator memory read issued with it completes."""
    valid = Signal(name=f"rmw_valid{lane}")
    col = Signal(plan.local_bits, name=f"rmw_col{lane}")
    weight = Signal(signed(plan.w_bits), name=f"rmw_weight{lane}")
    m.d.sync += [valid.eq(front.hit_valid), col.eq(front.hit_col), weight.eq(front.hit_weight)]
    return valid, col, weight


def add_strobes(strobes: list) -> object:
    """Sum of per-lane strobes (an Amaranth expression wide enough for the total)."""
    return sum(strobes[1:], strobes[0])


def lane_access_members(plan: LayerPlan) -> dict:
    """Members ``ptr_access`` and ``syn_access`` (one per lane) of a layer core: host access to the
    pointer and synapse memories of every lane, see :class:`CsrIntegrator`."""
    return {
        "ptr_access": In(access_signature(unsigned_bits(plan.n_in), plan.ptr_bits)).array(plan.lanes),
        "syn_access": In(access_signature(plan.ptr_bits, plan.syn_bits)).array(plan.lanes),
    }


def connect_lane_access(m: Module, core: wiring.Component, fronts: list[CsrIntegrator]) -> None:
    """Pass ``core``'s ``ptr_access`` and ``syn_access`` of each lane to that lane's integrator."""
    for lane, front in enumerate(fronts):
        wiring.connect(m, wiring.flipped(core.ptr_access[lane]), front.ptr_access)
        wiring.connect(m, wiring.flipped(core.syn_access[lane]), front.syn_access)


def lane_front_ends(m: Module, plan: LayerPlan, events: stream.Interface, depth: int) -> list[CsrIntegrator]:
    """Add one event FIFO and one :class:`CsrIntegrator` per lane to ``m``; return the integrators.

    ``events`` (the layer's input stream, seen from inside the layer) is accepted only when every
    lane FIFO has room, and then written into all of them: no event is lost or duplicated, and a
    lane that runs ahead keeps going until its FIFO is empty. Submodules ``queue<b>`` and
    ``front<b>``.
    """
    fronts = []
    room = []
    accept = Signal(name=f"accept{plan.index}")
    for lane in range(plan.lanes):
        queue = fifo.SyncFIFOBuffered(width=plan.in_index_bits + 1, depth=depth)
        front = CsrIntegrator(plan, lane)
        m.submodules[f"queue{lane}"] = queue
        m.submodules[f"front{lane}"] = front
        m.d.comb += [
            queue.w_data.eq(events.payload.as_value()),
            queue.w_en.eq(accept),
            front.events.payload.eq(queue.r_data),
            front.events.valid.eq(queue.r_rdy),
            queue.r_en.eq(front.events.ready),
        ]
        room.append(queue.w_rdy)
        fronts.append(front)
    ready = room[0]
    for lane_room in room[1:]:
        ready = ready & lane_room
    m.d.comb += [events.ready.eq(ready), accept.eq(events.valid & ready)]
    return fronts
