"""Host driver against a pure-Python model of the device: credits, errors, the bit-exact check."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_model

from esl_hw.encoding import encode
from esl_hw.errors import EslError
from esl_hw.fpga import protocol as P
from esl_hw.fpga.driver import HostDriver, check_rewire_request, open_serial, run_images
from esl_hw.fpga.hostlink import info_payload, memory_word_bytes
from esl_hw.reference import run
from esl_hw.rtl_gen import counter_names


class FakeDevice:
    """The protocol as the gateware implements it, computing outputs with the reference model."""

    def __init__(self, model, depth: int = 16, corrupt: bool = False) -> None:
        self.model, self.depth, self.corrupt = model, depth, corrupt
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

    def error(self, code: P.Error, command: int) -> bytes:
        free = self.depth - len(self.buffer)
        return P.encode_frame(P.ERROR, bytes([code, command]) + free.to_bytes(2, "little"))

    def handle(self, frame: P.Frame) -> bytes:
        command = frame.command
        if command == P.Command.INFO:
            return P.encode_frame(command | P.REPLY, info_payload(self.model, 1, self.depth))
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
            return P.encode_frame(command | P.REPLY, bytes(4 * len(counter_names(self.model))))
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
