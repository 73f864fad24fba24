"""Host-link parts against Python models: the event buffer and the reply sender (async testbenches)."""

from __future__ import annotations

import collections

import numpy as np
import pytest
from amaranth.sim import Simulator
from conftest import random_model

from esl_hw.fpga import protocol as P
from esl_hw.fpga.hostlink import info_payload
from esl_hw.fpga.hostlink_parts import EventBuffer, ReplySender, acc_bytes, host_signature, word_bytes
from esl_hw.rtl_gen import counter_names
from esl_hw.rtl_gen.memory_map import READ_LATENCY
from esl_hw.rtl_gen.plan import plan_model

R = P.REPLY


@pytest.fixture(scope="module")
def plan():
    model = random_model(np.random.default_rng(8), (12, 6, 3), timesteps=3, w_bits=6, v_bits=10)
    return plan_model(model)


# -- event buffer --------------------------------------------------------------------------------


class BufferModel:
    """The event buffer as a Python model: committed words in order, tentative ones, and the
    words fed per inference (``T`` end-of-step markers after each start)."""

    def __init__(self, depth: int, timesteps: int) -> None:
        self.depth, self.timesteps = depth, timesteps
        self.committed: collections.deque[int] = collections.deque()
        self.tentative: list[int] = []
        self.fed: list[list[int]] = []  # per start, the words the core should receive
        self.markers = timesteps  # markers passed since the last start (T: holding)

    def room(self) -> int:
        return self.depth - len(self.committed) - len(self.tentative)

    def start(self) -> None:
        self.fed.append([])
        self.markers = 0
        self._feed()

    def commit(self) -> None:
        self.committed.extend(self.tentative)
        self.tentative = []
        self._feed()

    def _feed(self) -> None:
        while self.markers < self.timesteps and self.committed:
            word = self.committed.popleft()
            self.fed[-1].append(word)
            self.markers += word >> 15

    def undelivered(self) -> int:
        return len(self.committed)


def test_event_buffer_matches_its_model(plan) -> None:
    depth, timesteps = 16, plan.model.timesteps
    dut = EventBuffer(plan, depth)
    rng = np.random.default_rng(11)
    model = BufferModel(depth, timesteps)
    received: list[int] = []
    index_bits = len(dut.events.payload.index)

    async def settle(ctx) -> None:
        """Let the buffer feed the core what the model has fed it; then ``free`` is exact: every
        committed word the core has not taken, except the one waiting in the output register."""
        for _ in range(200):
            if len(received) == sum(map(len, model.fed)):
                break
            await ctx.tick()
        await ctx.tick().repeat(3)
        assert received == [word for words in model.fed for word in words]
        assert ctx.get(dut.write.free) == depth - max(0, model.undelivered() - 1)

    async def strobe(ctx, port, value=1) -> None:
        ctx.set(port, value)
        await ctx.tick()
        ctx.set(port, 0)

    async def driver(ctx) -> None:
        for _ in range(400):
            action = rng.choice(["write", "commit", "rollback", "start", "wait"], p=[0.5, 0.2, 0.1, 0.1, 0.1])
            if action == "write" and model.room() > 0:
                marker = rng.random() < 0.3
                word = int(rng.integers(0, 1 << index_bits)) | (P.EOS_FLAG if marker else 0)
                ctx.set(dut.write.data, word)
                await strobe(ctx, dut.write.write)
                model.tentative.append(word)
            elif action == "commit":
                await strobe(ctx, dut.write.commit)
                model.commit()
            elif action == "rollback":
                await strobe(ctx, dut.write.rollback)
                model.tentative = []
            elif action == "start" and model.markers == timesteps:
                await settle(ctx)  # the link starts only once the core has taken the last inference
                await strobe(ctx, dut.write.start)
                model.start()
            if rng.random() < 0.3:
                await settle(ctx)
        await settle(ctx)
        assert len(model.fed) > 10 and len(received) > 4 * depth  # the pointers wrap

    async def core(ctx) -> None:  # takes events with random backpressure
        while True:
            ready = int(rng.random() < 0.6)
            ctx.set(dut.events.ready, ready)
            if ready and ctx.get(dut.events.valid):
                payload = ctx.get(dut.events.payload)
                received.append(payload.index | payload.eos << 15)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(core, background=True)
    sim.run()


def test_event_buffer_checks_its_depth(plan) -> None:
    with pytest.raises(ValueError, match="depth must be a power of two of at least 2, got 12"):
        EventBuffer(plan, 12)


def test_host_signature_access_is_checked(plan) -> None:
    with pytest.raises(ValueError, match="access must be 'read' or 'write', got 'both'"):
        host_signature(plan.bus_shape, "both")
    assert set(host_signature(plan.bus_shape, "read").members) == {
        "valid", "mem", "addr", "ready", "rvalid", "rdata"
    }  # fmt: skip


# -- reply sender ------------------------------------------------------------------------------------


def expected_reply(plan, info: bytes, request: dict, inputs: dict, memory) -> bytes:
    """The reply frame (docs/protocol.md) the sender must send for ``request``, given its inputs."""
    command = request["command"]
    free = inputs["free"].to_bytes(2, "little")
    if command == P.ERROR:
        payload = bytes([request["error"], request["error_command"]]) + free
    elif command == P.Command.INFO | R:
        payload = info
    elif command == P.Command.LOAD_EVENTS | R:
        payload = free
    elif command == P.Command.STATUS | R:
        payload = bytes([inputs["state"]]) + free + inputs["completed"].to_bytes(2, "little")
    elif command == P.Command.READ_OUTPUTS | R:
        size = acc_bytes(plan.model)
        values = [value % (1 << 8 * size) for value in inputs["outputs"]]
        payload = inputs["prediction"].to_bytes(2, "little") + b"".join(
            v.to_bytes(size, "little") for v in values
        )
    elif command == P.Command.READ_COUNTERS | R:
        payload = b"".join(value.to_bytes(4, "little") for value in inputs["counters"])
    elif command == P.Command.READ_MEMORY | R:
        mem, address, count = request["args"]
        words = [memory(mem, address + index) for index in range(count)]
        payload = b"".join(word.to_bytes(word_bytes(plan), "little") for word in words)
    else:  # START, WRITE_MEMORY, REWIRE: empty
        payload = b""
    return P.encode_frame(command, payload)


def random_request(rng, plan) -> dict:
    commands = [int(code) | R for code in P.Command] + [P.ERROR] * 3
    command = int(rng.choice(commands))
    request = {"command": command, "error": 0, "error_command": 0, "args": (0, 0, 0)}
    if command == P.ERROR:
        request.update(error=int(rng.integers(1, 11)), error_command=int(rng.integers(0, 256)))
    if command == P.Command.READ_MEMORY | R:
        mem = int(rng.integers(0, len(plan.regions) + 2))  # also off the map
        address = int(rng.choice([rng.integers(0, 8), (1 << plan.bus_shape.addr_bits) - 2]))
        request["args"] = (mem, address, int(rng.integers(0, 5)))
    return request


def test_reply_sender_matches_the_protocol(plan) -> None:
    model = plan.model
    info = info_payload(model, plan.lanes, 64, P.CAP_MEMORY)
    dut = ReplySender(plan, info, 64)
    rng = np.random.default_rng(21)
    names = counter_names(model)
    regions, addr_bits = plan.regions, plan.bus_shape.addr_bits
    rdata_bits = plan.bus_shape.data_bits

    def memory(mem: int, address: int) -> int:  # the core's host port: a hash of the address, 0 off the map
        on_map = mem < len(regions) and address < (1 << addr_bits)
        return (mem * 7919 + address * 104729 + 13) % (1 << rdata_bits) if on_map else 0

    sent: list[int] = []
    taken: list[int] = []  # cases whose reply the sender has taken (reply.ready with the CRC byte)
    counts = collections.Counter()
    acc = model.acc_bits()

    async def driver(ctx) -> None:
        for case in range(120):
            inputs = {
                "free": int(rng.integers(0, 65)),
                "state": int(rng.integers(0, 3)),
                "completed": int(rng.integers(0, 1 << 16)),
                "prediction": int(rng.integers(0, model.n_outputs)),
                "counters": [int(rng.integers(0, 1 << 32)) for _ in names],
                "outputs": [int(rng.integers(-(1 << acc - 1), 1 << acc - 1)) for _ in range(model.n_outputs)],
            }
            for index, value in enumerate(inputs["outputs"]):  # the core's output words
                ctx.set(dut.outputs.payload, {"index": index, "value": value, "last": 0})
                ctx.set(dut.outputs.valid, 1)
                await ctx.tick()
            ctx.set(dut.outputs.valid, 0)
            for name in ("free", "state", "completed", "prediction"):
                ctx.set(getattr(dut, name), inputs[name])
            for index, value in enumerate(inputs["counters"]):
                ctx.set(dut.counters[index], value)
            request = random_request(rng, plan)
            mem, address, count = request["args"]
            ctx.set(dut.args, mem | address << 8 | count << 40)
            ctx.set(dut.reply.payload, {k: request[k] for k in ("command", "error", "error_command")})
            del sent[:]
            ctx.set(dut.reply.valid, 1)
            assert ctx.get(dut.error) == (request["command"] == P.ERROR)
            while len(taken) == case:
                await ctx.tick()
            expected = expected_reply(plan, info, request, inputs, memory)
            assert bytes(sent) == expected, f"case {case}: {request}"
            counts[request["command"]] += 1

    async def uart(ctx) -> None:  # the transmitter takes a byte now and then
        while True:
            ready = int(rng.random() < 0.4)
            ctx.set(dut.tx.ready, ready)
            if ready and ctx.get(dut.tx.valid):
                sent.append(ctx.get(dut.tx.payload))
            if ctx.get(dut.reply.valid) and ctx.get(dut.reply.ready):  # taken: the parser drops it
                ctx.set(dut.reply.valid, 0)
                taken.append(len(taken))
            await ctx.tick()

    async def host(ctx) -> None:  # the core's host port: random ready, words READ_LATENCY cycles later
        answers: dict[int, int] = {}
        cycle = 0
        while True:
            ready = int(rng.random() < 0.5)
            ctx.set(dut.host.ready, ready)
            ctx.set(dut.host.rvalid, int(cycle in answers))
            ctx.set(dut.host.rdata, answers.pop(cycle, 0))
            if ready and ctx.get(dut.host.valid):
                word = memory(ctx.get(dut.host.mem), ctx.get(dut.host.addr))
                answers[cycle + READ_LATENCY] = word
            await ctx.tick()
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(uart, background=True)
    sim.add_testbench(host, background=True)
    sim.run()
    assert len(taken) == 120 and len(counts) == len(P.Command) + 1  # every reply kind was sent
