"""Board tops with the UART host link, and their bitstreams, for ULX3S (ECP5) and iCEBreaker (iCE40 UP5K).

:class:`BoardTop` puts :class:`~esl_hw.fpga.hostlink.HostLink` on a board's default clock (25 MHz
on ULX3S, 12 MHz on iCEBreaker, no PLL) and its FTDI UART (``uart`` resource 0 of the
amaranth-boards platform), with LED 0 lit while an inference runs and LED 1 while an error frame
goes out. :func:`build_bitstream` lets the platform write its Yosys script and pin constraints
(``platform.prepare``) and runs the yowasp tools on them: Yosys, nextpnr (with a JSON report),
then ``ecppack`` (``.bit``) or ``icepack`` (``.bin``). A design that does not fit is reported by
resource, before nextpnr runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from amaranth import Elaboratable, Module, Signal
from amaranth.lib import io

from esl_hw import progress
from esl_hw.artifact import Model
from esl_hw.errors import EslError
from esl_hw.fpga.hostlink import DEFAULT_EVENT_DEPTH, HostLink
from esl_hw.fpga.synth import (
    DoesNotFit,
    count_cells,
    fmax_of,
    netlist_cells,
    overflows,
    place_and_route,
    routed_utilisation,
    utilisation,
)
from esl_hw.fpga.targets import get_target
from esl_hw.fpga.tools import run_tool, run_yosys
from esl_hw.fpga.uart import uart_divisor
from esl_hw.rtl_gen.plan import CorePlan, as_plan


@dataclass(frozen=True)
class Board:
    """A board the flow builds for: its amaranth-boards platform and FPGA target (whose family,
    :class:`~esl_hw.fpga.targets.Family`, gives the tools, the constraint file and the packer).
    A new board of a known device is one entry of :data:`BOARDS`."""

    name: str
    platform: str  # "module:class" in amaranth_boards
    target: str
    bitstream: str  # file extension


BOARDS = {
    "ulx3s-85f": Board("ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5-85k", "bit"),
    "ulx3s-25f": Board("ulx3s-25f", "amaranth_boards.ulx3s:ULX3S_25F_Platform", "ecp5-25k", "bit"),
    "icebreaker": Board("icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40-up5k", "bin"),
}

DEFAULT_BAUD = 115200


def get_board(name: str) -> Board:
    """The board called ``name``; an unknown name raises :class:`EslError` listing the known ones."""
    if name not in BOARDS:
        raise EslError(f"unknown board {name!r} (expected one of {', '.join(BOARDS)})")
    return BOARDS[name]


def make_platform(board: Board):
    """An instance of the board's amaranth-boards platform."""
    import importlib

    module, name = board.platform.split(":")
    try:
        return getattr(importlib.import_module(module), name)()
    except ImportError:
        raise EslError("amaranth-boards is not installed (pip install amaranth-boards)") from None


class BoardTop(Elaboratable):
    """The host link of ``model`` on a board's clock, UART and LEDs.

    Parameters
    ----------
    model : CorePlan or Model
        The core's plan, or the artifact (on ``lanes`` lanes, with ``rewiring``).
    baud : int
        UART baud rate (8N1).
    lanes : int or None
        Lanes of the core (default: the model's own).
    event_depth : int
        Event buffer depth in words.
    rewiring : bool or None
        Include the core's rewiring unit (``None``: whenever the weights allow it; ``False`` leaves
        it out and the link then refuses REWIRE).
    """

    def __init__(
        self,
        model: CorePlan | Model,
        baud: int = DEFAULT_BAUD,
        lanes: int | None = None,
        event_depth: int = DEFAULT_EVENT_DEPTH,
        rewiring: bool | None = None,
    ):
        self.plan = as_plan(model, lanes, rewiring=rewiring)
        self.model = self.plan.model
        self.baud = baud
        self.lanes = self.plan.lanes
        self.event_depth = event_depth
        self.rewiring = self.plan.rewiring

    def elaborate(self, platform) -> Module:
        divisor = uart_divisor(platform.default_clk_frequency, self.baud)
        m = Module()
        m.submodules.link = link = HostLink(self.plan, divisor, event_depth=self.event_depth)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buffer = rx_buffer = io.Buffer("i", uart.rx)
        m.submodules.tx_buffer = tx_buffer = io.Buffer("o", uart.tx)
        m.d.comb += [link.rx.eq(rx_buffer.i), tx_buffer.o.eq(link.tx)]
        leds = []
        for index in range(2):
            leds.append(io.Buffer("o", platform.request("led", index, dir="-")))
            m.submodules[f"led{index}"] = leds[-1]
        limit = int(platform.default_clk_frequency // 10)  # 100 ms
        stretch = Signal(range(limit + 1))
        with m.If(link.error):
            m.d.sync += stretch.eq(limit)
        with m.Elif(stretch != 0):
            m.d.sync += stretch.eq(stretch - 1)
        m.d.comb += [leds[0].o.eq(link.running), leds[1].o.eq(stretch != 0)]
        return m


def build_bitstream(
    model: CorePlan | Model,
    board: str,
    out_dir: str | Path,
    baud: int = DEFAULT_BAUD,
    lanes: int | None = None,
    rewiring: bool | None = None,
    report_dir: str | Path | None = None,
) -> dict:
    """Build the bitstream of :class:`BoardTop` for ``board`` in ``out_dir``; return a report dict.

    ``model`` is the core's plan, or the artifact on ``lanes`` lanes (by default its own) with
    ``rewiring``. ``report_dir`` is the folder the report names as the bitstream's (default
    ``out_dir``).

    The report (also written to ``out_dir/board.json``) has ``board``, ``device``, ``clock_mhz``,
    ``fmax_mhz``, ``timing_met``, ``utilisation`` and ``bitstream`` (its path). Raises
    :class:`DoesNotFit` naming the overflowing resource, or :class:`EslError` if a tool fails.
    """
    spec = get_board(board)
    target = get_target(spec.target)
    core_plan = as_plan(model, lanes, rewiring=rewiring)
    platform = make_platform(spec)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with progress.step("amaranth: Verilog of the board top"):
        plan = platform.prepare(BoardTop(core_plan, baud), name="top")
    for name, content in plan.files.items():
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(folder / name, mode) as handle:
            handle.write(content)
    run_yosys(["top.ys"], folder)  # the complete log in yosys.log
    cells = netlist_cells(folder / "top.json", "top")
    table = utilisation(count_cells(cells, target.family), target)
    clock_mhz = platform.default_clk_frequency / 1e6
    report: dict = {"board": spec.name, "device": target.device, "clock_mhz": clock_mhz, "baud": baud,
                    "rewiring": core_plan.rewiring}  # fmt: skip
    over = overflows(table)
    if over:
        report.update(utilisation=table, overflow=over)
        (folder / "board.json").write_text(json.dumps(report, indent=2) + "\n")
        parts = "; ".join(
            f"{row['resource']} needs {row['used']} of {row['available']} (+{row['excess']})" for row in over
        )
        raise DoesNotFit(f"board top does not fit {target.device} on {spec.name}: {parts}")
    constraints = f"top.{target.family.constraints}"
    pnr, _, error = place_and_route(folder, target, clock_mhz, "top.json", constraints)
    if pnr is None:
        raise EslError(f"place-and-route of the {spec.name} top failed: {error}")
    fmax = fmax_of(pnr)
    bitstream = folder / f"top.{spec.bitstream}"
    tool, args = target.family.pack_args(bitstream.name)
    run_tool(tool, args, folder, folder / "pack.log")
    report.update(
        fmax_mhz=fmax,
        timing_met=fmax is not None and fmax >= clock_mhz,
        utilisation=routed_utilisation(pnr, table, target),
        bitstream=str(Path(report_dir or folder) / bitstream.name),
        bitstream_bytes=bitstream.stat().st_size,
    )
    (folder / "board.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
