"""8N1 UART receiver and transmitter with byte streams (``amaranth.lib.stream``).

Both count ``divisor = round(clk_freq / baud)`` clock cycles per bit. The receiver synchronises
its input with two flip-flops, waits half a bit after the falling edge of the start bit, checks
that the start bit is still low (a glitch is ignored), samples the 8 data bits (LSB first) in the
middle of each bit and requires a high stop bit; a byte with a low stop bit is dropped and counted
on ``frame_error``. Its output stream has no backpressure: a byte not taken before the next one
completes is counted on ``overrun`` (the protocol engine always takes one within a cycle).
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from esl_hw.errors import EslError


def uart_divisor(clk_freq: float, baud: int) -> int:
    """Clock cycles per bit; raises :class:`EslError` when the baud rate is too fast for the clock."""
    if baud <= 0 or clk_freq <= 0:
        raise EslError(f"clock {clk_freq!r} Hz and baud rate {baud!r} must be positive")
    divisor = round(clk_freq / baud)
    if divisor < 4:
        raise EslError(
            f"baud rate {baud} is too fast for a {clk_freq / 1e6:g} MHz clock (needs >= 4 cycles/bit)"
        )
    if abs(clk_freq / divisor - baud) / baud > 0.02:
        raise EslError(
            f"baud rate {baud} cannot be made within 2% from a {clk_freq / 1e6:g} MHz clock "
            f"(nearest {clk_freq / divisor:.0f})"
        )
    return divisor


class UARTRx(wiring.Component):
    """8N1 receiver.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (>= 4).

    Attributes
    ----------
    rx : In(1)
        Serial input (idle high).
    data : Out(stream.Signature(8))
        Received bytes; ``valid`` for one cycle per byte (``ready`` is ignored).
    frame_error : Out(1)
        Pulses when a byte ends with a low stop bit (the byte is dropped).
    overrun : Out(1)
        Pulses when a byte is lost because the previous one was not taken.
    """

    def __init__(self, divisor: int) -> None:
        if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 4:
            self._MustUse__silence = True  # never elaborated
            raise EslError(f"divisor must be an integer >= 4, got {divisor!r}")
        self.divisor = divisor
        super().__init__(
            {"rx": In(1, init=1), "data": Out(stream.Signature(8)), "frame_error": Out(1), "overrun": Out(1)}
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        sync1 = Signal(init=1)
        sync2 = Signal(init=1)
        m.d.sync += [sync1.eq(self.rx), sync2.eq(sync1)]
        timer = Signal(range(self.divisor + 1))
        bit = Signal(range(9))
        shift = Signal(8)
        m.d.sync += [self.frame_error.eq(0), self.overrun.eq(0)]
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += self.data.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"), m.If(~sync2):
                m.d.sync += timer.eq(self.divisor // 2 - 1)
                m.next = "START"
            with m.State("START"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(sync2):
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [timer.eq(self.divisor - 1), bit.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [
                        shift.eq(sync2 << 7 | shift >> 1),
                        timer.eq(self.divisor - 1),
                        bit.eq(bit + 1),
                    ]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(sync2):
                        m.d.sync += [self.data.payload.eq(shift), self.data.valid.eq(1)]
                        with m.If(self.data.valid & ~self.data.ready):
                            m.d.sync += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += self.frame_error.eq(1)
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """8N1 transmitter.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (>= 4).

    Attributes
    ----------
    data : In(stream.Signature(8))
        Bytes to send; one is taken (``ready``) when the line is idle.
    tx : Out(1)
        Serial output (idle high).
    """

    def __init__(self, divisor: int) -> None:
        if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 4:
            self._MustUse__silence = True  # never elaborated
            raise EslError(f"divisor must be an integer >= 4, got {divisor!r}")
        self.divisor = divisor
        super().__init__({"data": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        timer = Signal(range(self.divisor))
        count = Signal(range(11))
        shift = Signal(9)
        m.d.comb += self.data.ready.eq(count == 0)
        with m.If(count == 0), m.If(self.data.valid):
            m.d.sync += [
                self.tx.eq(0),
                shift.eq(1 << 8 | self.data.payload),
                count.eq(10),
                timer.eq(self.divisor - 1),
            ]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += count.eq(count - 1)
            with m.If(count != 1):
                m.d.sync += [self.tx.eq(shift[0]), shift.eq(shift >> 1), timer.eq(self.divisor - 1)]
        return m
