"""The top-level ports of a component as Amaranth names them in the Verilog it emits.

:func:`amaranth.back.verilog.convert` gives a :class:`~amaranth.lib.wiring.Component` one port per
port member of its signature, named by the member's path joined with ``__`` (``events__payload``,
a stream's payload flattened with its first field in the low bits), besides ``clk`` and ``rst``
of its clock domain. :func:`component_ports` lists them from the signature, so code that
instantiates the emitted module (the co-simulation harness, :mod:`esl_hw.sim.harness`) follows the
component instead of re-deriving its ports.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Shape
from amaranth.lib import wiring


@dataclass(frozen=True)
class Port:
    """One top-level port of an emitted component.

    Attributes
    ----------
    name : str
        The Verilog port name: the signature path joined with ``__``.
    direction : str
        ``"input"`` or ``"output"``, seen from the component.
    width : int
        Bits.
    shape : object
        The member's shape: a width, a :class:`~amaranth.Shape` or a layout (stream payloads,
        packed arrays), for the offsets of its fields.
    """

    name: str
    direction: str
    width: int
    shape: object


def component_ports(component: wiring.Component) -> dict[str, Port]:
    """The ports of ``component`` (besides ``clk`` and ``rst``) by name, in signature order."""
    if not isinstance(component, wiring.Component):
        raise TypeError(f"component must be an amaranth.lib.wiring.Component, got {type(component).__name__}")
    ports = {}
    for path, member in component.signature.members.flatten():
        if member.is_port:
            name = "__".join(map(str, path))
            direction = "input" if member.flow == wiring.In else "output"
            ports[name] = Port(name, direction, Shape.cast(member.shape).width, member.shape)
    return ports
