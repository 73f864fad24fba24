"""The host link's frame parser (:class:`FrameParser`): checks each request frame and executes it.

One frame at a time (docs/protocol.md): SYNC, header, payload and CRC, byte by byte, with a
timeout between bytes. Errors found in the header are remembered and answered after the CRC (a
length above the maximum at once), so the parser stays in step with the frames. Its parts: the
header states check the frame (:meth:`FrameParser._check_frame`), the payload state stores event
words and arguments, the CRC state answers or executes (:meth:`FrameParser._execute`), and the
WRITE_MEMORY and REWIRE states drive the core's host port and rewiring unit.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from esl_hw.fpga import protocol as P
from esl_hw.fpga.hostlink_parts import (
    ARGS_BITS,
    REPLY_LAYOUT,
    buffer_signature,
    crc8_step,
    host_signature,
    host_target,
    rewire_signature,
    word_bytes,
)
from esl_hw.rtl_gen.plan import CorePlan

#: Commands whose frames carry no payload.
NO_PAYLOAD = (
    P.Command.INFO,
    P.Command.START,
    P.Command.STATUS,
    P.Command.READ_OUTPUTS,
    P.Command.READ_COUNTERS,
)


class _Frame:
    """Registers of the frame being parsed, shared by the parser's states."""

    def __init__(self, timeout: int, word_bytes: int) -> None:
        self.crc, self.version, self.command = Signal(8), Signal(8), Signal(8)
        self.length, self.count = Signal(16), Signal(16)
        self.low = Signal(8)  # the previous payload byte (low byte of an event word)
        self.error = Signal(4)  # deferred error code (0: none)
        self.idle = Signal(range(timeout + 1))  # cycles since the last byte
        self.timed_out = Signal()  # no byte for ``timeout`` cycles
        self.wsub = Signal(range(word_bytes))  # WRITE_MEMORY: byte within the word (received)
        # WRITE_MEMORY execution: buffer byte, word of the frame, byte within the word
        self.write_state = (Signal(range(P.MAX_PAYLOAD + 1)), Signal(16), Signal(range(word_bytes)))
        self.wbuf_wr = self.wbuf_rd = None  # the write buffer's ports (set by elaborate)


class FrameParser(wiring.Component):
    """Frame parser and executor of the host link: one request frame at a time.

    A frame with a bad CRC, version or length, an unknown command, or one that pauses longer than
    ``timeout`` cycles between two bytes is answered with an error and forgotten. LOAD_EVENTS
    writes its words into the buffer tentatively and commits them on a good CRC; START, READ_MEMORY,
    WRITE_MEMORY and REWIRE answer BUSY while an inference runs. WRITE_MEMORY buffers its payload
    and writes it through the host port only once the CRC is good. The parser then holds the reply
    on ``reply`` until the sender has sent it, and ignores the bytes that arrive meanwhile.

    Parameters
    ----------
    plan : CorePlan
        The core's plan (memory map, bus width, rewiring unit).
    event_depth : int
        Words of the event buffer (the width of ``buffer.free``).
    timeout : int
        Cycles a frame may pause between two bytes before it is dropped with TIMEOUT.

    Attributes
    ----------
    rx : In(stream.Signature(8))
        Received bytes (always ready).
    reply : Out(stream.Signature(REPLY_LAYOUT))
        The reply to send, held until the sender takes it (``ready``) when its last byte is sent.
    args : Out(56)
        The first 7 payload bytes of the frame, little endian: memory id, address (4), count (2)
        of READ_MEMORY / WRITE_MEMORY; layer, ``k`` (2), seed (4) of REWIRE.
    buffer : Out(buffer_signature(event_depth))
        Event buffer writes, commit, rollback and ``start`` (a START is executed); ``free`` in.
    state : Out(2)
        The inference state (:class:`protocol.State`).
    completed : Out(16)
        Inferences completed since reset (wraps).
    done : In(1)
        The core has finished an inference.
    host : Out(host_signature(plan.bus_shape, "write"))
        WRITE_MEMORY's writes to the core's host port (``mem``, ``addr`` 0 between them).
    rewire : Out(rewire_signature())
        REWIRE's request to the core's rewiring unit (only when ``plan.rewiring``).
    """

    def __init__(self, plan: CorePlan, event_depth: int, timeout: int) -> None:
        if not isinstance(timeout, int) or timeout < 1:
            self._MustUse__silence = True  # never elaborated
            raise ValueError(f"timeout must be a positive number of cycles, got {timeout!r}")
        self.plan = plan
        self.timeout = timeout
        self.word_bytes = word_bytes(plan)
        members = {
            "rx": In(stream.Signature(8)),
            "reply": Out(stream.Signature(REPLY_LAYOUT)),
            "args": Out(ARGS_BITS),
            "buffer": Out(buffer_signature(event_depth)),
            "state": Out(2),
            "completed": Out(16),
            "done": In(1),
            "host": Out(host_signature(plan.bus_shape, "write")),
        }
        if plan.rewiring:
            members["rewire"] = Out(rewire_signature())
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        frame = _Frame(self.timeout, self.word_bytes)
        byte, got = self.rx.payload, self.rx.valid
        m.d.comb += [self.rx.ready.eq(1), self.buffer.data.eq(Cat(frame.low, byte))]
        with m.If(self.done):
            m.d.sync += [self.state.eq(P.State.DONE), self.completed.eq(self.completed + 1)]
        m.submodules.write_buffer = wbuf = Memory(shape=8, depth=P.MAX_PAYLOAD, init=[])
        frame.wbuf_wr, frame.wbuf_rd = wbuf.write_port(), wbuf.read_port()
        m.d.comb += [frame.wbuf_wr.addr.eq(frame.count - 5), frame.wbuf_wr.data.eq(byte)]
        m.d.comb += frame.timed_out.eq(~got & (frame.idle == self.timeout))
        with m.FSM() as fsm:
            with m.State("HUNT"), m.If(got & (byte == P.SYNC)):
                m.d.sync += [frame.crc.eq(0), frame.error.eq(0), frame.idle.eq(0)]
                m.next = "VERSION"
            self._header_states(m, frame)
            self._payload_state(m, frame)
            self._crc_state(m, frame)
            self._write_states(m, frame)
            if self.plan.rewiring:
                self._rewire_states(m, frame)
            with m.State("WAIT"), m.If(~self.reply.valid):  # the sender has taken the reply
                m.next = "HUNT"
        with m.If(got | fsm.ongoing("HUNT") | fsm.ongoing("WAIT")):
            m.d.sync += frame.idle.eq(0)
        with m.Elif(frame.idle != self.timeout):
            m.d.sync += frame.idle.eq(frame.idle + 1)
        with m.If(self.reply.valid & self.reply.ready):
            m.d.sync += self.reply.valid.eq(0)
        return m

    def _finish(self, m: Module, frame: _Frame, code) -> None:
        """Hand the reply to ``frame``'s command to the sender: success when ``code`` is 0."""
        reply = self.reply
        m.d.sync += [reply.payload.error.eq(code), reply.payload.error_command.eq(frame.command)]
        m.d.sync += reply.valid.eq(1)
        m.d.sync += reply.payload.command.eq(Mux(code == 0, frame.command | P.REPLY, P.ERROR))

    def _check_timeout(self, m: Module, frame: _Frame) -> None:
        """Drop the frame with TIMEOUT (and its tentative events) when it has paused too long."""
        with m.If(frame.timed_out):
            m.d.comb += self.buffer.rollback.eq(1)
            self._finish(m, frame, P.Error.TIMEOUT)
            m.next = "WAIT"

    def _header_states(self, m: Module, frame: _Frame) -> None:
        """VERSION, COMMAND, LEN0, LEN1: the header bytes after SYNC; LEN1 checks the frame."""
        byte, got = self.rx.payload, self.rx.valid
        for name, target, after in (
            ("VERSION", frame.version, "COMMAND"),
            ("COMMAND", frame.command, "LEN0"),
            ("LEN0", frame.length[:8], "LEN1"),
        ):
            with m.State(name):
                self._check_timeout(m, frame)
                with m.If(got):
                    m.d.sync += [target.eq(byte), frame.crc.eq(crc8_step(frame.crc, byte))]
                    m.next = after
        with m.State("LEN1"):
            self._check_timeout(m, frame)
            with m.If(got):
                full = Cat(frame.length[:8], byte)
                m.d.sync += [
                    frame.length[8:].eq(byte),
                    frame.crc.eq(crc8_step(frame.crc, byte)),
                    frame.count.eq(0),
                ]
                with m.If(full > P.MAX_PAYLOAD):
                    self._finish(m, frame, P.Error.BAD_LENGTH)
                    m.next = "WAIT"
                with m.Else():
                    self._check_frame(m, frame, full)
                    m.d.sync += frame.wsub.eq(0)
                    m.next = "PAYLOAD"
                    with m.If(full == 0):
                        m.next = "CRC"

    def _check_frame(self, m: Module, frame: _Frame, full: Value) -> None:
        """Record the first problem of a frame of ``full`` payload bytes (answered after its CRC)."""
        command, free = frame.command, self.buffer.free
        known = (command >= P.Command.INFO) & (command <= P.Command.REWIRE)
        expected_zero = Cat(*(command == code for code in NO_PAYLOAD)).any()
        events = command == P.Command.LOAD_EVENTS
        with m.If(frame.version != P.VERSION):
            m.d.sync += frame.error.eq(P.Error.BAD_VERSION)
        with m.Elif(~known):
            m.d.sync += frame.error.eq(P.Error.UNKNOWN_COMMAND)
        with m.Elif(expected_zero & (full != 0)):
            m.d.sync += frame.error.eq(P.Error.BAD_LENGTH)
        with m.Elif(events & full[0]):
            m.d.sync += frame.error.eq(P.Error.BAD_LENGTH)
        with m.Elif(events & (full[1:] > free)):
            m.d.sync += frame.error.eq(P.Error.OVERFLOW)
        with m.Elif(((command == P.Command.READ_MEMORY) | (command == P.Command.REWIRE)) & (full != 7)):
            m.d.sync += frame.error.eq(P.Error.BAD_LENGTH)
        with m.Elif((command == P.Command.WRITE_MEMORY) & (full < 5 + self.word_bytes)):
            m.d.sync += frame.error.eq(P.Error.BAD_LENGTH)
        if not self.plan.rewiring:
            with m.Elif(command == P.Command.REWIRE):
                m.d.sync += frame.error.eq(P.Error.UNSUPPORTED)

    def _payload_state(self, m: Module, frame: _Frame) -> None:
        """PAYLOAD: event words into the buffer, the arguments, WRITE_MEMORY's words buffered."""
        byte, got, command, count = self.rx.payload, self.rx.valid, frame.command, frame.count
        with m.State("PAYLOAD"):
            self._check_timeout(m, frame)
            with m.If(got):
                m.d.sync += [frame.crc.eq(crc8_step(frame.crc, byte)), count.eq(count + 1)]
                m.d.sync += frame.low.eq(byte)
                store = (command == P.Command.LOAD_EVENTS) & (frame.error == 0) & count[0]
                m.d.comb += self.buffer.write.eq(store)  # the high byte of an event word
                with m.If(count < 7):
                    m.d.sync += self.args.word_select(count[:3], 8).eq(byte)
                with m.If((command == P.Command.WRITE_MEMORY) & (count >= 5)):
                    m.d.comb += frame.wbuf_wr.en.eq(1)
                    last = frame.wsub == self.word_bytes - 1
                    m.d.sync += frame.wsub.eq(Mux(last, 0, frame.wsub + 1))
                with m.If(count + 1 == frame.length):
                    m.next = "CRC"

    def _crc_state(self, m: Module, frame: _Frame) -> None:
        """CRC: answer an error, or execute the frame."""
        with m.State("CRC"):
            self._check_timeout(m, frame)
            with m.If(self.rx.valid):
                m.next = "WAIT"
                with m.If(self.rx.payload != frame.crc):
                    m.d.comb += self.buffer.rollback.eq(1)
                    self._finish(m, frame, P.Error.BAD_CRC)
                with m.Elif(frame.error != 0):
                    m.d.comb += self.buffer.rollback.eq(1)
                    self._finish(m, frame, frame.error)
                with m.Elif((frame.command == P.Command.WRITE_MEMORY) & (frame.wsub != 0)):
                    self._finish(m, frame, P.Error.BAD_LENGTH)  # not a whole number of words
                with m.Else():
                    self._execute(m, frame)

    def _execute(self, m: Module, frame: _Frame) -> None:
        """Execute a good frame (READ_* are executed by the sender)."""
        running = self.state == P.State.RUNNING
        with m.Switch(frame.command):
            with m.Case(P.Command.LOAD_EVENTS):
                m.d.comb += self.buffer.commit.eq(1)
                self._finish(m, frame, 0)
            with m.Case(P.Command.START):
                with m.If(running):
                    self._finish(m, frame, P.Error.BUSY)
                with m.Else():
                    m.d.sync += self.state.eq(P.State.RUNNING)
                    m.d.comb += self.buffer.start.eq(1)
                    self._finish(m, frame, 0)
            with m.Case(P.Command.READ_OUTPUTS):
                self._finish(m, frame, Mux(self.state == P.State.DONE, 0, P.Error.NOT_READY))
            with m.Case(P.Command.READ_MEMORY):
                with m.If(running):
                    self._finish(m, frame, P.Error.BUSY)
                with m.Elif(self.args[40:56] * self.word_bytes > P.MAX_PAYLOAD):
                    self._finish(m, frame, P.Error.BAD_LENGTH)
                with m.Else():
                    self._finish(m, frame, 0)  # the sender reads the words
            with m.Case(P.Command.WRITE_MEMORY):
                with m.If(running):
                    self._finish(m, frame, P.Error.BUSY)
                with m.Else():
                    m.d.sync += [value.eq(0) for value in frame.write_state]
                    m.next = "WRITE_READ"
            with m.Case(P.Command.REWIRE):
                with m.If(running):
                    self._finish(m, frame, P.Error.BUSY)
                with m.Else():
                    if self.plan.rewiring:
                        m.next = "REWIRE"
                    else:  # not reached: refused with UNSUPPORTED when its length arrives
                        self._finish(m, frame, P.Error.UNSUPPORTED)
            with m.Default():
                self._finish(m, frame, 0)

    def _write_states(self, m: Module, frame: _Frame) -> None:
        """WRITE_READ, WRITE_BYTE, WRITE_WORD: WRITE_MEMORY from the buffer, word by word."""
        host, size = self.host, self.word_bytes
        byte_index, word_index, sub = frame.write_state
        word = Signal(8 * size)
        m.d.comb += frame.wbuf_rd.addr.eq(byte_index)
        with m.State("WRITE_READ"):  # read byte byte_index of the buffered words
            m.next = "WRITE_BYTE"
        with m.State("WRITE_BYTE"):
            m.d.sync += [word.word_select(sub, 8).eq(frame.wbuf_rd.data), byte_index.eq(byte_index + 1)]
            m.d.sync += sub.eq(Mux(sub == size - 1, 0, sub + 1))
            m.next = "WRITE_READ"
            with m.If(sub == size - 1):
                m.next = "WRITE_WORD"
        with m.State("WRITE_WORD"):
            valid = host_target(m, host, self.plan, self.args[:8], self.args[8:40] + word_index)
            m.d.comb += [host.valid.eq(valid), host.write.eq(1), host.wdata.eq(word)]
            with m.If(~valid | host.ready):
                m.d.sync += word_index.eq(word_index + 1)
                m.next = "WRITE_READ"
                with m.If(byte_index == frame.length - 5):
                    self._finish(m, frame, 0)
                    m.next = "WAIT"

    def _rewire_states(self, m: Module, frame: _Frame) -> None:
        """REWIRE (request, once the core is idle) and REWIRING (until the unit is done)."""
        rewire, args = self.rewire, self.args
        with m.State("REWIRE"):
            m.d.comb += [
                rewire.start.eq(1),
                rewire.layer.eq(args[:8]),
                rewire.k.eq(args[8:24]),
                rewire.seed.eq(args[24:56]),
            ]
            with m.If(rewire.idle):
                m.next = "REWIRING"
        with m.State("REWIRING"), m.If(rewire.done):
            self._finish(m, frame, Mux(rewire.error, P.Error.REFUSED, 0))
            m.next = "WAIT"
