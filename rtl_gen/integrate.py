"""CSR integrate front end: input events to a stream of synaptic hits, one per cycle.

For every input event ``j`` the front end reads ``row_ptr[j]`` and ``row_ptr[j+1]`` (two read
ports of the pointer memory) and then streams the synapse words ``row_ptr[j] .. row_ptr[j+1]-1``
out of the synapse memory, one per cycle. The pointers of the next event are fetched while the
current row streams, so back-to-back events produce back-to-back hits without a bubble; an empty
row costs one cycle of the event stage and none of the synapse stage.

Pipeline (one register stage each)::

    accept event j (A) ──► pointer data (E) ──► pointers (P) ──[row queue]──► row range (R)
                       ──► synapse data (H) ──► synapse words (G) ──► hit (Q)

Row queue (``row_queue_depth`` entries: :data:`~esl_hw.rtl_gen.hardware.ROW_QUEUE_DEPTH` where
:func:`~esl_hw.rtl_gen.hardware.row_queue_depth` expects it to pay, else none): without it stage
P holds a row of ``n`` synapses until stage R takes it, so the events behind it wait even when
their rows are empty in this lane, and a lane pays ``max(1, n)`` cycles per event. With it,
stage P goes on at one event per cycle: it drops rows empty in the lane and puts the others, and
the markers, in order into a FIFO (LUT RAM on the ECP5) whose head stage R takes (stage S: the
head, or stage P itself while the queue is empty, so the queue adds no latency). A lane then
pays ``max(E, Σ n)`` cycles for ``E`` events whose rows hold ``Σ n`` of its synapses, as long as
the queue has room. That matters where a row has about one synapse per lane (the demo's 784-128
layer at 16 lanes: about 0.7), so that rows empty in a lane and rows of two or three alternate.

Every block-RAM read port (E, H) feeds only a register (P, G): on ECP5 an EBR without output
register has a 5.8 ns clock-to-output delay, so no logic may follow it in the same cycle. A
synapse memory longer than one block is split into blocks (``syn_block_words``), each read into
its own register in G; Q picks the addressed block's word.

An end-of-step marker travels in band: it is taken in stage S, behind the last word of the row
being streamed, as soon as the consumer raises ``step_ready`` (``step_taken``), without waiting
for the hits before it to drain. Every hit carries the bank of its step (``hit_bank``, which
toggles with every marker taken), so a consumer with two banks keeps integrating the next step
into the other bank while the hits of the last one drain (``busy_old``) and its sweep runs.
``step_valid`` says that the marker waits in S and every earlier hit has left stage Q (the
output layer's last step waits for it).

Consecutive inferences follow each other in the same stream (``T`` markers each), so a lane
also counts its markers modulo ``T`` and keeps the parity of the inference it reads
(``inference``, toggled by every ``T``-th marker taken); the parity travels with every synapse
read and hit (``syn_inference``, ``hit_inference``) beside the bank, so the core's counters
give each access to the inference it belongs to while two inferences overlap.

With ``L`` lanes every lane has its own integrator over its own CSR (the synapses whose post
index falls in its bank, see :mod:`esl_hw.rtl_gen.plan`) and its own event FIFO;
:func:`lane_front_ends` broadcasts each input event into all lane FIFOs, so the lanes run
independently within a step and meet again at its end-of-step marker.

The access-count strobes of the ``stat_*`` ports live in :mod:`esl_hw.rtl_gen.strobes`.
"""

from __future__ import annotations

from amaranth import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from esl_hw.rtl_gen.hardware import ICE40_SPRAM, SYNAPSE_BLOCK_RAM
from esl_hw.rtl_gen.memory_map import access_signature, attach_access
from esl_hw.rtl_gen.plan import LayerPlan, unsigned_bits
from esl_hw.rtl_gen.strobes import all_of, any_of, inference_parity

#: Memory attribute that tells Yosys a read and a write of the same address in the same cycle
#: never matter: no memory of the core relies on what such a read returns (the read-modify-writes
#: replace it by the forwarded sum, every other read and write address differ), and without it
#: Yosys puts bypass logic (a multiplexer and a delayed write) behind every block-RAM output.
NO_RW_CHECK = {"no_rw_check": 1}

#: Memory attributes that make Yosys map a memory to block RAM (EBR) rather than LUTs or LUT RAM.
#: The pointer and synapse memories are RAMs too: the host port and the rewiring unit write them.
BLOCK_RAM = {"ram_style": "block", **NO_RW_CHECK}


#: Attributes of a synapse memory in iCE40 SPRAM (``synapse_memory = "spram"``): Yosys maps a
#: ``huge`` memory without initial contents to ``SB_SPRAM256KA`` (16384 x 16, one shared port).
#: SPRAM cannot be initialised by the bitstream: the simulated core starts with the synapses
#: loaded, and the synthesis flow drops these memories' initial contents
#: (:func:`esl_hw.fpga.synth.drop_host_loaded_init`), so the host writes them before the first
#: inference.
SPRAM = {"ram_style": "huge", **NO_RW_CHECK}

#: Words of one SPRAM block.
SPRAM_WORDS = ICE40_SPRAM.shapes[0][0]

#: Largest number of synapse-memory blocks multiplexed in one register stage.
MUX_FANIN = 8


def block_words(width: int) -> int:
    """Words of ``width`` bits one ECP5 EBR (``DP16KD``) holds in its deepest fitting shape
    (16384 x 1, 8192 x 2, 4096 x 4, 2048 x 9, 1024 x 18; wider words use blocks side by side):
    :meth:`~esl_hw.rtl_gen.hardware.RamPrimitive.deepest_words` of
    :data:`~esl_hw.rtl_gen.hardware.SYNAPSE_BLOCK_RAM`."""
    return SYNAPSE_BLOCK_RAM.deepest_words(width)


def row_layout(ptr_bits: int) -> data.StructLayout:
    """An entry of a lane's row queue: a row's synapse range ``start .. end - 1`` or, with
    ``eos``, an end-of-step marker (range unused)."""
    return data.StructLayout({"start": unsigned(ptr_bits), "end": unsigned(ptr_bits), "eos": 1})


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
    syn_block_words : int or None
        Words per synapse-memory block, a power of two (default :func:`block_words` of the word
        width). A longer synapse memory is split into blocks of this many words, each read into
        its own register before one multiplexer picks the word: Yosys would otherwise put a
        multiplexer between the block RAMs and the first register.
    row_queue_depth : int or None
        Entries of the row queue (module doc), 0 for none; default ``plan.row_queue_depth``.

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
    hit_bank : Out(1)
        Bank of the hit's step: toggles with every marker taken (0 after reset).
    hit_inference : Out(1)
        Parity of the hit's inference: toggles with every ``T``-th marker taken (0 after reset).
    bank : Out(1)
        Bank of the step whose rows stage R takes now (the hits of a marker taken later).
    step_valid : Out(1)
        An end-of-step marker waits in stage S and every earlier hit has been presented.
    step_ready : In(1)
        The marker in stage S may be taken (it is, once the row before it has streamed).
    step_taken : Out(1)
        The marker in stage S is taken this cycle; the next rows' hits go to the other bank.
    busy : Out(1)
        A hit is in flight (stages R to Q).
    busy_old : Out(1)
        A hit of a bank other than the current one (a step whose marker was taken) is in flight.
    ptr_reads : Out(2)
        Pointer memory words read this cycle (0 or 2).
    syn_reads : Out(1)
        Synapse memory words read this cycle.
    syn_inference : Out(1)
        Parity of the inference of this cycle's synapse read (stage R).
    inference : Out(1)
        Parity of the inference whose events are read now (the next marker taken is its
        ``steps + 1``-th).
    ptr_access, syn_access : In(access_signature(...))
        Host access to the pointer (words with the empty-row flag, ``ptr_bits + 1`` wide) and
        synapse memories (:mod:`esl_hw.rtl_gen.memory_map`), only while the integrator is idle:
        ``addr``, ``r_en``, ``w_en``, ``w_data`` in, ``r_data`` out ``ACCESS_LATENCY`` (2) cycles
        after ``r_en``. A synapse access goes to the block holding ``addr``. Left at 0 they
        change nothing.
    """

    def __init__(
        self,
        plan: LayerPlan,
        lane: int = 0,
        syn_block_words: int | None = None,
        row_queue_depth: int | None = None,
    ) -> None:
        if not isinstance(plan, LayerPlan):
            self._MustUse__silence = True  # never elaborated: no unused-elaboratable warning
            raise TypeError(f"plan must be a LayerPlan, got {plan!r}")
        if not 0 <= lane < plan.lanes:
            self._MustUse__silence = True
            raise ValueError(f"lane must be in 0..{plan.lanes - 1}, got {lane!r}")
        if syn_block_words is None:
            syn_block_words = plan.syn_block_words()
        words = syn_block_words
        if isinstance(words, bool) or not isinstance(words, int) or words < 2 or words & (words - 1):
            self._MustUse__silence = True
            raise ValueError(f"syn_block_words must be a power of two >= 2, got {syn_block_words!r}")
        if row_queue_depth is None:
            row_queue_depth = plan.row_queue_depth
        depth = row_queue_depth
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            self._MustUse__silence = True
            raise ValueError(f"row_queue_depth must be an integer >= 0, got {row_queue_depth!r}")
        self.plan = plan
        self.lane = lane
        self.syn_block_words = syn_block_words
        self.row_queue_depth = row_queue_depth
        super().__init__(
            {
                "events": In(stream.Signature(event_layout(plan.in_index_bits))),
                "hit_valid": Out(1),
                "hit_col": Out(plan.local_bits),
                "hit_weight": Out(signed(plan.w_bits)),
                "hit_bank": Out(1),
                "hit_inference": Out(1),
                "bank": Out(1),
                "step_valid": Out(1),
                "step_ready": In(1),
                "step_taken": Out(1),
                "busy": Out(1),
                "busy_old": Out(1),
                "ptr_reads": Out(2),
                "syn_reads": Out(1),
                "syn_inference": Out(1),
                "inference": Out(1),
                "ptr_access": In(access_signature(unsigned_bits(plan.n_in), plan.ptr_bits + 1)),
                "syn_access": In(access_signature(plan.ptr_bits, plan.syn_bits)),
            }
        )

    def elaborate(self, platform) -> Module:
        plan = self.plan
        m = Module()
        m.submodules.ptr_mem = ptr_mem = Memory(
            shape=unsigned(plan.ptr_bits + 1),
            depth=plan.n_in + 1,
            init=plan.ptr_words(self.lane),
            attrs=BLOCK_RAM,
        )
        ptr_lo = ptr_mem.read_port()
        ptr_hi = ptr_mem.read_port()
        ptr_wr = ptr_mem.write_port()

        # Stage E: pointer data of the accepted event at the read ports (held while E waits).
        e_valid = Signal()
        e_eos = Signal()
        # Stage P: the pointers registered (block-RAM outputs drive nothing but flip-flops).
        p_valid = Signal()
        p_eos = Signal()
        # Block-RAM words land in reset-less registers: no reset multiplexer before the flip-flop.
        # ``p_word`` (row start and empty-row flag) is also the host's read register of the
        # pointer memory, so the block-RAM output has one register to drive, not two.
        p_word = Signal(plan.ptr_bits + 1, reset_less=True)
        p_start = p_word[: plan.ptr_bits]
        p_empty_row = p_word[plan.ptr_bits]
        p_end = Signal(plan.ptr_bits, reset_less=True)
        host_read = Signal()
        # Stage R: synapse address range being streamed (r_final = its last address, r_at_final:
        # r_addr == r_final, registered).
        r_active = Signal()
        r_addr = Signal(plan.ptr_bits)
        r_final = Signal(plan.ptr_bits)
        r_at_final = Signal()
        # Stage H: synapse words at the read ports; G: registered; Q: the hit registered.
        h_valid = Signal()
        g_valid = Signal()
        q_valid = Signal()
        q_col = Signal(plan.local_bits)
        q_weight = Signal(signed(plan.w_bits))

        r_last = Signal()
        r_free = Signal()
        p_empty = Signal()
        p_load = Signal()
        p_consume = Signal()
        e_move = Signal()
        a_move = Signal()
        accept = Signal()
        # Stage A: the accepted event in flip-flops (the lane FIFO's output is LUT RAM, so the
        # pointer memory's address comes from a register, not through the FIFO's read logic).
        a_valid = Signal()
        a_eos = Signal()
        a_index = Signal(plan.in_index_bits)
        a_next = Signal(plan.in_index_bits + 1)
        # Stage S: the next row range or marker for stage R, from the row queue's head or, when
        # the queue is empty, straight from stage P.
        s_row, s_marker, s_start, s_end, p_taken = self._row_source(
            m, p_load | self.step_taken, p_valid, p_eos, p_empty_row, p_start, p_end
        )
        m.d.comb += [
            r_last.eq(r_active & r_at_final),
            r_free.eq(~r_active | r_last),
            p_empty.eq(p_valid & ~p_eos & p_empty_row),
            p_load.eq(s_row & r_free),
            self.step_taken.eq(s_marker & r_free & self.step_ready),
            # (without a queue the same expression as before the queue existed: the same netlist)
            p_consume.eq(p_empty | p_load | self.step_taken if p_taken is None else p_empty | p_taken),
            e_move.eq(e_valid & (~p_valid | p_consume)),
            a_move.eq(a_valid & (~e_valid | e_move)),
            self.events.ready.eq(~a_valid | a_move),
            accept.eq(self.events.valid & self.events.ready),
        ]
        with m.If(accept):
            m.d.sync += [
                a_valid.eq(1),
                a_eos.eq(self.events.payload.eos),
                a_index.eq(self.events.payload.index),
                a_next.eq(self.events.payload.index + 1),
            ]
        with m.Elif(a_move):
            m.d.sync += a_valid.eq(0)

        read_ptrs = a_move & ~a_eos
        m.d.comb += [
            ptr_hi.addr.eq(a_next),
            ptr_hi.en.eq(read_ptrs),
            self.ptr_reads.eq(read_ptrs << 1),
        ]
        attach_access(m, self.ptr_access, ptr_lo, ptr_wr, read=(a_index, read_ptrs), held=p_word)
        m.d.sync += host_read.eq(self.ptr_access.r_en)
        with m.If(e_move | host_read):
            m.d.sync += p_word.eq(ptr_lo.data)
        with m.If(a_move):
            m.d.sync += [e_valid.eq(1), e_eos.eq(a_eos)]
        with m.Elif(e_move):
            m.d.sync += e_valid.eq(0)

        with m.If(e_move):
            m.d.sync += [
                p_valid.eq(1),
                p_eos.eq(e_eos),
                p_end.eq(ptr_hi.data[: plan.ptr_bits]),
            ]
        with m.Elif(p_consume):
            m.d.sync += p_valid.eq(0)

        bank = Signal()  # the bank of the step being read from the FIFO (toggles at each marker)
        with m.If(self.step_taken):
            m.d.sync += bank.eq(~bank)
        inference = inference_parity(m, self.step_taken, plan.timesteps, f"lane{self.lane}")
        r_bank = Signal()
        r_inf = Signal()
        with m.If(p_load):
            m.d.sync += [
                r_active.eq(1),
                r_bank.eq(bank),
                r_inf.eq(inference),
                r_addr.eq(s_start),
                r_final.eq(s_end - 1),
                r_at_final.eq(s_start + 1 == s_end),
            ]
        with m.Elif(r_last):
            m.d.sync += r_active.eq(0)
        with m.Elif(r_active):
            m.d.sync += [r_addr.eq(r_addr + 1), r_at_final.eq(r_addr + 1 == r_final)]

        word, extra = self._synapse_words(m, r_addr, r_active)
        # Stages between G and Q of a many-block synapse memory (a registered multiplexer level).
        tree_valid = [Signal(name=f"syn_tree_valid{level}") for level in range(extra)]
        m.d.comb += self.syn_reads.eq(r_active)
        # Each stage's bank, beside its valid bit (R's is r_bank).
        h_bank, g_bank, q_bank = Signal(), Signal(), Signal()
        h_inf, g_inf, q_inf = Signal(), Signal(), Signal()
        tree_bank = [Signal(name=f"syn_tree_bank{level}") for level in range(extra)]
        tree_inf = [Signal(name=f"syn_tree_inf{level}") for level in range(extra)]
        before_q, before_bank, before_inf = g_valid, g_bank, g_inf
        for stage, stage_bank, stage_inf in zip(tree_valid, tree_bank, tree_inf, strict=True):
            m.d.sync += [stage.eq(before_q), stage_bank.eq(before_bank), stage_inf.eq(before_inf)]
            before_q, before_bank, before_inf = stage, stage_bank, stage_inf
        valids = [r_active, h_valid, g_valid, *tree_valid, q_valid]
        banks = [r_bank, h_bank, g_bank, *tree_bank, q_bank]
        m.d.comb += [
            self.busy.eq(any_of(valids)),
            self.busy_old.eq(
                any_of([valid & (side != bank) for valid, side in zip(valids, banks, strict=True)])
            ),
            self.bank.eq(bank),
            self.inference.eq(inference),
            self.syn_inference.eq(r_inf),
            self.step_valid.eq(s_marker & ~self.busy),
        ]
        m.d.sync += [
            h_valid.eq(r_active),
            h_bank.eq(r_bank),
            h_inf.eq(r_inf),
            g_valid.eq(h_valid),
            g_bank.eq(h_bank),
            g_inf.eq(h_inf),
            q_valid.eq(before_q),
            q_bank.eq(before_bank),
            q_inf.eq(before_inf),
            q_col.eq(word[: plan.local_bits]),
            q_weight.eq(word[plan.local_bits :].as_signed()),
        ]
        m.d.comb += [
            self.hit_valid.eq(q_valid),
            self.hit_col.eq(q_col),
            self.hit_weight.eq(q_weight),
            self.hit_bank.eq(q_bank),
            self.hit_inference.eq(q_inf),
        ]
        return m

    def _row_source(self, m: Module, s_taken, p_valid, p_eos, p_empty_row, p_start, p_end) -> tuple:
        """Stage S: what stage R takes next, ``(row, marker, start, end, p_taken)``: a row
        ``start .. end - 1`` waits, a marker waits, and (``p_taken``) whether stage P's row or
        marker leaves P this cycle.

        Without a row queue (``row_queue_depth`` 0) stage S is stage P itself, and P's row or
        marker leaves when stage R takes it (``p_taken`` ``None``: ``s_taken``). With one (module
        doc), stage S is the queue's head, or stage P when the queue is empty (no cycle lost to
        the queue then); a row or marker in P that stage R does not take this cycle goes into the
        queue, so P moves on to the next event. Rows empty in this lane never enter it."""
        p_row = p_valid & ~p_eos & ~p_empty_row
        p_marker = p_valid & p_eos
        if not self.row_queue_depth:
            return p_row, p_marker, p_start, p_end, None
        layout = row_layout(self.plan.ptr_bits)
        m.submodules.row_queue = queue = fifo.SyncFIFO(width=layout.size, depth=self.row_queue_depth)
        head = data.View(layout, queue.r_data)
        written = data.View(layout, queue.w_data)
        from_p = ~queue.r_rdy
        p_taken = Signal(name="p_taken")
        m.d.comb += [
            queue.r_en.eq(s_taken),
            written.start.eq(p_start),
            written.end.eq(p_end),
            written.eos.eq(p_eos),
            queue.w_en.eq((p_row | p_marker) & ~(from_p & s_taken)),
            p_taken.eq((from_p & s_taken) | (queue.w_en & queue.w_rdy)),
        ]
        return (
            Mux(from_p, p_row, ~head.eos),
            Mux(from_p, p_marker, head.eos),
            Mux(from_p, p_start, head.start),
            Mux(from_p, p_end, head.end),
            p_taken,
        )

    def _synapse_words(self, m: Module, addr: Signal, enable: Signal) -> tuple[object, int]:
        """Synapse memory blocks ``syn_mem``, ``syn_mem1``, …: read at ``addr`` (stage R), each
        block's word registered (stage G). Returns the addressed block's word for stage Q and the
        number of register stages between G and Q: more than :data:`MUX_FANIN` blocks are
        multiplexed in groups of ``MUX_FANIN`` into registers first (one extra stage).

        ``syn_access`` shares the read ports and the address (its address while ``r_en`` or
        ``w_en``, so each block has one address: an SPRAM has one port) and owns the write
        ports: a write goes to the block holding its address. Its read data is the addressed
        block's word picked from the stage-G registers (``ACCESS_LATENCY`` cycles after ``r_en``,
        multiplexed from flip-flops, never from a block-RAM output)."""
        plan, access = self.plan, self.syn_access
        depth, words = plan.syn_depth(self.lane), self.syn_block_words
        init = list(plan.syn_init(self.lane))
        shift = (words - 1).bit_length() if depth > words else 0
        blocks = -(-depth // words) if shift else 1
        size = words if shift else depth
        port_addr = Signal.like(addr, name="syn_port_addr")
        m.d.comb += port_addr.eq(Mux(access.r_en | access.w_en, access.addr, addr))
        held = []
        for block in range(blocks):
            memory = Memory(
                shape=unsigned(plan.syn_bits),
                depth=min(size, depth - block * size),
                init=init[block * size : (block + 1) * size],
                attrs=SPRAM if plan.synapse_memory == "spram" else BLOCK_RAM,
            )
            m.submodules["syn_mem" + (str(block) if block else "")] = memory
            port = memory.read_port()
            write = memory.write_port()
            word = Signal(plan.syn_bits, name=f"syn_word{block}", reset_less=True)
            here = access.addr[shift:] == block if shift else 1
            m.d.comb += [
                port.addr.eq(port_addr[:shift] if shift else port_addr),
                port.en.eq(enable | access.r_en),
                write.addr.eq(port_addr[:shift] if shift else port_addr),
                write.data.eq(access.w_data),
                write.en.eq(access.w_en & here),
            ]
            m.d.sync += word.eq(port.data)
            held.append(word)
        if blocks == 1:
            m.d.comb += access.r_data.eq(held[0])
            return held[0], 0
        h_block = Signal(range(blocks), name="syn_h_block")
        g_block = Signal(range(blocks), name="syn_g_block")
        m.d.sync += [h_block.eq(port_addr[shift:]), g_block.eq(h_block)]
        picked = Signal(plan.syn_bits, name="syn_picked")
        m.d.comb += [picked.eq(Array(held)[g_block]), access.r_data.eq(picked)]
        if blocks <= MUX_FANIN:
            return picked, 0
        low = (MUX_FANIN - 1).bit_length()
        grouped = []
        for start in range(0, blocks, MUX_FANIN):
            group = Signal(plan.syn_bits, name=f"syn_group{start // MUX_FANIN}")
            m.d.sync += group.eq(Array(held[start : start + MUX_FANIN])[g_block[:low]])
            grouped.append(group)
        t_group = Signal(range(len(grouped)), name="syn_t_group")
        m.d.sync += t_group.eq(g_block[low:])
        return Array(grouped)[t_group], 1


def lane_access_members(plan: LayerPlan) -> dict:
    """Members ``ptr_access`` and ``syn_access`` (one per lane) of a layer core: host access to the
    pointer and synapse memories of every lane, see :class:`CsrIntegrator`."""
    return {
        "ptr_access": In(access_signature(unsigned_bits(plan.n_in), plan.ptr_bits + 1)).array(plan.lanes),
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
    ready = all_of(room)
    m.d.comb += [events.ready.eq(ready), accept.eq(events.valid & ready)]
    return fronts
