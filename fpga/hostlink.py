"""The UART host link around the core: protocol engine, event buffer and output capture.

::

    rx ─► UARTRx ─► frame parser ──► event buffer (circular, commit on good CRC) ─► SNNCore.events
                         │                                                            │
                         ▼                                                            ▼
    tx ◄─ UARTTx ◄─ reply sender ◄── state, counters, output memory ◄──────── SNNCore.outputs

The parser checks every frame (docs/protocol.md, :mod:`esl_hw.fpga.protocol`); a frame with a bad
CRC, version or length, an unknown command, or one that stalls longer than ``timeout`` cycles is
answered with an error frame and forgotten, and the link keeps running. LOAD_EVENTS writes its
words into the event buffer tentatively and commits them only when the frame's CRC is good, so a
malformed frame never injects events. A LOAD_EVENTS frame larger than the free space is refused
whole with OVERFLOW (credit-based flow control: every reply carries the free space), so no event is
ever lost, and the buffer is a FIFO, so none is reordered. After START the buffer feeds the core
until ``T`` end-of-step markers have passed, then holds the next inference's events until the
next START. READ_MEMORY and WRITE_MEMORY reach every memory of the core through its host port
(ids of :mod:`esl_hw.rtl_gen.memory_map`, words of :func:`memory_word_bytes` bytes); a
WRITE_MEMORY payload is buffered and written only once its CRC is good. REWIRE runs the core's
rewiring unit and replies when it has finished (REFUSED when the unit refuses the request). All
three answer BUSY while an inference runs.
"""

from __future__ import annotations

import hashlib

import numpy as np
from amaranth import Array, Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from esl_hw.artifact import Model
from esl_hw.errors import EslError
from esl_hw.fpga import protocol as P
from esl_hw.fpga.uart import UARTRx, UARTTx
from esl_hw.rtl_gen import SNNCore, counter_names
from esl_hw.rtl_gen.plan import CorePlan, as_plan

#: Default event buffer depth in 16-bit words.
DEFAULT_EVENT_DEPTH = 512


def model_id(model: Model) -> int:
    """32-bit identity of a model (header and arrays), reported by INFO so the host can check it."""
    digest = hashlib.sha256(repr(model.header()).encode())
    for layer in model.layers:
        for array in (layer.row_ptr, layer.col, layer.weight):
            digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    return int.from_bytes(digest.digest()[:4], "little")


def info_payload(model: Model, lanes: int, event_depth: int, capabilities: int = 0) -> bytes:
    """The INFO reply payload for ``model`` (see docs/protocol.md)."""
    fields = [
        (P.VERSION, 1),
        (model.n_inputs, 2),
        (model.n_outputs, 2),
        (model.timesteps, 2),
        (acc_bytes(model), 1),
        (len(counter_names(model)), 1),
        (event_depth, 2),
        (capabilities, 1),
        (lanes, 1),
        (model_id(model), 4),
    ]
    return b"".join(int(value).to_bytes(size, "little") for value, size in fields)


def memory_word_bytes(model: CorePlan | Model, lanes: int | None = None) -> int:
    """Bytes per memory word in READ_MEMORY and WRITE_MEMORY: the core's host bus width, rounded up
    (``model``: the core's plan, or the model on ``lanes`` lanes, by default its own)."""
    return -(-as_plan(model, lanes).bus_shape.data_bits // 8)


def acc_bytes(model: Model) -> int:
    """Bytes per output accumulator in READ_OUTPUTS."""
    return -(-model.acc_bits() // 8)


def crc8_step(crc: Value, byte: Value) -> Value:
    """Combinational CRC-8 (polynomial 0x07) update of ``crc`` with ``byte``: a XOR network.

    CRC-8 without reflection is linear over GF(2): output bit ``j`` is the XOR of the bits ``i`` of
    ``crc ^ byte`` for which :func:`protocol.crc8` maps ``1 << i`` to a value with bit ``j`` set.
    """
    value = Value.cast(crc ^ byte)
    images = [P.crc8(bytes([1 << bit])) for bit in range(8)]
    bits = [Cat(*(value[i] for i in range(8) if images[i] >> j & 1)).xor() for j in range(8)]
    return Cat(*bits)


class HostLink(wiring.Component):
    """The core of ``model`` behind a UART speaking protocol version :data:`protocol.VERSION`.

    Parameters
    ----------
    model : CorePlan or Model
        The core's plan (:func:`esl_hw.rtl_gen.plan.plan_model`), or the artifact on ``lanes``
        lanes with ``rewiring`` (at most :data:`protocol.MAX_INPUTS` inputs).
    divisor : int
        Clock cycles per UART bit (:func:`esl_hw.fpga.uart.uart_divisor`).
    lanes : int or None
        Lanes of the core (default: the model's own; with a plan, unset or the plan's).
    event_depth : int
        Event buffer depth in words (a power of two, 16 .. 32768).
    timeout : int
        Cycles a frame may pause between two bytes before it is dropped with TIMEOUT.
    rewiring : bool or None
        Include the core's rewiring unit (``SNNCore``'s option; with a plan, unset or the plan's).

    Attributes
    ----------
    rx : In(1)
        UART input from the host (idle high).
    tx : Out(1)
        UART output to the host (idle high).
    running : Out(1)
        An inference is in progress.
    error : Out(1)
        Pulses when an error frame is sent.
    """

    def __init__(
        self,
        model: CorePlan | Model,
        divisor: int,
        lanes: int | None = None,
        event_depth: int = DEFAULT_EVENT_DEPTH,
        timeout: int = 1 << 22,
        rewiring: bool | None = None,
    ) -> None:
        try:
            self._check(model.model if isinstance(model, CorePlan) else model, divisor, event_depth, timeout)
            plan = as_plan(model, lanes, rewiring=rewiring)
        except (TypeError, EslError):
            self._MustUse__silence = True  # never elaborated
            raise
        self.plan = plan
        self.model = plan.model
        self.lanes = plan.lanes
        self.event_depth = event_depth
        self.timeout = timeout
        self.uart_rx = UARTRx(divisor)
        self.uart_tx = UARTTx(divisor)
        self.core = SNNCore(plan)
        self.word_bytes = memory_word_bytes(plan)
        capabilities = P.CAP_MEMORY | (P.CAP_REWIRE if plan.rewiring else 0)
        self.info = info_payload(plan.model, plan.lanes, event_depth, capabilities)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "running": Out(1), "error": Out(1)})

    @staticmethod
    def _check(model: Model, divisor: int, event_depth: int, timeout: int) -> None:
        if not isinstance(model, Model):
            raise TypeError(f"model must be an esl_hw.artifact.Model, got {type(model).__name__}")
        if model.n_inputs > P.MAX_INPUTS:
            raise EslError(
                f"the host link carries at most {P.MAX_INPUTS} inputs, the model has {model.n_inputs}"
            )
        if (
            not isinstance(event_depth, int)
            or not 16 <= event_depth <= 32768
            or event_depth & (event_depth - 1)
        ):
            raise EslError(f"event_depth must be a power of two in 16..32768, got {event_depth!r}")
        if not isinstance(timeout, int) or timeout < 16 * divisor:
            raise EslError(f"timeout must be at least 16 bit times ({16 * divisor} cycles), got {timeout!r}")

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.uart_rx = rx = self.uart_rx
        m.submodules.uart_tx = tx = self.uart_tx
        m.submodules.core = core = self.core
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx), rx.data.ready.eq(1)]
        depth, abits = self.event_depth, self.event_depth.bit_length() - 1
        # Event buffer: circular, pointers one bit wider than the address.
        m.submodules.events = events = Memory(shape=16, depth=depth, init=[])
        ev_wr, ev_rd = events.write_port(), events.read_port()
        wr, wr_commit, rd = (Signal(abits + 1, name=n) for n in ("wr", "wr_commit", "rd"))
        free = Signal(abits + 1)
        m.d.comb += free.eq(depth - (wr_commit - rd))
        state = Signal(2)  # protocol.State
        completed = Signal(16)
        self._feeder(m, core, ev_rd, rd, wr_commit, abits, state, completed)
        outputs = self._capture(m, core)
        request = self._parser(m, rx, ev_wr, wr, wr_commit, rd, free, abits, state)
        self._sender(m, tx, request, free, state, completed, outputs, core)
        m.d.comb += self.running.eq(state == P.State.RUNNING)
        return m

    def _feeder(self, m, core, ev_rd, rd, wr_commit, abits, state, completed) -> None:
        """Buffer → core, one word per two cycles, for ``T`` end-of-step markers after START."""
        pending, out_valid = Signal(), Signal()
        out_word = Signal(16)
        markers = Signal(range(self.model.timesteps + 1))
        armed = Signal()
        self._armed, self._markers = armed, markers
        m.d.comb += ev_rd.addr.eq(rd[:abits])
        consumed = Signal()
        m.d.comb += [
            core.events.valid.eq(out_valid & armed),
            core.events.payload.index.eq(out_word[: len(core.events.payload.index)]),
            core.events.payload.eos.eq(out_word[15]),
            consumed.eq(core.events.valid & core.events.ready),
        ]
        with m.If(pending):
            m.d.sync += [out_word.eq(ev_rd.data), out_valid.eq(1)]
        with m.Elif(consumed):
            m.d.sync += out_valid.eq(0)
        issue = (rd != wr_commit) & ~pending & (~out_valid | consumed)
        m.d.sync += pending.eq(issue)
        with m.If(issue):
            m.d.sync += rd.eq(rd + 1)
        with m.If(consumed & out_word[15]):
            m.d.sync += markers.eq(markers + 1)
            with m.If(markers == self.model.timesteps - 1):
                m.d.sync += armed.eq(0)
        with m.If(core.done):
            m.d.sync += [state.eq(P.State.DONE), completed.eq(completed + 1)]

    def _capture(self, m, core) -> dict:
        """Core outputs → output memory (one word per output neuron, sign-extended)."""
        width = 8 * acc_bytes(self.model)
        m.submodules.outputs = mem = Memory(shape=width, depth=max(2, self.model.n_outputs), init=[])
        wr, rd = mem.write_port(), mem.read_port()
        m.d.comb += [
            core.outputs.ready.eq(1),
            wr.en.eq(core.outputs.valid),
            wr.addr.eq(core.outputs.payload.index),
            wr.data.eq(core.outputs.payload.value),
        ]
        return {"port": rd, "width": width}

    def _parser(self, m, rx, ev_wr, wr, wr_commit, rd, free, abits, state) -> dict:
        """Frame parser; on a complete frame it raises ``go`` with the reply to send."""
        byte, got = rx.data.payload, rx.data.valid
        crc, version, command = Signal(8), Signal(8), Signal(8)
        length, count = Signal(16), Signal(16)
        low = Signal(8)
        error = Signal(4)  # deferred error code (0: none)
        idle = Signal(range(self.timeout + 1))
        go = Signal()  # a reply is waiting for the sender
        reply = {"go": go, "command": Signal(8), "error": Signal(4), "error_command": Signal(8)}
        busy = Signal()
        m.d.comb += [ev_wr.addr.eq(wr[:abits]), ev_wr.data.eq(Cat(low, byte))]
        # Memory commands: the first 7 payload bytes, and the WRITE_MEMORY words (buffered).
        args = Signal(56)
        self._args = args
        m.submodules.write_buffer = wbuf = Memory(shape=8, depth=P.MAX_PAYLOAD, init=[])
        wbuf_wr, wbuf_rd = wbuf.write_port(), wbuf.read_port()
        word_bytes = self.word_bytes
        wsub = Signal(range(word_bytes))
        m.d.comb += [wbuf_wr.addr.eq(count - 5), wbuf_wr.data.eq(byte)]
        # WRITE_MEMORY execution: buffer byte, word of the frame, byte within the word
        self._write_state = (Signal(range(P.MAX_PAYLOAD + 1)), Signal(16), Signal(range(word_bytes)))

        def finish(code, m=m):
            m.d.sync += [reply["error"].eq(code), reply["error_command"].eq(command), go.eq(1)]
            m.d.sync += reply["command"].eq(Mux(code == 0, command | P.REPLY, P.ERROR))

        no_payload = (
            P.Command.INFO,
            P.Command.START,
            P.Command.STATUS,
            P.Command.READ_OUTPUTS,
            P.Command.READ_COUNTERS,
        )
        expected_zero = Cat(*(command == code for code in no_payload)).any()
        timed_out = Signal()
        m.d.comb += timed_out.eq(~got & (idle == self.timeout))

        def check_timeout(m=m):
            with m.If(timed_out):
                m.d.sync += wr.eq(wr_commit)
                finish(P.Error.TIMEOUT)
                m.next = "WAIT"

        known = (command >= P.Command.INFO) & (command <= P.Command.REWIRE)

        with m.FSM() as fsm:
            with m.State("HUNT"), m.If(got & (byte == P.SYNC)):
                m.d.sync += [crc.eq(0), error.eq(0), idle.eq(0)]
                m.next = "VERSION"
            for name, target, after in (("VERSION", version, "COMMAND"), ("COMMAND", command, "LEN0")):
                with m.State(name):
                    check_timeout()
                    with m.If(got):
                        m.d.sync += [target.eq(byte), crc.eq(crc8_step(crc, byte))]
                        m.next = after
            with m.State("LEN0"):
                check_timeout()
                with m.If(got):
                    m.d.sync += [length[:8].eq(byte), crc.eq(crc8_step(crc, byte))]
                    m.next = "LEN1"
            with m.State("LEN1"):
                check_timeout()
                with m.If(got):
                    full = Cat(length[:8], byte)
                    m.d.sync += [length[8:].eq(byte), crc.eq(crc8_step(crc, byte)), count.eq(0)]
                    with m.If(full > P.MAX_PAYLOAD):
                        finish(P.Error.BAD_LENGTH)
                        m.next = "WAIT"
                    with m.Else():
                        with m.If(version != P.VERSION):
                            m.d.sync += error.eq(P.Error.BAD_VERSION)
                        with m.Elif(~known):
                            m.d.sync += error.eq(P.Error.UNKNOWN_COMMAND)
                        with m.Elif(expected_zero & (full != 0)):
                            m.d.sync += error.eq(P.Error.BAD_LENGTH)
                        with m.Elif((command == P.Command.LOAD_EVENTS) & full[0]):
                            m.d.sync += error.eq(P.Error.BAD_LENGTH)
                        with m.Elif((command == P.Command.LOAD_EVENTS) & (full[1:] > free)):
                            m.d.sync += error.eq(P.Error.OVERFLOW)
                        with m.Elif(
                            ((command == P.Command.READ_MEMORY) | (command == P.Command.REWIRE)) & (full != 7)
                        ):
                            m.d.sync += error.eq(P.Error.BAD_LENGTH)
                        with m.Elif((command == P.Command.WRITE_MEMORY) & (full < 5 + word_bytes)):
                            m.d.sync += error.eq(P.Error.BAD_LENGTH)
                        if not self.core.rewiring:
                            with m.Elif(command == P.Command.REWIRE):
                                m.d.sync += error.eq(P.Error.UNSUPPORTED)
                        m.d.sync += wsub.eq(0)
                        m.next = "PAYLOAD"
                        with m.If(full == 0):
                            m.next = "CRC"
            with m.State("PAYLOAD"):
                check_timeout()
                with m.If(got):
                    m.d.sync += [crc.eq(crc8_step(crc, byte)), count.eq(count + 1), low.eq(byte)]
                    store = (command == P.Command.LOAD_EVENTS) & (error == 0) & count[0]
                    m.d.comb += ev_wr.en.eq(store)
                    with m.If(store):
                        m.d.sync += wr.eq(wr + 1)
                    with m.If(count < 7):
                        m.d.sync += args.word_select(count[:3], 8).eq(byte)
                    with m.If((command == P.Command.WRITE_MEMORY) & (count >= 5)):
                        m.d.comb += wbuf_wr.en.eq(1)
                        m.d.sync += wsub.eq(Mux(wsub == word_bytes - 1, 0, wsub + 1))
                    with m.If(count + 1 == length):
                        m.next = "CRC"
            with m.State("CRC"):
                check_timeout()
                with m.If(got):
                    m.next = "WAIT"
                    with m.If(byte != crc):
                        m.d.sync += wr.eq(wr_commit)
                        finish(P.Error.BAD_CRC)
                    with m.Elif(error != 0):
                        m.d.sync += wr.eq(wr_commit)
                        finish(error)
                    with m.Elif((command == P.Command.WRITE_MEMORY) & (wsub != 0)):
                        finish(P.Error.BAD_LENGTH)  # not a whole number of words
                    with m.Else():
                        self._execute(m, command, wr, wr_commit, state, finish, length)
            self._memory_states(m, finish, length, wbuf_rd)
            with m.State("WAIT"), m.If(~go & ~busy):  # the sender has taken the reply
                m.next = "HUNT"
        with m.If(got | fsm.ongoing("HUNT") | fsm.ongoing("WAIT")):
            m.d.sync += idle.eq(0)
        with m.Elif(idle != self.timeout):
            m.d.sync += idle.eq(idle + 1)
        reply["busy"] = busy
        return reply

    def _host_target(self, m, address) -> Value:
        """Drive the core's host port with ``args``' memory id and ``address``; return whether
        both are on the map of the core (else nothing is accessed and a read gives 0)."""
        core = self.core
        mem, valid = self._args[:8], Signal(name="host_target_valid")
        m.d.comb += [
            core.host_mem.eq(mem),
            core.host_addr.eq(address),
            valid.eq((mem < len(core.regions)) & (address >> len(core.host_addr) == 0)),
        ]
        return valid

    def _memory_states(self, m, finish, length, wbuf_rd) -> None:
        """Parser states that execute WRITE_MEMORY (from the buffer, word by word) and REWIRE."""
        core, word_bytes = self.core, self.word_bytes
        byte_index, word_index, sub = self._write_state
        word = Signal(8 * word_bytes)
        m.d.comb += wbuf_rd.addr.eq(byte_index)
        with m.State("WRITE_READ"):  # read byte byte_index of the buffered words
            m.next = "WRITE_BYTE"
        with m.State("WRITE_BYTE"):
            m.d.sync += [word.word_select(sub, 8).eq(wbuf_rd.data), byte_index.eq(byte_index + 1)]
            m.d.sync += sub.eq(Mux(sub == word_bytes - 1, 0, sub + 1))
            m.next = "WRITE_READ"
            with m.If(sub == word_bytes - 1):
                m.next = "WRITE_WORD"
        with m.State("WRITE_WORD"):
            valid = self._host_target(m, self._args[8:40] + word_index)
            m.d.comb += [core.host_valid.eq(valid), core.host_write.eq(1), core.host_wdata.eq(word)]
            with m.If(~valid | core.host_ready):
                m.d.sync += word_index.eq(word_index + 1)
                m.next = "WRITE_READ"
                with m.If(byte_index == length - 5):
                    finish(0)
                    m.next = "WAIT"
        if self.core.rewiring:
            with m.State("REWIRE"):
                args = self._args
                m.d.comb += [
                    core.rewire_start.eq(1),
                    core.rewire_layer.eq(args[:8]),
                    core.rewire_k.eq(args[8:24]),
                    core.rewire_seed.eq(args[24:56]),
                ]
                with m.If(core.idle):
                    m.next = "REWIRING"
            with m.State("REWIRING"), m.If(core.rewire_done):
                finish(Mux(core.rewire_error, P.Error.REFUSED, 0))
                m.next = "WAIT"

    def _execute(self, m, command, wr, wr_commit, state, finish, length) -> None:
        with m.Switch(command):
            with m.Case(P.Command.LOAD_EVENTS):
                m.d.sync += wr_commit.eq(wr)
                finish(0)
            with m.Case(P.Command.START):
                with m.If(state == P.State.RUNNING):
                    finish(P.Error.BUSY)
                with m.Else():
                    m.d.sync += [state.eq(P.State.RUNNING), self._armed.eq(1), self._markers.eq(0)]
                    finish(0)
            with m.Case(P.Command.READ_OUTPUTS):
                finish(Mux(state == P.State.DONE, 0, P.Error.NOT_READY))
            with m.Case(P.Command.READ_MEMORY):
                with m.If(state == P.State.RUNNING):
                    finish(P.Error.BUSY)
                with m.Elif(self._args[40:56] * self.word_bytes > P.MAX_PAYLOAD):
                    finish(P.Error.BAD_LENGTH)
                with m.Else():
                    finish(0)  # the sender reads the words
            with m.Case(P.Command.WRITE_MEMORY):
                with m.If(state == P.State.RUNNING):
                    finish(P.Error.BUSY)
                with m.Else():
                    byte_index, word_index, sub = self._write_state
                    m.d.sync += [byte_index.eq(0), word_index.eq(0), sub.eq(0)]
                    m.next = "WRITE_READ"
            with m.Case(P.Command.REWIRE):
                with m.If(state == P.State.RUNNING):
                    finish(P.Error.BUSY)
                with m.Else():
                    if self.core.rewiring:
                        m.next = "REWIRE"
                    else:  # not reached: refused with UNSUPPORTED when its length arrives
                        finish(P.Error.UNSUPPORTED)
            with m.Default():
                finish(0)

    def _sender(self, m, tx, request, free, state, completed, outputs, core) -> None:
        """Reply frames: header, payload bytes from the selected source, CRC."""
        names = counter_names(self.model)
        width_bytes = acc_bytes(self.model)
        info = Const(int.from_bytes(self.info, "little"), 8 * len(self.info))
        lengths = {
            P.Command.INFO | P.REPLY: len(self.info),
            P.Command.LOAD_EVENTS | P.REPLY: 2,
            P.Command.STATUS | P.REPLY: 5,
            P.Command.READ_OUTPUTS | P.REPLY: 2 + width_bytes * self.model.n_outputs,
            P.Command.READ_COUNTERS | P.REPLY: 4 * len(names),
            P.ERROR: 4,
        }
        command = request["command"]
        length = Signal(16)
        word_bytes = self.word_bytes
        args = self._args
        with m.Switch(command):
            for code, size in lengths.items():
                with m.Case(code):
                    m.d.comb += length.eq(size)
            with m.Case(P.Command.READ_MEMORY | P.REPLY):
                m.d.comb += length.eq(args[40:56] * word_bytes)
        position = Signal(16)  # byte of the frame
        word, sub = Signal(16), Signal(3)  # output / counter word and byte within it
        crc = Signal(8)
        snapshot = Signal(40)  # small payloads, captured when the reply starts
        data = Signal(8)
        counters = Array(getattr(core, f"perf_{name}") for name in names)
        out_port = outputs["port"]
        m.d.comb += out_port.addr.eq(word)
        payload_index = position - 5
        big = Signal(8)
        memory_word = Signal(8 * word_bytes)  # READ_MEMORY: the word being sent
        reading_memory = command == (P.Command.READ_MEMORY | P.REPLY)
        with m.Switch(command):
            with m.Case(P.Command.INFO | P.REPLY):
                m.d.comb += big.eq(info.word_select(payload_index[:5], 8))
            with m.Case(P.Command.READ_OUTPUTS | P.REPLY):
                prediction = Signal(16)
                m.d.comb += prediction.eq(core.prediction)
                head = prediction.word_select(payload_index[:1], 8)
                m.d.comb += big.eq(Mux(payload_index < 2, head, out_port.data.word_select(sub, 8)))
            with m.Case(P.Command.READ_COUNTERS | P.REPLY):
                m.d.comb += big.eq(counters[word].word_select(sub[:2], 8))
            with m.Case(P.Command.READ_MEMORY | P.REPLY):
                m.d.comb += big.eq(memory_word.word_select(sub, 8))
            with m.Default():
                m.d.comb += big.eq(snapshot.word_select(payload_index[:3], 8))
        last = 5 + length  # index of the CRC byte
        with m.Switch(position):
            with m.Case(0):
                m.d.comb += data.eq(P.SYNC)
            with m.Case(1):
                m.d.comb += data.eq(P.VERSION)
            with m.Case(2):
                m.d.comb += data.eq(command)
            with m.Case(3):
                m.d.comb += data.eq(length[:8])
            with m.Case(4):
                m.d.comb += data.eq(length[8:])
            with m.Default():
                m.d.comb += data.eq(Mux(position == last, crc, big))
        first_word = Mux(command == (P.Command.READ_OUTPUTS | P.REPLY), 7, 5)
        per_word = Mux(
            command == (P.Command.READ_OUTPUTS | P.REPLY), width_bytes, Mux(reading_memory, word_bytes, 4)
        )
        with m.FSM():
            with m.State("IDLE"), m.If(request["go"]):
                m.d.sync += [position.eq(0), word.eq(0), sub.eq(0), crc.eq(0)]
                with m.Switch(command):
                    with m.Case(P.ERROR):
                        error = Cat(request["error"], Const(0, 4), request["error_command"], free)
                        m.d.sync += snapshot.eq(error)
                    with m.Case(P.Command.STATUS | P.REPLY):
                        status = Cat(state, Const(0, 6), free, Const(0, 16 - len(free)), completed)
                        m.d.sync += snapshot.eq(status)
                    with m.Default():
                        m.d.sync += snapshot.eq(free)
                m.next = "PREP"
            with m.State("PREP"):  # one cycle for the output memory's read
                m.next = "SEND"
                with m.If(reading_memory & (position >= 5) & (position < last) & (sub == 0)):
                    m.next = "FETCH"
            with m.State("FETCH"):  # READ_MEMORY: read the next word through the host port
                valid = self._host_target(m, args[8:40] + word)
                m.d.comb += [core.host_valid.eq(valid), core.host_write.eq(0)]
                with m.If(~valid):
                    m.d.sync += memory_word.eq(0)
                    m.next = "SEND"
                with m.Elif(core.host_ready):
                    m.next = "FETCHED"
            # FETCHED: the word arrives with host_rvalid (READ_LATENCY cycles after the read).
            with m.State("FETCHED"), m.If(core.host_rvalid):
                m.d.sync += memory_word.eq(core.host_rdata)
                m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [tx.data.valid.eq(1), tx.data.payload.eq(data)]
                with m.If(tx.data.ready):
                    with m.If((position >= 1) & (position < last)):
                        m.d.sync += crc.eq(crc8_step(crc, data))
                    with m.If(position >= first_word):
                        with m.If(sub == per_word - 1):
                            m.d.sync += [sub.eq(0), word.eq(word + 1)]
                        with m.Else():
                            m.d.sync += sub.eq(sub + 1)
                    m.d.sync += position.eq(position + 1)
                    m.next = "PREP"
                    with m.If(position == last):
                        m.d.sync += request["go"].eq(0)
                        m.next = "IDLE"
        m.d.comb += [request["busy"].eq(request["go"]), self.error.eq(request["go"] & (command == P.ERROR))]
