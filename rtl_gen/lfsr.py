"""32-bit Galois LFSR of the rewiring unit: polynomial ``x^32 + x^22 + x^2 + x + 1``.

One step, shifting right with feedback mask ``0x80200003`` (``esl_hw.rewiring.lfsr_step``)::

    s' = (s >> 1) ^ (0x80200003 if s & 1 else 0)

The all-zero state is a fixed point and never a valid seed.
"""

from __future__ import annotations

from amaranth import Module, Mux, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from esl_hw.rewiring import LFSR_TAPS

LFSR_BITS = 32


def lfsr_next(state: Value) -> Value:
    """The state after one step of the Galois LFSR (a 32-bit combinational expression)."""
    return (state >> 1) ^ Mux(state[0], LFSR_TAPS, 0)


class Lfsr(wiring.Component):
    """The LFSR as a register: load a seed, then step on demand.

    Attributes
    ----------
    seed : In(32)
        Loaded into the state while ``load`` is high (``load`` wins over ``step``).
    load : In(1)
        Load ``seed`` at the next clock edge.
    step : In(1)
        Advance one step at the next clock edge.
    state : Out(32)
        The current state.
    following : Out(32)
        The state after one more step, ``lfsr_next(state)`` (combinational): the next draw.
    """

    def __init__(self) -> None:
        super().__init__(
            {
                "seed": In(LFSR_BITS),
                "load": In(1),
                "step": In(1),
                "state": Out(LFSR_BITS),
                "following": Out(LFSR_BITS),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        m.d.comb += self.following.eq(lfsr_next(self.state))
        with m.If(self.load):
            m.d.sync += self.state.eq(self.seed)
        with m.Elif(self.step):
            m.d.sync += self.state.eq(self.following)
        return m
