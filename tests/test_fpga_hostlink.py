"""Host-link gateware pieces: the CRC network, the INFO payload, argument checks."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import Module, Signal
from amaranth.sim import Simulator
from conftest import random_model

from esl_hw.errors import EslError
from esl_hw.fpga import protocol as P
from esl_hw.fpga.driver import DeviceInfo
from esl_hw.fpga.hostlink import HostLink, acc_bytes, crc8_step, info_payload, memory_word_bytes, model_id
from esl_hw.rtl_gen import counter_names
from esl_hw.rtl_gen.hardware import HardwareConfig
from esl_hw.rtl_gen.plan import plan_model


def test_crc8_step_matches_the_protocol_crc() -> None:
    crc, byte, out = Signal(8), Signal(8), Signal(8)
    m = Module()
    m.d.comb += out.eq(crc8_step(crc, byte))
    rng = np.random.default_rng(3)
    cases = [(0, 0), (0xFF, 0xFF), *rng.integers(0, 256, (200, 2)).tolist()]

    async def check(ctx) -> None:
        for before, value in cases:
            ctx.set(crc, before)
            ctx.set(byte, value)
            assert ctx.get(out) == P.crc8(bytes([value]), before)

    sim = Simulator(m)
    sim.add_testbench(check)
    sim.run()


def test_info_payload_parses(rng: np.random.Generator) -> None:
    model = random_model(rng, (20, 12, 4))
    info = DeviceInfo.parse(info_payload(model, lanes=2, event_depth=64))
    assert (info.version, info.n_inputs, info.n_outputs, info.timesteps) == (P.VERSION, 20, 4, 5)
    assert info.acc_bytes == acc_bytes(model) and info.counters == len(counter_names(model))
    assert (info.event_depth, info.lanes, info.model_id, info.clock_hz) == (64, 2, model_id(model), 0)
    clocked = DeviceInfo.parse(info_payload(model, lanes=2, event_depth=64, clock_hz=21_750_000))
    assert clocked.clock_hz == 21_750_000 and clocked.model_id == info.model_id


def test_the_link_reports_its_clock(rng: np.random.Generator) -> None:
    model = random_model(rng, (20, 12, 4))
    link = HostLink(model, divisor=8, clock_hz=100_000_000)
    assert DeviceInfo.parse(link.info).clock_hz == 100_000_000 == link.clock_hz
    for part in (link, link.core, link.uart_rx, link.uart_tx):  # inspected, never elaborated
        part._MustUse__silence = True
    for bad in (-1, 1 << 32, 2.5e7, True):
        with pytest.raises(EslError, match="clock_hz must be an integer number of Hz in 0..2\\*\\*32-1"):
            HostLink(model, divisor=8, clock_hz=bad)


def test_model_id_depends_on_weights(rng: np.random.Generator) -> None:
    assert model_id(random_model(rng)) != model_id(random_model(rng))


def test_argument_checks(rng: np.random.Generator) -> None:
    model = random_model(rng)
    with pytest.raises(EslError, match="event_depth must be a power of two in 16..32768, got 100"):
        HostLink(model, divisor=8, event_depth=100)
    with pytest.raises(EslError, match=r"timeout must be at least 16 bit times \(128 cycles\), got 10"):
        HostLink(model, divisor=8, timeout=10)
    with pytest.raises(TypeError, match="model must be an esl_hw.artifact.Model, got str"):
        HostLink("model", divisor=8)


def test_the_link_takes_one_plan(rng: np.random.Generator) -> None:
    # The core, the memory word size and INFO all come from the one plan the link is given.
    model = random_model(rng, (20, 12, 4), w_bits=9)
    plan = plan_model(model, HardwareConfig(lanes=2, lane_fifo_depth=4))
    link = HostLink(plan, divisor=8)
    assert link.plan is plan and link.core.plan is plan and link.lanes == 2
    assert link.word_bytes == memory_word_bytes(plan) == -(-plan.bus_shape.data_bits // 8)
    info = DeviceInfo.parse(link.info)
    assert info.lanes == 2 and not info.capabilities & P.CAP_REWIRE  # 9-bit weights: no rewiring unit
    assert memory_word_bytes(model, lanes=2) == link.word_bytes
    with pytest.raises(EslError, match="lanes=4 differs from the plan's"):
        HostLink(plan, divisor=8, lanes=4)
    for part in (link, link.core, link.uart_rx, link.uart_tx):  # inspected, never elaborated
        part._MustUse__silence = True
