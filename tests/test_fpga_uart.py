"""UART receiver and transmitter: loopback in the Amaranth simulator, framing errors, divisors."""

from __future__ import annotations

import pytest
from amaranth import Module
from amaranth.sim import Simulator

from esl_hw.errors import EslError
from esl_hw.fpga.uart import UARTRx, UARTTx, uart_divisor


def _loopback(data: bytes, divisor: int) -> list[int]:
    m = Module()
    m.submodules.tx = tx = UARTTx(divisor)
    m.submodules.rx = rx = UARTRx(divisor)
    m.d.comb += [rx.rx.eq(tx.tx), rx.data.ready.eq(1)]
    received: list[int] = []

    async def sender(ctx) -> None:
        for byte in data:
            ctx.set(tx.data.payload, byte)
            ctx.set(tx.data.valid, 1)
            await ctx.tick().until(tx.data.ready)
            ctx.set(tx.data.valid, 0)
            if byte % 3 == 0:  # idle gaps between some bytes
                await ctx.tick().repeat(divisor * 3)

    async def receiver(ctx) -> None:
        while len(received) < len(data):
            await ctx.tick()
            if ctx.get(rx.data.valid):
                received.append(ctx.get(rx.data.payload))
                assert not ctx.get(rx.overrun) and not ctx.get(rx.frame_error)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(sender)
    sim.add_testbench(receiver, background=True)
    sim.run_until(1e-6 * (len(data) + 4) * divisor * 14)
    return received


@pytest.mark.parametrize("divisor", [4, 7, 16])
def test_loopback_is_lossless(divisor: int) -> None:
    data = bytes([0x00, 0xFF, 0x55, 0xAA, 0xA5, 0x01, 0x80, 0x3C])
    assert bytes(_loopback(data, divisor)) == data


def test_receiver_drops_a_byte_with_a_low_stop_bit() -> None:
    divisor = 8
    rx = UARTRx(divisor)
    seen = {"valid": 0, "frame_error": 0}

    async def drive(ctx) -> None:
        for level in [0, 1, 0, 1, 0, 1, 0, 1, 0, 0]:  # start, 8 data bits, low stop bit
            ctx.set(rx.rx, level)
            for _ in range(divisor):
                await ctx.tick()
                seen["valid"] |= ctx.get(rx.data.valid)
                seen["frame_error"] |= ctx.get(rx.frame_error)
        ctx.set(rx.rx, 1)
        for _ in range(4 * divisor):
            await ctx.tick()
            seen["frame_error"] |= ctx.get(rx.frame_error)

    sim = Simulator(rx)
    sim.add_clock(1e-6)
    sim.add_testbench(drive)
    sim.run()
    assert seen == {"valid": 0, "frame_error": 1}


def test_divisor() -> None:
    assert uart_divisor(25e6, 115200) == 217
    assert uart_divisor(12e6, 115200) == 104
    with pytest.raises(EslError, match="too fast"):
        uart_divisor(12e6, 4_000_000)
    with pytest.raises(EslError, match="within 2%"):
        uart_divisor(12e6, 1_800_000)
    with pytest.raises(EslError, match="divisor must be an integer >= 4, got 2"):
        UARTTx(2)
