"""The host link's frame parser against a Python model of docs/protocol.md (async testbench)."""

from __future__ import annotations

import collections

import numpy as np
import pytest
from amaranth.sim import Simulator
from conftest import random_model

from esl_hw.fpga import protocol as P
from esl_hw.fpga.hostlink_parser import NO_PAYLOAD, FrameParser
from esl_hw.fpga.hostlink_parts import word_bytes
from esl_hw.rtl_gen.hardware import HardwareConfig
from esl_hw.rtl_gen.plan import plan_model

C, E = P.Command, P.Error
DEPTH, TIMEOUT = 32, 40


class ParserModel:
    """What the parser does with the bytes of one request: its reply, its event-buffer operations,
    its host-port writes and its rewire request (docs/protocol.md)."""

    def __init__(self, plan) -> None:
        self.plan, self.word_bytes = plan, word_bytes(plan)
        self.state, self.completed = P.State.IDLE, 0
        self.command = 0  # the command register: kept from the last frame that had one
        self.args = bytearray(7)

    def inference_done(self) -> None:
        self.state, self.completed = P.State.DONE, (self.completed + 1) % (1 << 16)

    def frame(self, data: bytes, free: int, refuse: bool) -> dict:
        """``data``: bytes without SYNC, SYNC, then a frame, complete or cut short (TIMEOUT)."""
        out = {"buffer": [], "writes": [], "rewire": None}
        body = data[data.index(P.SYNC) + 1 :]
        if len(body) >= 2:
            self.command = body[1]
        if len(body) < 4:
            return self._reply(out, E.TIMEOUT, rollback=True)
        version, command, length = body[0], body[1], body[2] | body[3] << 8
        if length > P.MAX_PAYLOAD:
            return self._reply(out, E.BAD_LENGTH)
        error = self._check(version, command, length, free)
        payload = body[4 : 4 + length]
        for index, byte in enumerate(payload):
            if index < 7:
                self.args[index] = byte
            if command == C.LOAD_EVENTS and error == 0 and index % 2:
                out["buffer"].append(("write", payload[index - 1] | byte << 8))
        if len(body) < 5 + length:
            return self._reply(out, E.TIMEOUT, rollback=True)
        if body[4 + length] != P.crc8(body[: 4 + length]):
            return self._reply(out, E.BAD_CRC, rollback=True)
        if error:
            return self._reply(out, error, rollback=True)
        if command == C.WRITE_MEMORY and (length - 5) % self.word_bytes:
            return self._reply(out, E.BAD_LENGTH)
        return self._reply(out, self._execute(out, command, payload, refuse))

    def _reply(self, out: dict, code: int, rollback: bool = False) -> dict:
        if rollback:
            out["buffer"].append("rollback")
        out["reply"] = (self.command | P.REPLY if code == 0 else P.ERROR, code, self.command)
        out["args"] = int.from_bytes(self.args, "little")
        return out

    def _check(self, version: int, command: int, length: int, free: int) -> int:
        if version != P.VERSION:
            return E.BAD_VERSION
        if not C.INFO <= command <= C.REWIRE:
            return E.UNKNOWN_COMMAND
        if command in NO_PAYLOAD and length:
            return E.BAD_LENGTH
        if command == C.LOAD_EVENTS and length % 2:
            return E.BAD_LENGTH
        if command == C.LOAD_EVENTS and length // 2 > free:
            return E.OVERFLOW
        if command in (C.READ_MEMORY, C.REWIRE) and length != 7:
            return E.BAD_LENGTH
        if command == C.WRITE_MEMORY and length < 5 + self.word_bytes:
            return E.BAD_LENGTH
        if command == C.REWIRE and not self.plan.rewiring:
            return E.UNSUPPORTED
        return 0

    def _execute(self, out: dict, command: int, payload: bytes, refuse: bool) -> int:
        args, running = self.args, self.state == P.State.RUNNING
        if command == C.LOAD_EVENTS:
            out["buffer"].append("commit")
        elif command == C.START:
            if running:
                return E.BUSY
            out["buffer"].append("start")
            self.state = P.State.RUNNING
        elif command == C.READ_OUTPUTS:
            return 0 if self.state == P.State.DONE else E.NOT_READY
        elif command in (C.READ_MEMORY, C.WRITE_MEMORY, C.REWIRE) and running:
            return E.BUSY
        elif command == C.READ_MEMORY:
            return E.BAD_LENGTH if (args[5] | args[6] << 8) * self.word_bytes > P.MAX_PAYLOAD else 0
        elif command == C.WRITE_MEMORY:
            self._write_memory(out, payload)
        elif command == C.REWIRE:
            out["rewire"] = (args[0], args[1] | args[2] << 8, int.from_bytes(args[3:7], "little"))
            return E.REFUSED if refuse else 0
        return 0

    def _write_memory(self, out: dict, payload: bytes) -> None:
        mem, address, size = payload[0], int.from_bytes(payload[1:5], "little"), self.word_bytes
        shape = self.plan.bus_shape
        for index in range((len(payload) - 5) // size):
            word = int.from_bytes(payload[5 + index * size : 5 + (index + 1) * size], "little")
            on_map = mem < len(self.plan.regions) and address + index < 1 << shape.addr_bits
            if on_map:
                out["writes"].append((mem, address + index, word % (1 << shape.data_bits)))


def random_request(rng, model: ParserModel, free: int) -> bytes:
    """A request as a host could send it, often malformed: every command, lengths around the
    limits, bad versions, unknown commands, corrupted CRCs, garbage before it, cut short."""
    size, regions = model.word_bytes, len(model.plan.regions)
    command = int(rng.choice([*C, 0, 10, 0x42]))
    lengths = {C.LOAD_EVENTS: 2 * int(rng.integers(0, free + 3)) + int(rng.random() < 0.1)}
    lengths[C.READ_MEMORY] = lengths[C.REWIRE] = 7 if rng.random() < 0.85 else int(rng.integers(0, 9))
    lengths[C.WRITE_MEMORY] = 5 + size * int(rng.integers(0, 5)) + int(rng.random() < 0.2)
    length = lengths.get(command, 0 if rng.random() < 0.85 else int(rng.integers(1, 4)))
    payload = bytearray(rng.integers(0, 256, length).tolist())
    if command in (C.READ_MEMORY, C.WRITE_MEMORY) and length >= 5:
        payload[0] = int(rng.integers(0, regions + 2))  # also off the map
        address = int(rng.choice([rng.integers(0, 6), (1 << model.plan.bus_shape.addr_bits) - 2]))
        payload[1:5] = address.to_bytes(4, "little")
    if command == C.READ_MEMORY and length == 7:
        count = int(rng.choice([rng.integers(0, 8), P.MAX_PAYLOAD // size + 1]))
        payload[5:7] = count.to_bytes(2, "little")
    frame = bytearray(P.encode_frame(command, bytes(payload), version=1 if rng.random() < 0.93 else 2))
    if rng.random() < 0.08:  # a bad CRC: the CRC byte or a payload byte changed
        frame[int(rng.integers(5, len(frame)))] ^= 1 << int(rng.integers(0, 8))
    if rng.random() < 0.05:
        frame = frame[: int(rng.integers(1, len(frame)))]  # cut short: TIMEOUT
    elif rng.random() < 0.03:
        frame = bytearray([P.SYNC, P.VERSION, command, *(P.MAX_PAYLOAD + 1).to_bytes(2, "little")])
    garbage = [byte for byte in rng.integers(0, 256, int(rng.integers(0, 3))).tolist() if byte != P.SYNC]
    return bytes(garbage) + bytes(frame)


@pytest.mark.parametrize("rewiring", [True, False])
def test_frame_parser_matches_its_model(rewiring) -> None:
    model_artifact = random_model(np.random.default_rng(4), (10, 6, 3), timesteps=3, w_bits=6)
    plan = plan_model(model_artifact, HardwareConfig(rewiring=rewiring))
    dut = FrameParser(plan, DEPTH, TIMEOUT)
    model = ParserModel(plan)
    rng = np.random.default_rng(17 + rewiring)
    seen = {"buffer": [], "writes": [], "rewire": []}
    kinds = collections.Counter()
    refuse = [False]

    async def send(ctx, data: bytes) -> None:
        for byte in data:
            ctx.set(dut.rx.payload, byte)
            ctx.set(dut.rx.valid, 1)
            await ctx.tick()
            ctx.set(dut.rx.valid, 0)
            gap = int(rng.integers(0, 4))
            if gap:
                await ctx.tick().repeat(gap)

    async def driver(ctx) -> None:
        for case in range(400):
            if model.state == P.State.RUNNING and rng.random() < 0.3:
                ctx.set(dut.done, 1)
                await ctx.tick()
                ctx.set(dut.done, 0)
                model.inference_done()
            free = int(rng.integers(0, DEPTH + 1))
            ctx.set(dut.buffer.free, free)
            refuse[0] = bool(rng.random() < 0.3)
            data = random_request(rng, model, free)
            for records in seen.values():
                records.clear()
            expected = model.frame(data, free, refuse[0])
            await send(ctx, data)
            while not ctx.get(dut.reply.valid):
                await ctx.tick()
            reply = ctx.get(dut.reply.payload)
            got = (reply.command, reply.error, reply.error_command)
            assert got == expected["reply"], f"case {case}: {data.hex()}"
            assert seen["buffer"] == expected["buffer"], f"case {case}: {data.hex()}"
            assert seen["writes"] == expected["writes"], f"case {case}: {data.hex()}"
            assert seen["rewire"] == ([expected["rewire"]] if expected["rewire"] else [])
            assert ctx.get(dut.args) == expected["args"]
            assert (ctx.get(dut.state), ctx.get(dut.completed)) == (model.state, model.completed)
            kinds[expected["reply"][0], expected["reply"][1]] += 1
            await ctx.tick().repeat(int(rng.integers(1, 4)))  # the sender sends the reply
            ctx.set(dut.reply.ready, 1)
            await ctx.tick()
            ctx.set(dut.reply.ready, 0)
            await ctx.tick()
        codes = {code for command, code in kinds if command == P.ERROR}
        assert codes == set(E) - ({E.REFUSED} if not rewiring else {E.UNSUPPORTED}), kinds
        succeeded = {command & 0x7F for command, code in kinds if command != P.ERROR}
        assert succeeded == set(C) - (set() if rewiring else {C.REWIRE})

    async def buffer(ctx) -> None:  # the event buffer's side: every strobe in order
        while True:
            if ctx.get(dut.buffer.write):
                seen["buffer"].append(("write", ctx.get(dut.buffer.data)))
            strobes = ("commit", "rollback", "start")
            seen["buffer"].extend(name for name in strobes if ctx.get(getattr(dut.buffer, name)))
            await ctx.tick()

    async def host(ctx) -> None:  # the core's host port, ready now and then
        while True:
            ready = int(rng.random() < 0.5)
            ctx.set(dut.host.ready, ready)
            if ctx.get(dut.host.valid):
                assert ctx.get(dut.host.write)
                if ready:
                    write = tuple(ctx.get(getattr(dut.host, name)) for name in ("mem", "addr", "wdata"))
                    seen["writes"].append(write)
            await ctx.tick()

    async def rewiring_unit(ctx) -> None:  # takes a request when idle, finishes a few cycles later
        while True:
            idle = int(rng.random() < 0.5)
            ctx.set(dut.rewire.idle, idle)
            if idle and ctx.get(dut.rewire.start):
                request = tuple(ctx.get(getattr(dut.rewire, n)) for n in ("layer", "k", "seed"))
                seen["rewire"].append(request)
                await ctx.tick().repeat(int(rng.integers(1, 6)))
                ctx.set(dut.rewire.error, int(refuse[0]))
                ctx.set(dut.rewire.done, 1)
                await ctx.tick()
                ctx.set(dut.rewire.done, 0)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(buffer, background=True)
    sim.add_testbench(host, background=True)
    if rewiring:
        sim.add_testbench(rewiring_unit, background=True)
    sim.run()


def test_frame_parser_checks_its_timeout() -> None:
    plan = plan_model(random_model(np.random.default_rng(4), (10, 6, 3)))
    with pytest.raises(ValueError, match="timeout must be a positive number of cycles, got 0"):
        FrameParser(plan, DEPTH, 0)
