"""The UART host link around the core: protocol engine, event buffer and output capture.

::

    rx ─► UARTRx ─► FrameParser ──► EventBuffer (circular, commit on good CRC) ─► SNNCore.events
                         │                                                          │
                         ▼                                                          ▼
    tx ◄─ UARTTx ◄─ ReplySender (state, counters, output memory) ◄─────────── SNNCore.outputs

:class:`HostLink` wires these parts (:class:`~esl_hw.fpga.hostlink_parser.FrameParser`,
:class:`~esl_hw.fpga.hostlink_parts.EventBuffer`, :class:`~esl_hw.fpga.hostlink_parts.ReplySender`)
to the UART and the core, all built from one :class:`~esl_hw.rtl_gen.plan.CorePlan`.

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
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from esl_hw.artifact import Model
from esl_hw.errors import EslError
from esl_hw.fpga import protocol as P
from esl_hw.fpga.hostlink_parser import FrameParser
from esl_hw.fpga.hostlink_parts import EventBuffer, ReplySender, acc_bytes, crc8_step, word_bytes
from esl_hw.fpga.uart import UARTRx, UARTTx
from esl_hw.rtl_gen import SNNCore, counter_names
from esl_hw.rtl_gen.plan import CorePlan, as_plan

__all__ = [
    "DEFAULT_EVENT_DEPTH",
    "HostLink",
    "acc_bytes",
    "crc8_step",
    "info_payload",
    "memory_word_bytes",
    "model_id",
]

#: Default event buffer depth in 16-bit words.
DEFAULT_EVENT_DEPTH = 512


def model_id(model: Model) -> int:
    """32-bit identity of a model (header and arrays), reported by INFO so the host can check it."""
    digest = hashlib.sha256(repr(model.header()).encode())
    for layer in model.layers:
        for array in (layer.row_ptr, layer.col, layer.weight):
            digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    return int.from_bytes(digest.digest()[:4], "little")


def info_payload(
    model: Model, lanes: int, event_depth: int, capabilities: int = 0, clock_hz: int = 0
) -> bytes:
    """The INFO reply payload for ``model`` (see docs/protocol.md); ``clock_hz`` is the clock the
    gateware is built for (0: unknown), so that the host turns cycles into time."""
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
        (clock_hz, 4),
    ]
    return b"".join(int(value).to_bytes(size, "little") for value, size in fields)


def memory_word_bytes(model: CorePlan | Model, lanes: int | None = None) -> int:
    """Bytes per memory word in READ_MEMORY and WRITE_MEMORY: the core's host bus width, rounded up
    (``model``: the core's plan, or the model on ``lanes`` lanes, by default its own)."""
    return word_bytes(as_plan(model, lanes))


def link_plan(model: CorePlan | Model, lanes: int | None = None, rewiring: bool | None = None) -> CorePlan:
    """The plan of the core behind the host link: ``model`` itself when it is a plan, else the
    model on ``lanes`` lanes with ``rewiring`` and without streaming (the link sends one
    inference at a time and waits for its result, so streamed inferences would only cost logic)."""
    return as_plan(model, lanes, rewiring=rewiring, streaming=None if isinstance(model, CorePlan) else False)


class HostLink(wiring.Component):
    """The core of ``model`` behind a UART speaking protocol version :data:`protocol.VERSION`.

    Parameters
    ----------
    model : CorePlan or Model
        The core's plan (:func:`esl_hw.rtl_gen.plan.plan_model`), or the artifact on ``lanes``
        lanes with ``rewiring`` (at most :data:`protocol.MAX_INPUTS` inputs), planned without
        streaming (:func:`link_plan`).
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
    clock_hz : int
        The clock frequency the link runs at, reported by INFO (0: unknown, e.g. in simulation).

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
        clock_hz: int = 0,
    ) -> None:
        try:
            self._check(model.model if isinstance(model, CorePlan) else model, divisor, event_depth, timeout)
            if isinstance(clock_hz, bool) or not isinstance(clock_hz, int) or not 0 <= clock_hz < 1 << 32:
                raise EslError(f"clock_hz must be an integer number of Hz in 0..2**32-1, got {clock_hz!r}")
            plan = link_plan(model, lanes, rewiring)
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
        self.clock_hz = clock_hz
        self.info = info_payload(plan.model, plan.lanes, event_depth, capabilities, clock_hz)
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
        plan, core = self.plan, self.core
        m.submodules.uart_rx = uart_rx = self.uart_rx
        m.submodules.uart_tx = uart_tx = self.uart_tx
        m.submodules.core = core
        m.submodules.events = events = EventBuffer(plan, self.event_depth)
        m.submodules.parser = parser = FrameParser(plan, self.event_depth, self.timeout)
        m.submodules.sender = sender = ReplySender(plan, self.info, self.event_depth)
        m.d.comb += [uart_rx.rx.eq(self.rx), self.tx.eq(uart_tx.tx)]
        wiring.connect(m, uart_rx.data, parser.rx)
        wiring.connect(m, parser.buffer, events.write)
        wiring.connect(m, events.events, core.events)
        wiring.connect(m, parser.reply, sender.reply)
        wiring.connect(m, core.outputs, sender.outputs)
        wiring.connect(m, sender.tx, uart_tx.data)
        m.d.comb += [
            parser.done.eq(core.done),
            sender.args.eq(parser.args),
            sender.free.eq(events.write.free),
            sender.state.eq(parser.state),
            sender.completed.eq(parser.completed),
            sender.prediction.eq(core.prediction),
            *(sender.counters[i].eq(getattr(core, f"perf_{name}")) for i, name in enumerate(sender.names)),
            self.running.eq(parser.state == P.State.RUNNING),
            self.error.eq(sender.error),
        ]
        self._connect_host_port(m, parser.host, sender.host)
        if plan.rewiring:
            self._connect_rewire(m, parser.rewire)
        return m

    def _connect_host_port(self, m: Module, writer, reader) -> None:
        """The core's host port from the parser (writes) and the sender (reads): each drives its
        ``valid``, ``mem`` and ``addr`` only while it accesses, and never both at once."""
        core = self.core
        m.d.comb += [
            core.host_valid.eq(writer.valid | reader.valid),
            core.host_mem.eq(writer.mem | reader.mem),
            core.host_addr.eq(writer.addr | reader.addr),
            core.host_write.eq(writer.write),
            core.host_wdata.eq(writer.wdata),
            writer.ready.eq(core.host_ready),
            reader.ready.eq(core.host_ready),
            reader.rvalid.eq(core.host_rvalid),
            reader.rdata.eq(core.host_rdata),
        ]

    def _connect_rewire(self, m: Module, request) -> None:
        """The parser's rewire request (protocol widths) to the core's ``rewire_*`` ports."""
        core = self.core
        m.d.comb += [
            core.rewire_start.eq(request.start),
            core.rewire_layer.eq(request.layer),
            core.rewire_k.eq(request.k),
            core.rewire_seed.eq(request.seed),
            request.idle.eq(core.idle),
            request.done.eq(core.rewire_done),
            request.error.eq(core.rewire_error),
        ]
