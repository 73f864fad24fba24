"""Host driver for the UART link (protocol version 1, docs/protocol.md), over pyserial or any transport.

A *transport* is an object with ``write(data: bytes)`` and ``read(size: int) -> bytes`` (returning
at most ``size`` bytes, fewer or none when its timeout passes). :func:`open_serial` gives one for a
serial port; the cocotb test gives one that drives a simulated UART. :class:`HostDriver` speaks the
protocol over it: one request in flight at a time, every reply checked (CRC, version, command,
payload length and values), error replies raised as :class:`~esl_hw.fpga.protocol.ProtocolError`,
and LOAD_EVENTS split into frames that never exceed the device's free event-buffer space (credit
flow control), so no event is lost.

Nothing waits forever: a request gives up after ``reply_timeout`` seconds, and an operation of many
requests (loading events, waiting for an inference) after ``reply_timeout`` seconds without
progress. Whatever bytes the device sends, a driver method returns a correct result or raises
:class:`~esl_hw.errors.EslError` (a :class:`~esl_hw.fpga.protocol.ProtocolError` for the link)
with a one-line message.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

import numpy as np

from esl_hw.artifact import Model
from esl_hw.encoding import encode, spike_events
from esl_hw.errors import EslError
from esl_hw.fpga import protocol as P

if TYPE_CHECKING:
    from esl_hw.rtl_gen.plan import CorePlan

T = TypeVar("T")


class Transport(Protocol):
    def write(self, data: bytes) -> None: ...

    def read(self, size: int) -> bytes: ...


#: Bytes of the INFO reply payload.
INFO_BYTES = 21


@dataclass(frozen=True)
class DeviceInfo:
    """The INFO reply."""

    version: int
    n_inputs: int
    n_outputs: int
    timesteps: int
    acc_bytes: int
    counters: int
    event_depth: int
    capabilities: int
    lanes: int
    model_id: int
    clock_hz: int  # the clock the gateware was built for (0: unknown)

    @classmethod
    def parse(cls, payload: bytes) -> DeviceInfo:
        if len(payload) != INFO_BYTES:
            raise P.ProtocolError(f"INFO reply of {len(payload)} bytes, expected {INFO_BYTES}")
        sizes = (1, 2, 2, 2, 1, 1, 2, 1, 1, 4, 4)
        values, offset = [], 0
        for size in sizes:
            values.append(int.from_bytes(payload[offset : offset + size], "little"))
            offset += size
        return cls(*values)


@dataclass(frozen=True)
class DeviceStatus:
    """The STATUS reply."""

    state: P.State
    free: int
    completed: int


@dataclass(frozen=True)
class Inference:
    """One inference run on the device."""

    prediction: int
    outputs: list[int]
    counters: dict[str, int]


#: Longest pause between two polls of a device that reports no free event-buffer space.
MAX_POLL_PAUSE = 0.05


def check_reply_timeout(value: object, name: str = "reply timeout") -> float:
    """``value`` as a float when it is a finite number of seconds above 0; else :class:`EslError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise EslError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise EslError(f"{name} must be finite and above 0 seconds, got {value!r}")
    return float(value)


@dataclass
class Deadline:
    """The moment an operation gives up: ``seconds`` from now (or from the last :meth:`restart`)."""

    seconds: float
    what: str = "operation not done"  # the error message, completed with " within <seconds> s"
    at: float = field(init=False)

    def __post_init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self.at = time.monotonic() + self.seconds

    def left(self) -> float:
        return self.at - time.monotonic()

    def check(self, detail: str = "") -> None:
        """Raise :class:`ProtocolError` once the deadline has passed."""
        if self.left() < 0:
            raise P.ProtocolError(f"{self.what} within {self.seconds:g} s{detail}")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def open_serial(port: str, baud: int = 115200, timeout: float = 0.2) -> Transport:
    """Open ``port`` with pyserial (8N1, no flow control); a missing port raises :class:`EslError`."""
    try:
        import serial
    except ImportError:
        raise EslError("pyserial is not installed (pip install pyserial)") from None
    try:
        return serial.Serial(port, baudrate=baud, timeout=timeout)
    except (serial.SerialException, OSError, ValueError) as error:
        raise EslError(f"cannot open serial port {port!r}: {error}") from None


def check_rewire_request(layer: int, prune: int, seed: int, model: Model | None = None) -> None:
    """Raise :class:`EslError` (one line) for a REWIRE request the device would refuse."""
    from esl_hw.rewiring import check_k

    fields = (("layer", layer, 0xFF), ("prune count", prune, 0xFFFF), ("seed", seed, 0xFFFFFFFF))
    for name, value, top in fields:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= top:
            raise EslError(f"rewire: {name} must be an integer in 0..{top}, got {value!r}")
    if seed == 0:
        raise EslError("rewire: the LFSR seed must be non-zero")
    if model is not None:
        if layer >= len(model.layers):
            raise EslError(f"rewire: layer {layer} does not exist (the model has {len(model.layers)} layers)")
        check_k(model.layers[layer], prune, f"rewire layer {layer}")


class HostDriver:
    """Protocol client over ``transport``.

    Parameters
    ----------
    transport : Transport
        Byte transport to the device.
    counter_names : list of str
        Names of the device's counters, in READ_COUNTERS order (``esl_hw.rtl_gen.counter_names``).
    reply_timeout : float
        Seconds to wait for a reply, and for progress in an operation of many requests, before
        raising :class:`ProtocolError`; finite and above 0.
    """

    def __init__(self, transport: Transport, counter_names: list[str], reply_timeout: float = 5.0) -> None:
        self.transport = transport
        self.counter_names = list(counter_names)
        self.reply_timeout = check_reply_timeout(reply_timeout)
        self._decoder = P.FrameDecoder()
        self._info: DeviceInfo | None = None

    def request(self, command: int, payload: bytes = b"", deadline: Deadline | None = None) -> bytes:
        """Send one request and return its reply's payload; an error reply raises ProtocolError.

        Waits ``reply_timeout`` seconds at most, and not past ``deadline`` (an operation's).
        Bytes that arrived unasked before the request (a stray frame) are refused, and the reply
        is read to its last byte and no further, so that a frame the device sends too many is
        not taken for the reply to the next request.
        """
        name = P.command_name(command)
        own = Deadline(self.reply_timeout, f"no reply to command 0x{command:02x}")
        try:
            self._refuse_stray(name)
            self._call("write", name, lambda: self.transport.write(P.encode_frame(command, payload)))
            frame = self._receive(name, own, deadline)
        except P.ProtocolError:
            self._decoder = P.FrameDecoder()  # resynchronise on the next SYNC
            raise
        if frame.version != P.VERSION:
            raise P.ProtocolError(
                f"reply to {name} in protocol version {frame.version}, expected version {P.VERSION}"
            )
        if frame.is_error:
            text = P.error_text(frame.payload)
            if len(frame.payload) < 2 or frame.payload[1] != command:
                text += f" (request {name})"
            raise P.ProtocolError(text, frame.payload[0] if frame.payload else None)
        if frame.command != command | P.REPLY:
            raise P.ProtocolError(f"{P.command_name(frame.command)} in answer to request {name}")
        return frame.payload

    def _receive(self, name: str, own: Deadline, deadline: Deadline | None) -> P.Frame:
        """The next frame, read exactly to its end."""
        while True:
            data = self._read(name, self._decoder.needed())
            try:
                frames = self._decoder.feed(data)
            except P.ProtocolError as error:
                raise P.ProtocolError(f"{error} (request {name})", error.code) from None
            if len(frames) > 1:
                raise P.ProtocolError(f"{len(frames)} frames in answer to one request {name}")
            if frames:
                return frames[0]
            pending = self._decoder.pending
            short = name.split(" (")[0]
            own.check(f" ({short}; {pending} bytes of a frame received)" if pending else f" ({short})")
            if deadline is not None:
                deadline.check()

    def _refuse_stray(self, name: str) -> None:
        """Raise when a frame (or part of one) arrived before request ``name`` was sent."""
        frames: list[P.Frame] = []
        waiting = self._call("in_waiting", name, lambda: getattr(self.transport, "in_waiting", 0))
        if isinstance(waiting, int) and not isinstance(waiting, bool) and waiting > 0:
            try:
                frames = self._decoder.feed(self._read(name, waiting))  # bytes without a SYNC are dropped
            except P.ProtocolError as error:
                raise P.ProtocolError(f"{error} (unasked, before request {name})", error.code) from None
        if frames or self._decoder.pending:
            raise P.ProtocolError(f"the device sent a frame nobody asked for, before request {name}")

    def _read(self, name: str, size: int) -> bytes:
        data = self._call("read", name, lambda: self.transport.read(size))
        if not isinstance(data, (bytes, bytearray)):
            raise EslError(f"{self._where()}: read returned {type(data).__name__}, not bytes ({name})")
        return bytes(data)

    def _call(self, operation: str, name: str, action: Callable[[], T]) -> T:
        """``action()``, a transport operation; OSError (SerialException) becomes EslError."""
        try:
            return action()
        except OSError as error:
            raise EslError(f"{self._where()}: {operation} failed during {name}: {_one_line(error)}") from None

    def _where(self) -> str:
        port = getattr(self.transport, "port", None)
        return (
            f"serial port {port!r}" if isinstance(port, str) else f"transport {type(self.transport).__name__}"
        )

    def _reply(self, command: P.Command, size: int, deadline: Deadline | None = None) -> bytes:
        """The payload of request ``command`` (no payload), checked to be ``size`` bytes long."""
        return expect_length(command, self.request(command, deadline=deadline), size)

    def info(self) -> DeviceInfo:
        self._info = DeviceInfo.parse(self.request(P.Command.INFO))
        if self._info.version != P.VERSION:
            version = self._info.version
            raise P.ProtocolError(f"device speaks protocol version {version}, expected {P.VERSION}")
        return self._info

    def status(self, deadline: Deadline | None = None) -> DeviceStatus:
        payload = self._reply(P.Command.STATUS, 5, deadline)
        try:
            state = P.State(payload[0] & 3)
        except ValueError:
            raise P.ProtocolError(
                f"STATUS reply with unknown state {payload[0] & 3} (byte 0x{payload[0]:02x})"
            ) from None
        return DeviceStatus(
            state, int.from_bytes(payload[1:3], "little"), int.from_bytes(payload[3:5], "little")
        )

    def start(self) -> None:
        self._reply(P.Command.START, 0)

    def load_events(self, words: list[int], free: int | None = None) -> int:
        """Send ``words`` in frames that fit the free buffer space; return the space left.

        Gives up with :class:`ProtocolError` when the device accepts no words for
        ``reply_timeout`` seconds (it reports no free space, or answers OVERFLOW); between such
        attempts it pauses, a little longer each time (at most :data:`MAX_POLL_PAUSE`).
        """
        stalled = Deadline(self.reply_timeout)
        if free is None:
            free = self.status().free
        position, waits, overflow = 0, 0, False
        while position < len(words):
            if free == 0 or overflow:
                if stalled.left() < 0:
                    reason = "returned no event-buffer space" if free == 0 else "answered OVERFLOW"
                    raise P.ProtocolError(
                        f"device {reason} for {self.reply_timeout:g} s "
                        f"(LOAD_EVENTS, {position} of {len(words)} words sent)"
                    )
                self._pause(waits, stalled)
                waits += 1
                free, overflow = self.status().free, False
                continue
            chunk = words[position : position + min(free, P.MAX_PAYLOAD // 2)]
            try:
                reply = self.request(P.Command.LOAD_EVENTS, P.pack_words(chunk))
            except P.ProtocolError as error:
                if error.code != P.Error.OVERFLOW:
                    raise
                overflow = True
                continue
            free = int.from_bytes(expect_length(P.Command.LOAD_EVENTS, reply, 2), "little")
            position += len(chunk)
            waits = 0
            stalled.restart()
        return free

    @staticmethod
    def _pause(waits: int, deadline: Deadline) -> None:
        """No pause before the first retry, then 1 ms, 2 ms, ... up to :data:`MAX_POLL_PAUSE`."""
        if waits:
            time.sleep(max(0.0, min(0.001 * 2 ** min(waits - 1, 16), MAX_POLL_PAUSE, deadline.left())))

    def read_outputs(self) -> tuple[int, list[int]]:
        info = self._info or self.info()
        size = info.acc_bytes
        payload = self._reply(P.Command.READ_OUTPUTS, 2 + size * info.n_outputs)
        prediction = int.from_bytes(payload[:2], "little")
        if prediction >= info.n_outputs:
            raise P.ProtocolError(
                f"READ_OUTPUTS reply with prediction {prediction} outside 0..{info.n_outputs - 1}"
            )
        values = [
            int.from_bytes(payload[2 + size * index : 2 + size * (index + 1)], "little", signed=True)
            for index in range(info.n_outputs)
        ]
        return prediction, values

    def read_counters(self) -> dict[str, int]:
        payload = self._reply(P.Command.READ_COUNTERS, 4 * len(self.counter_names))
        return {
            name: int.from_bytes(payload[4 * index : 4 * index + 4], "little")
            for index, name in enumerate(self.counter_names)
        }

    def read_memory(self, memory: int, address: int, count: int, word_bytes: int) -> list[int]:
        """READ_MEMORY: ``count`` words of memory ``memory`` from ``address`` (raw, unsigned).

        ``word_bytes`` is :func:`esl_hw.fpga.hostlink.memory_word_bytes` of the device's model and
        lanes; a reply is at most 1024 bytes (use :meth:`read_region` for more).
        """
        if count * word_bytes > P.MAX_PAYLOAD:
            raise EslError(f"READ_MEMORY of {count} words of {word_bytes} bytes exceeds {P.MAX_PAYLOAD}")
        payload = bytes([memory]) + address.to_bytes(4, "little") + count.to_bytes(2, "little")
        reply = self.request(P.Command.READ_MEMORY, payload)
        if len(reply) != count * word_bytes:
            raise P.ProtocolError(f"READ_MEMORY reply of {len(reply)} bytes, expected {count * word_bytes}")
        return [
            int.from_bytes(reply[index : index + word_bytes], "little")
            for index in range(0, len(reply), word_bytes)
        ]

    def read_region(self, memory: int, depth: int, word_bytes: int) -> list[int]:
        """Every word ``0 .. depth-1`` of memory ``memory``, in as many READ_MEMORY frames as needed."""
        per_frame = P.MAX_PAYLOAD // word_bytes
        words: list[int] = []
        for start in range(0, depth, per_frame):
            words += self.read_memory(memory, start, min(per_frame, depth - start), word_bytes)
        return words

    def write_memory(self, memory: int, address: int, words: list[int], word_bytes: int) -> None:
        """WRITE_MEMORY: ``words`` to memory ``memory`` from ``address`` (each keeps its low bits)."""
        data = b"".join(int(word).to_bytes(word_bytes, "little") for word in words)
        if 5 + len(data) > P.MAX_PAYLOAD:
            raise EslError(f"WRITE_MEMORY of {len(words)} words exceeds {P.MAX_PAYLOAD} payload bytes")
        reply = self.request(P.Command.WRITE_MEMORY, bytes([memory]) + address.to_bytes(4, "little") + data)
        expect_length(P.Command.WRITE_MEMORY, reply, 0)

    def write_region(self, memory: int, words: list[int], word_bytes: int) -> None:
        """``words`` to memory ``memory`` from address 0, in as many WRITE_MEMORY frames as needed."""
        per_frame = (P.MAX_PAYLOAD - 5) // word_bytes
        for start in range(0, len(words), per_frame):
            self.write_memory(memory, start, words[start : start + per_frame], word_bytes)

    def load_synapses(self, model: CorePlan | Model, lanes: int | None = None) -> int:
        """Write every synapse memory of the core of ``model`` (its plan, or the model on ``lanes``
        lanes, by default its own; its words as :meth:`esl_hw.rtl_gen.plan.CorePlan.memory_images`
        gives them); returns the words written. A core with its synapses in SPRAM
        (``synapse_memory="spram"``) needs this once after configuration: SPRAM is not initialised
        by the bitstream."""
        from esl_hw.rtl_gen.plan import as_plan

        plan = as_plan(model, lanes)
        word_bytes = -(-plan.bus_shape.data_bits // 8)  # esl_hw.fpga.hostlink.memory_word_bytes
        images = plan.memory_images()
        written = 0
        for region in plan.regions:
            if region.kind == "syn":
                self.write_region(region.id, images[region.id], word_bytes)
                written += len(images[region.id])
        return written

    def rewire(self, layer: int, prune: int, seed: int, model: Model | None = None) -> None:
        """REWIRE: prune and regrow ``prune`` synapses of ``layer`` on the device (LFSR ``seed``);
        returns when the rewiring unit has finished (REFUSED error reply if it refused).

        Refused with a one-line :class:`EslError` before anything is sent: fields that do not
        fit the frame, seed 0, and, given the ``model`` the device runs, an unknown layer or a
        prune count above the layer's synapse count (naming the layer and the excess).
        """
        check_rewire_request(layer, prune, seed, model)
        payload = bytes([layer]) + prune.to_bytes(2, "little") + seed.to_bytes(4, "little")
        expect_length(P.Command.REWIRE, self.request(P.Command.REWIRE, payload), 0)

    def infer(self, steps: list[list[int]], poll_interval: float = 0.0) -> Inference:
        """Run one inference on the spiking inputs ``steps`` (per step, the input indices).

        Polls STATUS every ``poll_interval`` seconds until the device reports done, for at most
        ``reply_timeout`` seconds after the last event was accepted (every poll included).
        """
        if poll_interval != 0.0:
            poll_interval = check_reply_timeout(poll_interval, "poll interval")
        self.start()
        self.load_events(P.event_words(steps))
        deadline = Deadline(self.reply_timeout, "inference not done")
        while self.status(deadline).state != P.State.DONE:
            deadline.check()
            if poll_interval:
                time.sleep(min(poll_interval, max(deadline.left(), 0.0)))
        prediction, outputs = self.read_outputs()
        return Inference(prediction, outputs, self.read_counters())


def expect_length(command: P.Command, payload: bytes, size: int) -> bytes:
    """``payload`` when it is ``size`` bytes long; else :class:`ProtocolError` naming both lengths."""
    if len(payload) != size:
        raise P.ProtocolError(f"{command.name} reply of {len(payload)} bytes, expected {size}")
    return payload


def run_images(driver: HostDriver, model: Model, images: np.ndarray) -> dict:
    """Run ``images`` (``[N, n_in]`` uint8) on the device and check them against the reference.

    Returns a dict with ``samples``, ``mismatches``, ``predictions``, ``expected_predictions``,
    ``outputs``, ``cycles`` (per inference), ``clock_mhz`` (the device's clock from INFO, None when
    it reports none), ``latency_us`` (per inference, ``cycles / clock_mhz``; None without a clock)
    and ``details`` (one line per mismatching sample).
    """
    from esl_hw.fpga.hostlink import model_id
    from esl_hw.reference import run

    info = driver.info()
    if info.model_id != model_id(model):
        raise EslError(
            f"the device runs another model (id 0x{info.model_id:08x}, this artifact 0x{model_id(model):08x})"
        )
    images = np.asarray(images)
    spikes = encode(images, model.timesteps, model.encoder)
    trace = run(model, spikes, record_potentials=False)
    result: dict = {"samples": len(images), "mismatches": 0, "predictions": [], "outputs": [], "cycles": []}
    result["expected_predictions"] = [int(value) for value in trace.predictions]
    result["details"] = []
    for sample in range(len(images)):
        inference = driver.infer(spike_events(spikes[:, sample]))
        expected = [int(value) for value in trace.outputs[sample]]
        result["predictions"].append(inference.prediction)
        result["outputs"].append(inference.outputs)
        result["cycles"].append(inference.counters.get("cycles", 0))
        if inference.outputs != expected or inference.prediction != int(trace.predictions[sample]):
            result["mismatches"] += 1
            result["details"].append(f"sample {sample}: device {inference.outputs}, reference {expected}")
    result.update(latency(result["cycles"], info.clock_hz))
    return result


def latency(cycles: list[int], clock_hz: int) -> dict:
    """``clock_mhz`` and ``latency_us`` of each inference, ``cycles / clock_mhz``, for a device
    whose INFO reports ``clock_hz`` (both None when it reports 0: clock unknown)."""
    if not clock_hz:
        return {"clock_mhz": None, "latency_us": None}
    clock_mhz = clock_hz / 1e6
    return {"clock_mhz": clock_mhz, "latency_us": [round(count / clock_mhz, 3) for count in cycles]}
