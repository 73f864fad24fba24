"""Ports of a component read from its signature, against the Verilog Amaranth emits for it."""

from __future__ import annotations

import re

import pytest
from amaranth import Module, signed
from amaranth.back import verilog
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from esl_hw.rtl_gen.ports import Port, component_ports


class Toy(wiring.Component):
    """Streams in and out, a signed output, a packed array and a nested signature."""

    def __init__(self) -> None:
        pair = wiring.Signature({"a": Out(2), "b": In(3)})
        super().__init__(
            {
                "s": In(stream.Signature(data.StructLayout({"index": 4, "eos": 1}))),
                "t": Out(stream.Signature(6)),
                "x": Out(signed(3)),
                "lanes": Out(data.ArrayLayout(signed(5), 3)),
                "nested": In(pair),
                "y": In(1),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        m.d.sync += [self.x.eq(self.s.payload.index), self.t.payload.eq(self.y)]
        m.d.comb += [self.s.ready.eq(1), self.nested.b.eq(self.nested.a)]
        return m


def emitted_ports(text: str) -> dict[str, tuple[str, int]]:
    found = re.findall(r"^\s*(input|output)\s+(?:signed\s+)?(?:\[(\d+):0\]\s+)?(\w+);", text, re.MULTILINE)
    return {name: (direction, int(high or 0) + 1) for direction, high, name in found}


def test_ports_follow_the_signature() -> None:
    toy = Toy()
    toy._MustUse__silence = True
    ports = component_ports(toy)
    assert [(port.name, port.direction, port.width) for port in ports.values()] == [
        ("s__payload", "input", 5),
        ("s__valid", "input", 1),
        ("s__ready", "output", 1),
        ("t__payload", "output", 6),
        ("t__valid", "output", 1),
        ("t__ready", "input", 1),
        ("x", "output", 3),
        ("lanes", "output", 15),
        ("nested__a", "input", 2),
        ("nested__b", "output", 3),
        ("y", "input", 1),
    ]
    assert ports["s__payload"].shape["eos"].offset == 4 and ports["lanes"].shape.length == 3
    assert ports["y"] == Port("y", "input", 1, 1)


def test_ports_are_those_of_the_emitted_verilog() -> None:
    toy = Toy()
    ports = component_ports(toy)  # read before the conversion elaborates it
    emitted = emitted_ports(verilog.convert(toy, name="toy", emit_src=False))
    assert emitted == {"clk": ("input", 1), "rst": ("input", 1)} | {
        name: (port.direction, port.width) for name, port in ports.items()
    }


def test_only_components_have_ports() -> None:
    with pytest.raises(TypeError, match="component must be an amaranth.lib.wiring.Component, got str"):
        component_ports("snn_core")
