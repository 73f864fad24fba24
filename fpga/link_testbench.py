"""cocotb test module of the host link (run by :func:`esl_hw.fpga.linksim.run_link_cosim`).

A simulated UART drives the link's ``rx`` pin and samples its ``tx`` pin bit by bit; the real
:class:`~esl_hw.fpga.driver.HostDriver` runs in a cocotb bridge thread over it (every transport
call resumes the simulation until its bytes are on the wire or a read's wait has passed).
"""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.task import bridge, resume
from cocotb.triggers import FallingEdge, Timer

from esl_hw.artifact_io import load_model
from esl_hw.fpga import protocol as P
from esl_hw.fpga.driver import HostDriver, run_images
from esl_hw.fpga.hostlink import memory_word_bytes, model_id
from esl_hw.fpga.linksim import LINK_CONFIG_ENV
from esl_hw.rewiring import rewire_model
from esl_hw.rtl_gen.memory_map import memory_images
from esl_hw.rtl_gen.plan import CorePlan, plan_model


class SimUart:
    """Bit-level 8N1 UART on the testbench side of ``dut.rx`` / ``dut.tx``."""

    def __init__(self, dut, bit_ns: int) -> None:
        self.dut = dut
        self.bit_ns = bit_ns
        self.received: collections.deque[int] = collections.deque()

    async def monitor(self) -> None:
        """Collect every byte the device sends (sampled in the middle of each bit)."""
        while True:
            await FallingEdge(self.dut.tx)
            await Timer(self.bit_ns * 3 // 2, unit="ns")
            value = 0
            for bit in range(8):
                value |= int(self.dut.tx.value) << bit
                await Timer(self.bit_ns, unit="ns")
            if int(self.dut.tx.value) == 1:  # stop bit
                self.received.append(value)

    async def send(self, data: bytes) -> None:
        for byte in data:
            for level in [0, *((byte >> bit) & 1 for bit in range(8)), 1]:
                self.dut.rx.value = level
                await Timer(self.bit_ns, unit="ns")

    async def receive(self, size: int) -> bytes:
        if not self.received:
            await Timer(self.bit_ns * 10, unit="ns")
        out = bytearray()
        while self.received and len(out) < size:
            out.append(self.received.popleft())
        return bytes(out)


class SimTransport:
    """The driver's transport over :class:`SimUart`, for use inside a bridge thread."""

    def __init__(self, uart: SimUart) -> None:
        self._send = resume(uart.send)
        self._receive = resume(uart.receive)

    def write(self, data: bytes) -> None:
        self._send(data)

    def read(self, size: int) -> bytes:
        return self._receive(size)


def _raw_reply(transport: SimTransport, data: bytes, polls: int = 2000) -> P.Frame | None:
    transport.write(data)
    decoder = P.FrameDecoder()
    for _ in range(polls):
        frames = decoder.feed(transport.read(64))
        if frames:
            return frames[0]
    return None


def _expect_error(transport, driver, data: bytes, code: P.Error) -> bool:
    frame = _raw_reply(transport, data)
    ok = frame is not None and frame.is_error and frame.payload[0] == code
    return bool(ok and driver.info().version == P.VERSION)  # and the link still answers


def scenario(uart: SimUart, config: dict) -> dict:
    """The whole test in a bridge thread: error handling first, then the bit-exact run."""
    model = load_model(config["model"])
    images = np.load(config["images"], allow_pickle=False)
    transport = SimTransport(uart)
    driver = HostDriver(transport, config["counters"], reply_timeout=600)
    depth = config["event_depth"]
    checks = {}
    info = driver.info()
    checks["info"] = info.model_id == model_id(model) and info.event_depth == depth

    def expect(data: bytes, code: P.Error) -> bool:
        return _expect_error(transport, driver, data, code)

    checks["not_ready"] = expect(P.encode_frame(P.Command.READ_OUTPUTS), P.Error.NOT_READY)
    bad_crc = bytearray(P.encode_frame(P.Command.LOAD_EVENTS, P.pack_words([1, 2, 3])))
    bad_crc[-1] ^= 0x5A
    checks["bad_crc"] = expect(bytes(bad_crc), P.Error.BAD_CRC)
    checks["bad_crc_injects_nothing"] = driver.status().free == depth
    checks["bad_version"] = expect(P.encode_frame(P.Command.INFO, version=2), P.Error.BAD_VERSION)
    checks["unknown_command"] = expect(P.encode_frame(0x42), P.Error.UNKNOWN_COMMAND)
    checks["bad_length"] = expect(P.encode_frame(P.Command.START, b"\x00"), P.Error.BAD_LENGTH)
    checks["odd_length"] = expect(P.encode_frame(P.Command.LOAD_EVENTS, b"\x01\x00\x02"), P.Error.BAD_LENGTH)
    too_many = P.encode_frame(P.Command.LOAD_EVENTS, P.pack_words(list(range(depth + 1))))
    checks["overflow"] = expect(too_many, P.Error.OVERFLOW)
    checks["overflow_injects_nothing"] = driver.status().free == depth
    checks["memory_length"] = expect(P.encode_frame(P.Command.READ_MEMORY, bytes(6)), P.Error.BAD_LENGTH)
    nnz = model.layers[0].nnz
    refused = bytes([0]) + (nnz + 1).to_bytes(2, "little") + (1).to_bytes(4, "little")
    checks["rewire_refused"] = expect(P.encode_frame(P.Command.REWIRE, refused), P.Error.REFUSED)
    frame = _raw_reply(transport, b"\x00\x13\x37" + P.encode_frame(P.Command.INFO))
    checks["garbage_skipped"] = frame is not None and frame.command == P.Command.INFO | P.REPLY
    checks["timeout"] = expect(P.encode_frame(P.Command.STATUS)[:3], P.Error.TIMEOUT)
    run = run_images(driver, model, images)
    checks.update(memory_checks(driver, transport, plan_model(model)))  # the link's plan (HostLink(model))
    ok = all(checks.values()) and run["mismatches"] == 0
    return {"ok": ok, "checks": checks, "run": run}


def memory_checks(driver: HostDriver, transport: SimTransport, plan: CorePlan) -> dict:
    """Read every memory, write one, rewire every layer and read the memories back, all sized by
    ``plan``, the link's core (planned once)."""
    model, regions, size = plan.model, plan.regions, memory_word_bytes(plan)

    def read_all() -> list[list[int]]:
        return [driver.read_region(region.id, region.depth, size) for region in regions]

    checks = {"memory_read": read_all() == memory_images(plan)}
    pot = next(region for region in regions if region.kind == "pot")
    pattern = [(3 * index + 1) % (1 << pot.width) for index in range(pot.depth)]
    driver.write_memory(pot.id, 0, pattern, size)
    checks["memory_write"] = driver.read_region(pot.id, pot.depth, size) == pattern
    driver.write_memory(pot.id, 0, [0] * pot.depth, size)  # the next inference starts from 0
    frame = bytearray(P.encode_frame(P.Command.WRITE_MEMORY, bytes([pot.id, 0, 0, 0, 0]) + b"\x05" * size))
    frame[-1] ^= 0x5A
    bad = _raw_reply(transport, bytes(frame))
    checks["memory_write_bad_crc"] = bool(bad and bad.is_error and bad.payload[0] == P.Error.BAD_CRC)
    unchanged = driver.read_region(pot.id, pot.depth, size) == [0] * pot.depth
    checks["memory_write_bad_crc_writes_nothing"] = unchanged
    ks, seed = [layer.nnz // 3 for layer in model.layers], 0x1F2E3D
    for layer, k in enumerate(ks):
        driver.rewire(layer, k, seed, model=model)
    rewired = plan_model(rewire_model(model, ks, seed), plan.config)  # the same core, new synapses
    checks["rewire_read_back"] = read_all() == memory_images(rewired)
    return checks


@cocotb.test()
async def link_end_to_end(dut) -> None:
    """Error handling and bit-exact inference through the simulated UART."""
    config = json.loads(Path(os.environ[LINK_CONFIG_ENV]).read_text())
    uart = SimUart(dut, config["divisor"] * config["clock_ns"])
    cocotb.start_soon(uart.monitor())
    dut.rx.value = 1
    await Timer(20 * config["clock_ns"], unit="ns")
    report = await bridge(scenario)(uart, config)
    Path(config["report"]).write_text(json.dumps(report))
    assert report["ok"], f"link checks failed: {report['checks']}, {report['run']['details'][:3]}"
