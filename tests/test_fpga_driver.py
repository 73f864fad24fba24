"""Host driver against a pure-Python model of the device: credits, errors, the bit-exact check,
and the same device misbehaving in every way we could think of (plus a fuzzer of its reply stream):
each misbehaviour ends in one clean :class:`EslError` line within a short timeout."""

from __future__ import annotations

import functools
import math
import os
import re
import time
from collections.abc import Callable

import numpy as np
import pytest
from conftest import random_model
from hypothesis import given, settings
from hypothesis import strategies as st

from esl_hw.artifact import Model
from esl_hw.encoding import encode
from esl_hw.errors import EslError
from esl_hw.fpga import protocol as P
from esl_hw.fpga.driver import HostDriver, check_rewire_request, open_serial, run_images
from esl_hw.fpga.hostlink import info_payload, memory_word_bytes
from esl_hw.reference import run
from esl_hw.rtl_gen import counter_names


class FakeDevice:
    """The protocol as the gateware implements it, computing outputs with the reference model."""

    def __init__(self, model, depth: int = 16, corrupt: bool = False, clock_hz: int = 0) -> None:
        self.model, self.depth, self.corrupt, self.clock_hz = model, depth, corrupt, clock_hz
        self.buffer: list[int] = []
        self.fed: list[int] = []
        self.state, self.completed = P.State.IDLE, 0
        self.outputs: list[int] = []
        self.prediction = 0
        self.decoder = P.FrameDecoder()
        self.replies = bytearray()
        self.frames = 0
        self.memories: dict[tuple[int, int], int] = {}

    # transport interface
    def write(self, data: bytes) -> None:
        for frame in self.decoder.feed(data):
            self.frames += 1
            self.replies += self.handle(frame)

    def read(self, size: int) -> bytes:
        out, self.replies = bytes(self.replies[:size]), self.replies[size:]
        return out

    @property
    def in_waiting(self) -> int:
        """Bytes sent and not yet read (as pyserial's ``Serial.in_waiting``)."""
        return len(self.replies)

    def error(self, code: P.Error, command: int) -> bytes:
        free = self.depth - len(self.buffer)
        return P.encode_frame(P.ERROR, bytes([code, command]) + free.to_bytes(2, "little"))

    def handle(self, frame: P.Frame) -> bytes:
        command = frame.command
        if command == P.Command.INFO:
            info = info_payload(self.model, 1, self.depth, clock_hz=self.clock_hz)
            return P.encode_frame(command | P.REPLY, info)
        if command == P.Command.STATUS:
            self._drain()
            free = (self.depth - len(self.buffer)).to_bytes(2, "little")
            payload = bytes([self.state]) + free + self.completed.to_bytes(2, "little")
            return P.encode_frame(command | P.REPLY, payload)
        if command == P.Command.START:
            self.state, self.fed = P.State.RUNNING, []
            return P.encode_frame(command | P.REPLY)
        if command == P.Command.LOAD_EVENTS:
            words = [
                int.from_bytes(frame.payload[i : i + 2], "little") for i in range(0, len(frame.payload), 2)
            ]
            if len(words) > self.depth - len(self.buffer):
                return self.error(P.Error.OVERFLOW, command)
            self.buffer += words
            self._drain()
            free = (self.depth - len(self.buffer)).to_bytes(2, "little")
            return P.encode_frame(command | P.REPLY, free)
        if command == P.Command.READ_OUTPUTS:
            if self.state != P.State.DONE:
                return self.error(P.Error.NOT_READY, command)
            size = -(-self.model.acc_bits() // 8)
            values = b"".join(v.to_bytes(size, "little", signed=True) for v in self.outputs)
            return P.encode_frame(command | P.REPLY, self.prediction.to_bytes(2, "little") + values)
        if command == P.Command.READ_COUNTERS:
            # counter 0, cycles: a multiple of 256, so that a reply missing its length's high byte
            # (the dropped-byte misbehaviour) still announces a short payload
            cycles = (256 * (1 + len(self.fed))).to_bytes(4, "little")
            return P.encode_frame(command | P.REPLY, cycles + bytes(4 * len(counter_names(self.model)) - 4))
        if command == P.Command.WRITE_MEMORY:
            memory, address = frame.payload[0], int.from_bytes(frame.payload[1:5], "little")
            data = frame.payload[5:]
            size = memory_word_bytes(self.model)
            for index in range(0, len(data), size):
                self.memories[(memory, address + index // size)] = int.from_bytes(
                    data[index : index + size], "little"
                )
            return P.encode_frame(command | P.REPLY)
        return self.error(P.Error.UNSUPPORTED, command)

    def _drain(self) -> None:
        """The core consumes the buffer while running (half of it per call: backpressure)."""
        if self.state != P.State.RUNNING:
            return
        take = max(1, len(self.buffer) // 2)
        self.fed += self.buffer[:take]
        del self.buffer[:take]
        if sum(1 for word in self.fed if word & P.EOS_FLAG) == self.model.timesteps:
            steps = np.zeros((self.model.timesteps, 1, self.model.n_inputs), dtype=bool)
            step = 0
            for word in self.fed:
                if word & P.EOS_FLAG:
                    step += 1
                else:
                    steps[step, 0, word] = True
            trace = run(self.model, steps, record_potentials=False)
            self.outputs = [int(v) + (1 if self.corrupt else 0) for v in trace.outputs[0]]
            self.prediction = int(trace.predictions[0])
            self.state, self.completed = P.State.DONE, self.completed + 1


def _images(rng: np.random.Generator, model, count: int = 3) -> np.ndarray:
    return rng.integers(0, 256, (count, model.n_inputs), dtype=np.uint8)


def test_run_images_is_bit_exact_through_small_buffer(rng: np.random.Generator) -> None:
    model = random_model(rng, (30, 10, 4), timesteps=4)
    device = FakeDevice(model, depth=8)
    driver = HostDriver(device, counter_names(model), reply_timeout=5)
    images = _images(rng, model)
    result = run_images(driver, model, images)
    assert result["mismatches"] == 0 and result["samples"] == 3
    spikes = encode(images, model.timesteps, model.encoder)
    assert result["predictions"] == run(model, spikes).predictions.tolist()
    assert int(encode(images, 4).sum()) > 8  # more events than the buffer holds: credits were used


def test_run_images_reports_latency_at_the_clock_the_device_reports(rng: np.random.Generator) -> None:
    model = random_model(rng, (30, 10, 4), timesteps=4)
    images = _images(rng, model, 2)
    unknown = run_images(HostDriver(FakeDevice(model), counter_names(model), 5), model, images)
    assert unknown["clock_mhz"] is None and unknown["latency_us"] is None
    device = FakeDevice(model, clock_hz=21_750_000)
    result = run_images(HostDriver(device, counter_names(model), 5), model, images)
    assert result["clock_mhz"] == 21.75 and all(cycles > 0 for cycles in result["cycles"])
    assert result["latency_us"] == [round(cycles / 21.75, 3) for cycles in result["cycles"]]


def test_run_images_reports_mismatches(rng: np.random.Generator) -> None:
    model = random_model(rng, (30, 10, 4), timesteps=4)
    driver = HostDriver(FakeDevice(model, corrupt=True), counter_names(model), reply_timeout=5)
    result = run_images(driver, model, _images(rng, model, 2))
    assert result["mismatches"] == 2 and "sample 0: device" in result["details"][0]


def test_error_replies_raise_with_their_code(rng: np.random.Generator) -> None:
    model = random_model(rng)
    driver = HostDriver(FakeDevice(model), counter_names(model), reply_timeout=5)
    with pytest.raises(P.ProtocolError, match="device error NOT_READY on READ_OUTPUTS") as caught:
        driver.read_outputs()
    assert caught.value.code == P.Error.NOT_READY
    with pytest.raises(P.ProtocolError, match="UNSUPPORTED on READ_MEMORY"):
        driver.read_memory(0, 0, 4, word_bytes=2)


def test_overflow_is_retried_without_loss(rng: np.random.Generator) -> None:
    model = random_model(rng, (30, 10, 4), timesteps=4)
    device = FakeDevice(model, depth=8)
    driver = HostDriver(device, counter_names(model), reply_timeout=5)
    driver.start()
    words = [1, 2, 3, 4, 5, 6, 7]
    driver.load_events(words, free=8)  # the driver's credit is stale on purpose
    driver.load_events(words, free=8)
    assert device.fed + device.buffer == words + words


def test_another_model_on_the_device_is_refused(rng: np.random.Generator) -> None:
    model, other = random_model(rng), random_model(rng)
    driver = HostDriver(FakeDevice(other), counter_names(model), reply_timeout=5)
    with pytest.raises(EslError, match="the device runs another model"):
        run_images(driver, model, _images(rng, model, 1))


def test_no_reply_times_out(rng: np.random.Generator) -> None:
    class Silent:
        def write(self, data: bytes) -> None:
            pass

        def read(self, size: int) -> bytes:
            return b""

    with pytest.raises(P.ProtocolError, match="no reply to command 0x01 within 0.05 s"):
        HostDriver(Silent(), [], reply_timeout=0.05).info()


def test_absent_serial_port() -> None:
    with pytest.raises(EslError, match="cannot open serial port '/dev/esl-hw-absent'"):
        open_serial("/dev/esl-hw-absent")


def test_rewire_requests_beyond_the_layer_are_refused_before_sending(rng: np.random.Generator) -> None:
    model = random_model(rng)
    device = FakeDevice(model)
    driver = HostDriver(device, counter_names(model), reply_timeout=5)
    nnz = model.layers[1].nnz
    message = f"^rewire layer 1: k = {nnz + 3} exceeds the layer's {nnz} synapses by 3$"
    with pytest.raises(EslError, match=message):
        driver.rewire(1, nnz + 3, 0xACE1, model=model)
    with pytest.raises(EslError, match="layer 2 does not exist"):
        driver.rewire(2, 1, 0xACE1, model=model)
    with pytest.raises(EslError, match="seed must be non-zero"):
        driver.rewire(0, 1, 0)
    with pytest.raises(EslError, match=r"prune count must be an integer in 0..65535, got 70000"):
        check_rewire_request(0, 70000, 1)
    assert device.frames == 0, "nothing may reach the device"
    with pytest.raises(P.ProtocolError, match="UNSUPPORTED on REWIRE"):
        driver.rewire(1, nnz, 0xACE1, model=model)


def test_load_synapses_writes_every_synapse_word_in_frames(rng: np.random.Generator) -> None:
    from esl_hw.rtl_gen.memory_map import memory_images, memory_map
    from esl_hw.rtl_gen.plan import plan_model

    model = random_model(rng, (300, 200, 10), density=0.3)  # more synapse bytes than one frame holds
    device = FakeDevice(model)
    written = HostDriver(device, counter_names(model)).load_synapses(model)
    images = memory_images(model)
    expected = {
        (region.id, address): word
        for region in memory_map(plan_model(model))
        if region.kind == "syn"
        for address, word in enumerate(images[region.id])
    }
    assert device.memories == expected and written == len(expected) == model.synapses
    assert device.frames > 2 * len(model.layers)  # split into frames of at most MAX_PAYLOAD bytes


# --- a device that misbehaves: every way ends in one EslError line within the timeout -----------

#: Reply timeout of the misbehaviour tests, and a bound far above it that only a hang exceeds.
TIMEOUT = 0.2
HANG_GUARD = 5.0


class Stalled(FakeDevice):
    """A core that never takes an event: the buffer fills and STATUS reports no space, ever."""

    def _drain(self) -> None:
        pass


class NeverDone(FakeDevice):
    """A core that takes every event and never finishes."""

    def _drain(self) -> None:
        self.buffer.clear()


class Overflowing(FakeDevice):
    """Answers every LOAD_EVENTS with OVERFLOW while STATUS reports free space."""

    def handle(self, frame: P.Frame) -> bytes:
        if frame.command == P.Command.LOAD_EVENTS:
            return self.error(P.Error.OVERFLOW, frame.command)
        return super().handle(frame)


class SilentAfter(FakeDevice):
    """Sends its first ``limit`` bytes, then nothing: a link that drops every later byte."""

    def __init__(self, model, limit: int, **kw) -> None:
        super().__init__(model, **kw)
        self.limit = limit

    def read(self, size: int) -> bytes:
        out = super().read(max(0, min(size, self.limit)))
        self.limit -= len(out)
        return out

    @property
    def in_waiting(self) -> int:
        return min(len(self.replies), self.limit)


class Tampered(FakeDevice):
    """Its replies to ``command`` (to every command when None) pass through ``change``."""

    def __init__(self, model, command: int | None, change: Callable[[bytes], bytes], **kw) -> None:
        super().__init__(model, **kw)
        self.command, self.change = command, change

    def handle(self, frame: P.Frame) -> bytes:
        reply = super().handle(frame)
        return self.change(reply) if self.command in (None, frame.command) else reply


def _payload(change: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    """A change of a reply's payload, sent in a well-formed frame (good CRC)."""

    def apply(reply: bytes) -> bytes:
        (frame,) = P.FrameDecoder().feed(reply)
        return P.encode_frame(frame.command, change(frame.payload), frame.version)

    return apply


def _version(version: int) -> Callable[[bytes], bytes]:
    def apply(reply: bytes) -> bytes:
        (frame,) = P.FrameDecoder().feed(reply)
        return P.encode_frame(frame.command, frame.payload, version)

    return apply


def _fails_cleanly(call: Callable[[], object], match: str) -> EslError:
    """``call()`` raises an EslError matching ``match``, in one line, well within the hang guard."""
    began = time.monotonic()
    with pytest.raises(EslError, match=match) as caught:
        call()
    assert time.monotonic() - began < HANG_GUARD, "the driver hung"
    assert "\n" not in str(caught.value)
    return caught.value


def _small(rng: np.random.Generator) -> tuple[Model, np.ndarray]:
    model = random_model(rng, (30, 10, 4), timesteps=4)
    return model, _images(rng, model, 2)


def _run(device, model, images) -> Callable[[], dict]:
    return lambda: run_images(HostDriver(device, counter_names(model), TIMEOUT), model, images)


def test_a_device_that_never_returns_credit(rng: np.random.Generator) -> None:
    model, images = _small(rng)
    message = rf"^device returned no event-buffer space for {TIMEOUT} s \(LOAD_EVENTS, 8 of \d+ words sent\)$"
    _fails_cleanly(_run(Stalled(model, depth=8), model, images), message)


def test_a_device_that_answers_overflow_forever(rng: np.random.Generator) -> None:
    model, images = _small(rng)
    device = Overflowing(model, depth=8)
    message = rf"^device answered OVERFLOW for {TIMEOUT} s \(LOAD_EVENTS, 0 of \d+ words sent\)$"
    _fails_cleanly(_run(device, model, images), message)
    assert device.frames < 200, "the driver pauses between attempts instead of spinning"


def test_an_inference_that_never_ends(rng: np.random.Generator) -> None:
    model, images = _small(rng)
    _fails_cleanly(_run(NeverDone(model), model, images), rf"^inference not done within {TIMEOUT} s$")


@pytest.mark.parametrize("limit", [0, 3, 17, 60, 200])
def test_a_device_that_falls_silent(rng: np.random.Generator, limit: int) -> None:
    model, images = _small(rng)
    message = rf"^no reply to command 0x0\d within {TIMEOUT} s \(\w+(; \d+ bytes of a frame received)?\)$"
    _fails_cleanly(_run(SilentAfter(model, limit), model, images), message)


def _drop_byte(reply: bytes) -> bytes:
    return reply[:4] + reply[5:]


def _flip_last_payload_byte(reply: bytes) -> bytes:
    return reply[:-2] + bytes([reply[-2] ^ 0x40]) + reply[-1:]


C = P.Command
#: (command, change of its reply, error message; {out} and {counters} are the payload sizes).
MISBEHAVIOURS = {
    "status-empty": (C.STATUS, _payload(lambda p: b""), "^STATUS reply of 0 bytes, expected 5$"),
    "status-short": (C.STATUS, _payload(lambda p: p[:2]), "^STATUS reply of 2 bytes, expected 5$"),
    "status-long": (C.STATUS, _payload(lambda p: p + b"\0"), "^STATUS reply of 6 bytes, expected 5$"),
    "status-state": (C.STATUS, _payload(lambda p: b"\x03" + p[1:]), r"^STATUS reply with unknown state 3 "),
    "info-short": (C.INFO, _payload(lambda p: p[:17]), "^INFO reply of 17 bytes, expected 21$"),
    "info-empty": (C.INFO, _payload(lambda p: b""), "^INFO reply of 0 bytes, expected 21$"),
    "info-version": (C.INFO, _payload(lambda p: b"\x07" + p[1:]), "^device speaks protocol version 7"),
    "start-payload": (C.START, _payload(lambda p: b"\0"), "^START reply of 1 bytes, expected 0$"),
    "load-short": (C.LOAD_EVENTS, _payload(lambda p: p[:1]), "^LOAD_EVENTS reply of 1 bytes, expected 2$"),
    "load-empty": (C.LOAD_EVENTS, _payload(lambda p: b""), "^LOAD_EVENTS reply of 0 bytes, expected 2$"),
    "outputs-short": (C.READ_OUTPUTS, _payload(lambda p: p[:-1]), "^READ_OUTPUTS reply of {out-1} bytes"),
    "outputs-head": (C.READ_OUTPUTS, _payload(lambda p: p[:1]), "^READ_OUTPUTS reply of 1 bytes, expected"),
    "outputs-long": (C.READ_OUTPUTS, _payload(lambda p: p + b"\0"), "^READ_OUTPUTS reply of {out+1} bytes"),
    "prediction-4": (
        C.READ_OUTPUTS,
        _payload(lambda p: b"\x04\x00" + p[2:]),
        r"^READ_OUTPUTS reply with prediction 4 outside 0\.\.3$",
    ),
    "prediction-max": (C.READ_OUTPUTS, _payload(lambda p: b"\xff\xff" + p[2:]), "prediction 65535 outside"),
    "counters-short": (C.READ_COUNTERS, _payload(lambda p: p[:-4]), "^READ_COUNTERS reply of {counters-4} "),
    "counters-empty": (C.READ_COUNTERS, _payload(lambda p: b""), "^READ_COUNTERS reply of 0 bytes, expected"),
    "error-empty": (
        C.STATUS,
        lambda r: P.encode_frame(P.ERROR),
        r"^error reply without a code \(request STATUS \(0x04\)\)$",
    ),
    "error-other-command": (
        C.START,
        lambda r: P.encode_frame(P.ERROR, bytes([P.Error.BUSY, C.INFO, 0, 0])),
        r"^device error BUSY on INFO \(request START \(0x03\)\)$",
    ),
    "wrong-command": (
        C.STATUS,
        lambda r: P.encode_frame(C.INFO | P.REPLY, bytes(21)),
        r"^INFO reply \(0x81\) in answer to request STATUS \(0x04\)$",
    ),
    "request-echoed": (
        C.READ_OUTPUTS,
        lambda r: P.encode_frame(C.READ_OUTPUTS),
        r"^READ_OUTPUTS \(0x05\) in answer to request READ_OUTPUTS \(0x05\)$",
    ),
    "unknown-command": (
        C.LOAD_EVENTS,
        lambda r: P.encode_frame(0x42, b"\x08\x00"),
        r"^0x42 in answer to request LOAD_EVENTS \(0x02\)$",
    ),
    "dropped-byte": (
        C.READ_COUNTERS,
        _drop_byte,
        rf"^no reply to command 0x06 within {TIMEOUT} s \(READ_COUNTERS; \d+ bytes of a frame received\)$",
    ),
    "bad-crc": (
        C.READ_OUTPUTS,
        _flip_last_payload_byte,
        r"^reply with a bad CRC: a50185\w+ \(request READ_OUTPUTS \(0x05\)\)$",
    ),
    "garbage-with-sync": (
        C.STATUS,
        lambda r: b"\xa5\x01\x84\x00\x00" + r,
        r"^reply with a bad CRC: a501840000a5 \(request STATUS",
    ),
    "duplicate-reply": (
        C.START,
        lambda r: r + r,
        r"^the device sent a frame nobody asked for, before request STATUS \(0x04\)$",
    ),
}


@pytest.mark.parametrize("case", MISBEHAVIOURS)
def test_a_malformed_reply_is_one_clean_error(rng: np.random.Generator, case: str) -> None:
    from esl_hw.fpga.hostlink import acc_bytes

    command, change, match = MISBEHAVIOURS[case]
    model, images = _small(rng)
    out, counters = 2 + acc_bytes(model) * model.n_outputs, 4 * len(counter_names(model))
    match = match.replace("{out-1}", str(out - 1)).replace("{out+1}", str(out + 1))
    match = match.replace("{counters-4}", str(counters - 4))
    _fails_cleanly(_run(Tampered(model, command, change, depth=8), model, images), match)


@pytest.mark.parametrize(
    "command", [C.INFO, C.START, C.LOAD_EVENTS, C.STATUS, C.READ_OUTPUTS, C.READ_COUNTERS]
)
def test_a_reply_in_another_protocol_version_is_refused(rng: np.random.Generator, command: C) -> None:
    model, images = _small(rng)
    device = Tampered(model, command, _version(2), depth=8)
    message = rf"^reply to {command.name} \(0x0{command:x}\) in protocol version 2, expected version 1$"
    _fails_cleanly(_run(device, model, images), message)


def test_an_error_reply_in_another_version_is_refused_as_such(rng: np.random.Generator) -> None:
    model, images = _small(rng)
    device = Tampered(
        model, C.LOAD_EVENTS, lambda r: P.encode_frame(P.ERROR, b"\x05\x02\x00\x00", 0), depth=8
    )
    _fails_cleanly(_run(device, model, images), r"^reply to LOAD_EVENTS \(0x02\) in protocol version 0,")


def test_memory_replies_are_checked(rng: np.random.Generator) -> None:
    model = random_model(rng)
    short = Tampered(model, C.READ_MEMORY, lambda r: P.encode_frame(C.READ_MEMORY | P.REPLY, bytes(7)))
    _fails_cleanly(lambda: HostDriver(short, [], TIMEOUT).read_memory(0, 0, 4, 2), "^READ_MEMORY reply of 7")
    written = Tampered(model, C.WRITE_MEMORY, _payload(lambda p: b"\0"))
    call = lambda: HostDriver(written, [], TIMEOUT).write_memory(0, 0, [1], 2)  # noqa: E731
    _fails_cleanly(call, "^WRITE_MEMORY reply of 1 bytes, expected 0$")
    rewired = Tampered(model, C.REWIRE, lambda r: P.encode_frame(C.REWIRE | P.REPLY, b"\0"))
    call = lambda: HostDriver(rewired, [], TIMEOUT).rewire(0, 1, 1)  # noqa: E731
    _fails_cleanly(call, "^REWIRE reply of 1 bytes, expected 0$")


def test_garbage_without_sync_around_replies_is_skipped(rng: np.random.Generator) -> None:
    model, images = _small(rng)
    clean = run_images(HostDriver(FakeDevice(model, depth=8), counter_names(model), TIMEOUT), model, images)
    before = Tampered(model, None, lambda r: b"\x00\x13\x37\xff" + r, depth=8)
    assert _run(before, model, images)() == clean
    after = Tampered(model, None, lambda r: r + b"\x00\x13", depth=8)  # waiting when the next request goes
    assert _run(after, model, images)() == clean


def test_a_device_sending_only_garbage(rng: np.random.Generator) -> None:
    class Noise:
        def __init__(self, sync: bool) -> None:
            self.random = np.random.default_rng(7)
            self.sync = sync

        def write(self, data: bytes) -> None:
            pass

        def read(self, size: int) -> bytes:
            data = self.random.integers(0, 256, size, dtype=np.uint8)
            return bytes(data if self.sync else np.where(data == P.SYNC, 0, data))

    message = rf"^no reply to command 0x01 within {TIMEOUT} s \(INFO\)$"
    _fails_cleanly(lambda: HostDriver(Noise(False), [], TIMEOUT).info(), message)
    _fails_cleanly(
        lambda: HostDriver(Noise(True), [], TIMEOUT).info(), "^(no reply to command 0x01|reply with a)"
    )


def test_a_stray_frame_is_never_taken_for_the_next_reply(rng: np.random.Generator) -> None:
    class Unbuffered(Tampered):
        """No ``in_waiting``: the stray frame is seen only when the next request reads it."""

        in_waiting = None

    class Greedy(Tampered):
        """Returns every byte it has, whatever the size asked (two frames in one read)."""

        def read(self, size: int) -> bytes:
            return super().read(len(self.replies))

    model, images = _small(rng)
    twice = lambda r: r + r  # noqa: E731
    message = r"^INFO reply \(0x81\) in answer to request START \(0x03\)$"
    _fails_cleanly(_run(Unbuffered(model, C.INFO, twice), model, images), message)
    message = r"^2 frames in answer to one request INFO \(0x01\)$"
    _fails_cleanly(_run(Greedy(model, C.INFO, twice), model, images), message)


def test_transport_errors_name_the_port_and_the_request(rng: np.random.Generator) -> None:
    import serial

    class Broken(FakeDevice):
        port = "/dev/ttyUSB9"

        def __init__(self, model, failing: str) -> None:
            super().__init__(model)
            self.failing = failing

        def write(self, data: bytes) -> None:
            if self.failing == "write":
                raise OSError(5, "Input/output error")
            super().write(data)

        def read(self, size: int):
            if self.failing == "read":
                raise serial.SerialException("device reports readiness to read but returned no data\n(x)")
            return None if self.failing == "none" else super().read(size)

    model = random_model(rng)
    where = r"^serial port '/dev/ttyUSB9': "
    message = where + r"read failed during INFO \(0x01\): device reports readiness .* no data \(x\)$"
    _fails_cleanly(lambda: HostDriver(Broken(model, "read"), [], TIMEOUT).info(), message)
    message = where + r"write failed during INFO \(0x01\): \[Errno 5\] Input/output error$"
    _fails_cleanly(lambda: HostDriver(Broken(model, "write"), [], TIMEOUT).info(), message)
    message = where + r"read returned NoneType, not bytes \(INFO \(0x01\)\)$"
    _fails_cleanly(lambda: HostDriver(Broken(model, "none"), [], TIMEOUT).info(), message)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 0, 0.0, -5, "x", True, None, [1.0]])
def test_the_reply_timeout_must_be_a_finite_positive_number(value: object) -> None:
    with pytest.raises(EslError, match=rf"^reply timeout must be .*, got {re.escape(repr(value))}$"):
        HostDriver(FakeDevice(None), [], reply_timeout=value)


def test_the_poll_interval_is_checked_and_numbers_are_accepted(rng: np.random.Generator) -> None:
    model, images = _small(rng)
    driver = HostDriver(FakeDevice(model), counter_names(model), reply_timeout=np.float64(0.5))
    assert driver.reply_timeout == 0.5 and HostDriver(FakeDevice(model), [], 3).reply_timeout == 3.0
    with pytest.raises(EslError, match=r"^poll interval must be finite and above 0 seconds, got nan$"):
        driver.infer([[0]] * model.timesteps, poll_interval=math.nan)


# --- fuzz: the reply stream of a whole run, damaged -----------------------------------------------

#: Mutated reply streams in the fuzz test (more with ESL_HW_FUZZ_EXAMPLES=5000).
FUZZ_EXAMPLES = int(os.environ.get("ESL_HW_FUZZ_EXAMPLES", "200"))
FUZZ_TIMEOUT = 0.05


class Recorder:
    """A transport passing through to ``device`` that records every byte the device sends."""

    def __init__(self, device) -> None:
        self.device, self.sent = device, bytearray()

    def write(self, data: bytes) -> None:
        self.device.write(data)

    def read(self, size: int) -> bytes:
        data = self.device.read(size)
        self.sent += data
        return data


class Replay:
    """A transport answering every read from a recorded byte stream (writes are ignored)."""

    def __init__(self, stream: bytes) -> None:
        self.stream, self.position = stream, 0

    def write(self, data: bytes) -> None:
        pass

    def read(self, size: int) -> bytes:
        data = self.stream[self.position : self.position + size]
        self.position += len(data)
        if not data:
            time.sleep(0.001)  # as a serial port's read waits for its timeout
        return data


@functools.cache
def _recording() -> tuple:
    """Model, images, the device's reply stream of a complete run and the run's result."""
    model, images = _small(np.random.default_rng(99))
    recorder = Recorder(FakeDevice(model, depth=8))
    result = run_images(HostDriver(recorder, counter_names(model), 5), model, images)
    assert result["mismatches"] == 0
    return model, images, bytes(recorder.sent), result


def _mutate(stream: bytes, mutations: list[tuple[str, int, object]]) -> bytes:
    data = bytearray(stream)
    for kind, where, argument in mutations:
        at = where % (len(data) + 1)
        if kind == "flip" and at < len(data):
            data[at] ^= argument
        elif kind == "insert":
            data[at:at] = argument
        elif kind == "delete":
            del data[at : at + argument]
        elif kind == "repeat":
            data[at:at] = data[at : at + argument]
        elif kind == "truncate":
            del data[at:]
    return bytes(data)


_MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 16), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 16), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 16), st.integers(1, 16)),
    st.tuples(st.just("repeat"), st.integers(0, 1 << 16), st.integers(1, 32)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 16), st.just(0)),
)


def test_the_undamaged_recording_replays_to_the_same_result() -> None:
    model, images, stream, result = _recording()
    assert run_images(HostDriver(Replay(stream), counter_names(model), FUZZ_TIMEOUT), model, images) == result


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, derandomize=True)
@given(mutations=st.lists(_MUTATION, min_size=1, max_size=3))
def test_a_damaged_reply_stream_is_one_clean_error_or_the_same_result(mutations: list) -> None:
    model, images, stream, result = _recording()
    driver = HostDriver(Replay(_mutate(stream, mutations)), counter_names(model), FUZZ_TIMEOUT)
    began = time.monotonic()
    try:
        replayed = run_images(driver, model, images)
    except EslError as error:
        assert "\n" not in str(error) and str(error)
    else:
        assert replayed == result
    assert time.monotonic() - began < HANG_GUARD
