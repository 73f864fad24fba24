"""A two-pin wrapper that lets place-and-route run on the bare core.

The core has hundreds of ports (counters, taps, the output stream); a device has far fewer pins,
and a port left unconnected lets synthesis delete the logic behind it. :class:`SynthShim` keeps
every bit of the core alive with two pins:

- every core input (``events.valid``, ``events.payload``, ``outputs.ready``) comes from a shift
  register fed by ``din``, one bit per cycle;
- every core output (the stream handshakes and payloads, ``done``, ``prediction``, taps and
  ``perf_*`` counters) feeds one XOR reduction registered into ``dout``.

Its cost, reported beside the core's figures, is one flip-flop per core input bit, about one LUT4
per three core output bits (the XOR tree) and one flip-flop.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from esl_hw.artifact import Model
from esl_hw.rtl_gen import SNNCore
from esl_hw.rtl_gen.plan import DEFAULT_LANE_FIFO_DEPTH

#: Name of the Verilog top module of the shim.
SHIM_TOP = "esl_synth_top"


def core_port_bits(core: wiring.Component) -> tuple[int, int]:
    """``(input bits, output bits)`` of the core's interface (clock and reset excluded)."""
    inputs = outputs = 0
    for _path, member, value in core.signature.flatten(core):
        if member.flow == wiring.In:
            inputs += len(Value.cast(value))
        else:
            outputs += len(Value.cast(value))
    return inputs, outputs


class SynthShim(wiring.Component):
    """The core of ``model`` behind a serial-in shift register and an XOR-reduced output pin.

    Parameters
    ----------
    model : Model
        The artifact the core is generated from.
    lanes : int
        Lanes of the core (see :class:`esl_hw.rtl_gen.SNNCore`).
    rewiring : bool or None
        Include the rewiring unit (``SNNCore``'s flag; None: when the weights allow it).
    synapse_memory : str
        ``block`` or ``spram`` (``SNNCore``'s option).
    lane_fifo_depth : int
        Depth of each lane's event FIFO (``SNNCore``'s option).
    streaming : bool or None
        Streamed inferences (``SNNCore``'s option; None: the default, on).

    Attributes
    ----------
    din : In(1)
        Serial input: shifted one bit per cycle into the register that drives every core input.
    dout : Out(1)
        Registered XOR of every core output bit.
    core : SNNCore
        The wrapped core.
    """

    def __init__(
        self,
        model: Model,
        lanes: int = 1,
        rewiring: bool | None = None,
        synapse_memory: str = "block",
        lane_fifo_depth: int = DEFAULT_LANE_FIFO_DEPTH,
        streaming: bool | None = None,
    ) -> None:
        self.core = SNNCore(
            model,
            lanes=lanes,
            rewiring=rewiring,
            synapse_memory=synapse_memory,
            lane_fifo_depth=lane_fifo_depth,
            streaming=streaming,
        )
        super().__init__({"din": In(1), "dout": Out(1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.core = core = self.core
        inputs, outputs = [], []
        for _path, member, value in core.signature.flatten(core):
            (inputs if member.flow == wiring.In else outputs).append(Value.cast(value))
        width = sum(len(value) for value in inputs)
        shift = Signal(width)
        m.d.sync += shift.eq(Cat(self.din, shift[:-1]))
        position = 0
        for value in inputs:
            m.d.comb += value.eq(shift[position : position + len(value)])
            position += len(value)
        m.d.sync += self.dout.eq(Cat(*outputs).xor())
        return m
