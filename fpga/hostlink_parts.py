"""Parts of the UART host link (:class:`~esl_hw.fpga.hostlink.HostLink`): the event buffer, the
reply sender, and the signatures and helpers the parts share.

::

    rx bytes ─► FrameParser ──buffer──► EventBuffer ──events──► core
                    │ reply, args, state, completed
                    ▼
    tx bytes ◄─ ReplySender ◄── free, outputs, prediction, counters, host port reads

:class:`~esl_hw.fpga.hostlink_parser.FrameParser` checks each frame and executes it (event writes
into the buffer, START, WRITE_MEMORY, REWIRE) and hands the reply to :class:`ReplySender`, which
builds the reply frame (READ_MEMORY reads through the host port while it sends) and keeps the
last inference's outputs. :class:`EventBuffer` is the circular event FIFO with tentative writes
that feeds the core. Every part takes the core's :class:`~esl_hw.rtl_gen.plan.CorePlan`, computed
once by the link. Frame format and error codes: docs/protocol.md, :mod:`esl_hw.fpga.protocol`.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from esl_hw.artifact import Model
from esl_hw.fpga import protocol as P
from esl_hw.rtl_gen import counter_names
from esl_hw.rtl_gen.integrate import event_layout
from esl_hw.rtl_gen.memory_map import BusShape
from esl_hw.rtl_gen.output import output_layout
from esl_hw.rtl_gen.plan import CorePlan

#: A reply for :class:`ReplySender`: the reply's command byte (the request's with
#: :data:`protocol.REPLY`, or :data:`protocol.ERROR`), and for an error its code and the
#: request's command.
REPLY_LAYOUT = data.StructLayout({"command": 8, "error": 4, "error_command": 8})
#: Bits of the frame arguments: the first 7 payload bytes (READ_MEMORY, WRITE_MEMORY, REWIRE).
ARGS_BITS = 56


def acc_bytes(model: Model) -> int:
    """Bytes per output accumulator in READ_OUTPUTS."""
    return -(-model.acc_bits() // 8)


def word_bytes(plan: CorePlan) -> int:
    """Bytes per memory word in READ_MEMORY and WRITE_MEMORY: the host bus width, rounded up."""
    return -(-plan.bus_shape.data_bits // 8)


def crc8_step(crc: Value, byte: Value) -> Value:
    """Combinational CRC-8 (polynomial 0x07) update of ``crc`` with ``byte``: a XOR network.

    CRC-8 without reflection is linear over GF(2): output bit ``j`` is the XOR of the bits ``i`` of
    ``crc ^ byte`` for which :func:`protocol.crc8` maps ``1 << i`` to a value with bit ``j`` set.
    """
    value = Value.cast(crc ^ byte)
    images = [P.crc8(bytes([1 << bit])) for bit in range(8)]
    bits = [Cat(*(value[i] for i in range(8) if images[i] >> j & 1)).xor() for j in range(8)]
    return Cat(*bits)


def buffer_signature(depth: int) -> wiring.Signature:
    """The event buffer seen from the parser: ``write`` (``data``, one word at the tentative end),
    ``commit`` (the tentative words join the FIFO), ``rollback`` (they are dropped), ``start``
    (feed the next inference) out; ``free`` (committed free words, 0 .. ``depth``) in."""
    return wiring.Signature(
        {
            "write": Out(1),
            "data": Out(16),
            "commit": Out(1),
            "rollback": Out(1),
            "start": Out(1),
            "free": In(depth.bit_length()),
        }
    )


def host_signature(shape: BusShape, access: str) -> wiring.Signature:
    """The core's host port (``host_*``) seen from a master that only reads or only writes:
    ``valid``, ``mem``, ``addr`` out, ``ready`` in; for ``"write"`` also ``write`` and ``wdata``
    out, for ``"read"`` ``rvalid`` and ``rdata`` in."""
    members = {"valid": Out(1), "mem": Out(shape.id_bits), "addr": Out(shape.addr_bits), "ready": In(1)}
    if access == "write":
        members.update(write=Out(1), wdata=Out(shape.data_bits))
    elif access == "read":
        members.update(rvalid=In(1), rdata=In(shape.data_bits))
    else:
        raise ValueError(f"access must be 'read' or 'write', got {access!r}")
    return wiring.Signature(members)


def rewire_signature() -> wiring.Signature:
    """A rewire request in the protocol's widths: ``start``, ``layer`` (8), ``k`` (16), ``seed``
    (32) out; ``idle`` (the core takes requests), ``done``, ``error`` in."""
    return wiring.Signature(
        {
            "start": Out(1),
            "layer": Out(8),
            "k": Out(16),
            "seed": Out(32),
            "idle": In(1),
            "done": In(1),
            "error": In(1),
        }
    )


def host_target(m: Module, host, plan: CorePlan, mem: Value, address: Value) -> Value:
    """Drive ``host``'s ``mem`` and ``addr``; return whether both are on the map of the core of
    ``plan`` (else nothing is accessed and a read gives 0)."""
    valid = Signal(name="host_target_valid")
    m.d.comb += [
        host.mem.eq(mem),
        host.addr.eq(address),
        valid.eq((mem < len(plan.regions)) & (address >> len(host.addr) == 0)),
    ]
    return valid


class EventBuffer(wiring.Component):
    """Circular FIFO of 16-bit event words that feeds the core, with tentative writes.

    Written words stay tentative until ``commit`` (``rollback`` drops them), so a frame with a bad
    CRC never injects events. After ``start`` the buffer feeds the core until ``T`` end-of-step
    markers have passed, one word per two cycles, then holds the next words until the next
    ``start``.

    Parameters
    ----------
    plan : CorePlan
        The core's plan (its first layer's input width and the model's ``T``).
    depth : int
        Words, a power of two.

    Attributes
    ----------
    write : In(buffer_signature(depth))
        From the parser: ``write`` / ``data``, ``commit``, ``rollback``, ``start``; ``free`` out
        (``depth`` minus the committed words not yet fed).
    events : Out(stream.Signature(event_layout(in_index_bits)))
        To the core's ``events``: bits 14..0 of a word are the ``index``, bit 15 ``eos``.
    """

    def __init__(self, plan: CorePlan, depth: int) -> None:
        if not isinstance(depth, int) or depth < 2 or depth & (depth - 1):
            self._MustUse__silence = True  # never elaborated
            raise ValueError(f"depth must be a power of two of at least 2, got {depth!r}")
        self.plan = plan
        self.depth = depth
        super().__init__(
            {
                "write": In(buffer_signature(depth)),
                "events": Out(stream.Signature(event_layout(plan[0].in_index_bits))),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        depth, abits, port = self.depth, self.depth.bit_length() - 1, self.write
        m.submodules.words = words = Memory(shape=16, depth=depth, init=[])
        writer, reader = words.write_port(), words.read_port()
        # Pointers one bit wider than the address.
        wr, wr_commit, rd = (Signal(abits + 1, name=n) for n in ("wr", "wr_commit", "rd"))
        m.d.comb += [
            port.free.eq(depth - (wr_commit - rd)),
            writer.addr.eq(wr[:abits]),
            writer.data.eq(port.data),
            writer.en.eq(port.write),
            reader.addr.eq(rd[:abits]),
        ]
        with m.If(port.write):
            m.d.sync += wr.eq(wr + 1)
        with m.If(port.rollback):
            m.d.sync += wr.eq(wr_commit)
        with m.If(port.commit):
            m.d.sync += wr_commit.eq(wr)
        self._feed(m, reader, rd, wr_commit)
        return m

    def _feed(self, m: Module, reader, rd: Signal, wr_commit: Signal) -> None:
        """Read a word when the output register is free, present it while armed, count markers."""
        timesteps, events = self.plan.model.timesteps, self.events
        pending, out_valid, armed = Signal(), Signal(), Signal()
        out_word = Signal(16)
        markers = Signal(range(timesteps + 1))
        consumed = Signal()
        m.d.comb += [
            events.valid.eq(out_valid & armed),
            events.payload.index.eq(out_word[: len(events.payload.index)]),
            events.payload.eos.eq(out_word[15]),
            consumed.eq(events.valid & events.ready),
        ]
        with m.If(pending):
            m.d.sync += [out_word.eq(reader.data), out_valid.eq(1)]
        with m.Elif(consumed):
            m.d.sync += out_valid.eq(0)
        issue = (rd != wr_commit) & ~pending & (~out_valid | consumed)
        m.d.sync += pending.eq(issue)
        with m.If(issue):
            m.d.sync += rd.eq(rd + 1)
        with m.If(consumed & out_word[15]):
            m.d.sync += markers.eq(markers + 1)
            with m.If(markers == timesteps - 1):
                m.d.sync += armed.eq(0)
        with m.If(self.write.start):
            m.d.sync += [armed.eq(1), markers.eq(0)]


class ReplySender(wiring.Component):
    """Reply frames: header, payload bytes from the reply's source, CRC; and the output memory.

    When ``reply`` is valid the sender snapshots the small payloads (free buffer space, status or
    error), then sends one byte per ``tx`` transfer: INFO from a constant, READ_OUTPUTS the
    prediction and the output memory (one accumulator per output neuron, sign-extended, written
    from ``outputs``), READ_COUNTERS the counters, READ_MEMORY words read through the host port
    before each word's first byte. It takes the reply (``reply.ready``) with the CRC byte.

    Parameters
    ----------
    plan : CorePlan
        The core's plan (output widths, counters, memory map and bus width).
    info : bytes
        The INFO reply payload (:func:`esl_hw.fpga.hostlink.info_payload`).
    event_depth : int
        Words of the event buffer (the width of ``free``).

    Attributes
    ----------
    reply : In(stream.Signature(REPLY_LAYOUT))
        The reply to send.
    tx : Out(stream.Signature(8))
        Bytes to the UART transmitter.
    args : In(56)
        The request's arguments (READ_MEMORY: memory id, address, count).
    free : In(event_depth.bit_length())
        Free event buffer words (in the replies to LOAD_EVENTS and STATUS, and in error replies).
    state : In(2)
        The inference state (:class:`protocol.State`, in STATUS).
    completed : In(16)
        Inferences completed (in STATUS).
    outputs : In(stream.Signature(output_layout(out_index_bits, acc_bits)))
        The core's output accumulators (always ready).
    prediction : In(out_index_bits)
        The core's prediction.
    counters : In(data.ArrayLayout(32, len(counter_names)))
        The core's ``perf_*`` counters in :func:`~esl_hw.rtl_gen.counter_names` order.
    host : Out(host_signature(plan.bus_shape, "read"))
        READ_MEMORY's reads of the core's host port (``mem``, ``addr`` 0 between them).
    error : Out(1)
        High while an error reply is pending or being sent.
    """

    def __init__(self, plan: CorePlan, info: bytes, event_depth: int) -> None:
        self.plan = plan
        self.info = bytes(info)
        self.names = counter_names(plan.model)
        self.word_bytes = word_bytes(plan)
        self.acc_bytes = acc_bytes(plan.model)
        last = plan[-1]
        super().__init__(
            {
                "reply": In(stream.Signature(REPLY_LAYOUT)),
                "tx": Out(stream.Signature(8)),
                "args": In(ARGS_BITS),
                "free": In(event_depth.bit_length()),
                "state": In(2),
                "completed": In(16),
                "outputs": In(stream.Signature(output_layout(last.out_index_bits, last.acc_bits))),
                "prediction": In(last.out_index_bits),
                "counters": In(data.ArrayLayout(32, len(self.names))),
                "host": Out(host_signature(plan.bus_shape, "read")),
                "error": Out(1),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        command = self.reply.payload.command
        length = self._length(m, command)
        position = Signal(16)  # byte of the frame
        word, sub = Signal(16), Signal(3)  # output / counter / memory word and byte within it
        crc = Signal(8)
        snapshot = Signal(40)  # small payloads, captured when the reply starts
        memory_word = Signal(8 * self.word_bytes)  # READ_MEMORY: the word being sent
        # Registers of the byte counters' functions, taken every cycle: ``position`` and ``word``
        # change only in SEND, and LOAD comes at least two cycles later (after PREP).
        payload_index, at_crc = Signal(16), Signal()  # position - 5; the CRC byte is next
        payload = self._payload_byte(m, command, payload_index, word, sub, snapshot, memory_word)
        # The length and the CRC byte's index, registered when the reply starts (in IDLE):
        # READ_MEMORY's length is a product, too slow in front of the byte counter's compare.
        frame_length, last = Signal(16), Signal(17)
        out_byte = Signal(8)
        with m.Switch(position):
            for index, value in enumerate((P.SYNC, P.VERSION, command, frame_length[:8], frame_length[8:])):
                with m.Case(index):
                    m.d.comb += out_byte.eq(value)
            with m.Default():
                m.d.comb += out_byte.eq(Mux(at_crc, crc, payload))
        m.d.sync += [payload_index.eq(position - 5), at_crc.eq(position == last)]
        registers = {"position": position, "word": word, "sub": sub, "crc": crc, "snapshot": snapshot}
        registers.update(frame_length=frame_length, last=last)
        self._fsm(m, registers, out_byte, length, memory_word)
        m.d.comb += self.error.eq(self.reply.valid & (command == P.ERROR))
        return m

    def _length(self, m: Module, command: Value) -> Signal:
        """The payload length of the reply ``command``."""
        lengths = {
            P.Command.INFO | P.REPLY: len(self.info),
            P.Command.LOAD_EVENTS | P.REPLY: 2,
            P.Command.STATUS | P.REPLY: 5,
            P.Command.READ_OUTPUTS | P.REPLY: 2 + self.acc_bytes * self.plan.model.n_outputs,
            P.Command.READ_COUNTERS | P.REPLY: 4 * len(self.names),
            P.ERROR: 4,
        }
        length = Signal(16)
        with m.Switch(command):
            for code, size in lengths.items():
                with m.Case(code):
                    m.d.comb += length.eq(size)
            with m.Case(P.Command.READ_MEMORY | P.REPLY):
                m.d.comb += length.eq(self.args[40:56] * self.word_bytes)
        return length

    def _capture(self, m: Module):
        """The output memory, written from ``outputs``; return its read port."""
        width, outputs = 8 * self.acc_bytes, self.outputs
        m.submodules.outputs = mem = Memory(shape=width, depth=max(2, self.plan.model.n_outputs), init=[])
        writer = mem.write_port()
        m.d.comb += [
            outputs.ready.eq(1),
            writer.en.eq(outputs.valid),
            writer.addr.eq(outputs.payload.index),
            writer.data.eq(outputs.payload.value),
        ]
        return mem.read_port()

    def _payload_byte(self, m, command, payload_index, word, sub, snapshot, memory_word) -> Signal:
        """The payload byte ``payload_index`` of the reply ``command`` (``word``, ``sub``: the
        output, counter or memory word being sent and the byte within it)."""
        info = Const(int.from_bytes(self.info, "little"), 8 * len(self.info))
        counters = Array(self.counters[index] for index in range(len(self.names)))
        counter = Signal(32)  # READ_COUNTERS: the counter being sent (registered, see elaborate)
        m.d.sync += counter.eq(counters[word])
        out_port = self._capture(m)
        m.d.comb += out_port.addr.eq(word)
        byte = Signal(8)
        with m.Switch(command):
            with m.Case(P.Command.INFO | P.REPLY):
                m.d.comb += byte.eq(info.word_select(payload_index[:5], 8))
            with m.Case(P.Command.READ_OUTPUTS | P.REPLY):
                prediction = Signal(16)
                m.d.comb += prediction.eq(self.prediction)
                head = prediction.word_select(payload_index[:1], 8)
                m.d.comb += byte.eq(Mux(payload_index < 2, head, out_port.data.word_select(sub, 8)))
            with m.Case(P.Command.READ_COUNTERS | P.REPLY):
                m.d.comb += byte.eq(counter.word_select(sub[:2], 8))
            with m.Case(P.Command.READ_MEMORY | P.REPLY):
                m.d.comb += byte.eq(memory_word.word_select(sub, 8))
            with m.Default():
                m.d.comb += byte.eq(snapshot.word_select(payload_index[:3], 8))
        return byte

    def _snapshot(self, m: Module, snapshot: Signal, command: Value) -> None:
        """Capture the small payload of the reply ``command`` in ``snapshot`` when it starts."""
        reply, free = self.reply.payload, self.free
        with m.Switch(command):
            with m.Case(P.ERROR):
                m.d.sync += snapshot.eq(Cat(reply.error, Const(0, 4), reply.error_command, free))
            with m.Case(P.Command.STATUS | P.REPLY):
                status = Cat(self.state, Const(0, 6), free, Const(0, 16 - len(free)), self.completed)
                m.d.sync += snapshot.eq(status)
            with m.Default():
                m.d.sync += snapshot.eq(free)

    def _fsm(self, m: Module, registers: dict, out_byte: Value, length: Value, memory_word: Signal) -> None:
        """IDLE → (PREP → [FETCH → FETCHED] → LOAD → SEND) per byte → IDLE after the CRC byte.

        LOAD registers the byte (``out_byte``: a wide multiplexer over every payload source) so that
        SEND's CRC update starts from a register: the two halves of what was one path, which
        limited the board tops' clock (the ECP5 top: 80.1 MHz before, 101.3 MHz with it and the
        registered length, payload index and counter)."""
        position, word, sub, crc, last = (
            registers[name] for name in ("position", "word", "sub", "crc", "last")
        )
        byte = Signal(8)  # the byte being sent, loaded in LOAD
        command, host = self.reply.payload.command, self.host
        reading_memory = command == (P.Command.READ_MEMORY | P.REPLY)
        outputs = command == (P.Command.READ_OUTPUTS | P.REPLY)
        first_word = Mux(outputs, 7, 5)
        per_word = Mux(outputs, self.acc_bytes, Mux(reading_memory, self.word_bytes, 4))
        with m.FSM():
            with m.State("IDLE"), m.If(self.reply.valid):
                m.d.sync += [position.eq(0), word.eq(0), sub.eq(0), crc.eq(0)]
                m.d.sync += [registers["frame_length"].eq(length), last.eq(5 + length)]
                self._snapshot(m, registers["snapshot"], command)
                m.next = "PREP"
            with m.State("PREP"):  # one cycle for the output memory's read
                m.next = "LOAD"
                with m.If(reading_memory & (position >= 5) & (position < last) & (sub == 0)):
                    m.next = "FETCH"
            with m.State("FETCH"):  # READ_MEMORY: read the next word through the host port
                valid = host_target(m, host, self.plan, self.args[:8], self.args[8:40] + word)
                m.d.comb += host.valid.eq(valid)
                with m.If(~valid):
                    m.d.sync += memory_word.eq(0)
                    m.next = "LOAD"
                with m.Elif(host.ready):
                    m.next = "FETCHED"
            # FETCHED: the word arrives with rvalid (READ_LATENCY cycles after the read).
            with m.State("FETCHED"), m.If(host.rvalid):
                m.d.sync += memory_word.eq(host.rdata)
                m.next = "LOAD"
            with m.State("LOAD"):
                m.d.sync += byte.eq(out_byte)
                m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(byte)]
                with m.If(self.tx.ready):
                    with m.If((position >= 1) & (position < last)):
                        m.d.sync += crc.eq(crc8_step(crc, byte))
                    with m.If(position >= first_word):
                        with m.If(sub == per_word - 1):
                            m.d.sync += [sub.eq(0), word.eq(word + 1)]
                        with m.Else():
                            m.d.sync += sub.eq(sub + 1)
                    m.d.sync += position.eq(position + 1)
                    m.next = "PREP"
                    with m.If(position == last):
                        m.d.comb += self.reply.ready.eq(1)
                        m.next = "IDLE"
