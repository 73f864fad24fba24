"""Board tops with the UART host link, and their bitstreams, for ULX3S (ECP5) and iCEBreaker (iCE40 UP5K).

:class:`BoardTop` puts :class:`~esl_hw.fpga.hostlink.HostLink` on a PLL clock
(:mod:`esl_hw.fpga.pll`: EHXPLLL from the ULX3S's 25 MHz, SB_PLL40_PAD from the iCEBreaker's
12 MHz; reset until the PLL locks) and the board's FTDI UART (``uart`` resource 0 of the
amaranth-boards platform), with LED 0 lit while an inference runs and LED 1 while an error frame
goes out. The whole link runs in the PLL's domain: its UART divisor is computed from the PLL's
actual frequency, and INFO reports that frequency so the host turns cycles into time.

:func:`build_bitstream` chooses the clock (a given frequency, else the post-route Fmax of the
core's own synthesis, :func:`board_clock_request`), the PLL setting closest to it from below, and
lets the platform write its Yosys script and pin and clock constraints (``platform.prepare``); it
runs the yowasp tools on them: Yosys, nextpnr at the PLL frequency (with a JSON report), then
``ecppack`` (``.bit``) or ``icepack`` (``.bin``). A design that does not fit is reported by
resource, before nextpnr runs; a top that misses the PLL clock raises :class:`TimingFailure`
after its report and bitstream are written.
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
from esl_hw.fpga.hostlink import DEFAULT_EVENT_DEPTH, HostLink, link_plan
from esl_hw.fpga.netlist import (
    count_cells,
    fmax_of,
    netlist_cells,
    overflows,
    routed_utilisation,
    utilisation,
)
from esl_hw.fpga.pll import PllSetting, add_pll_domain, as_mhz, pll_for
from esl_hw.fpga.synth import DoesNotFit, TimingFailure, place_and_route, synthesize
from esl_hw.fpga.targets import Target, get_target
from esl_hw.fpga.tools import run_tool, run_yosys
from esl_hw.fpga.uart import uart_divisor
from esl_hw.rtl_gen.plan import CorePlan


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

#: Inter-byte timeout of the board link in seconds, whatever its clock (docs/protocol.md).
LINK_TIMEOUT_S = 0.2


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


def board_link(plan: CorePlan, clock_hz: int, baud: int, event_depth: int = DEFAULT_EVENT_DEPTH) -> HostLink:
    """The host link of a board top running at ``clock_hz``: UART divisor
    ``round(clock_hz / baud)`` (:func:`~esl_hw.fpga.uart.uart_divisor`, within 2% of ``baud``),
    an inter-byte timeout of :data:`LINK_TIMEOUT_S` and ``clock_hz`` in its INFO reply."""
    divisor = uart_divisor(clock_hz, baud)
    timeout = max(16 * divisor, round(LINK_TIMEOUT_S * clock_hz))
    return HostLink(plan, divisor, event_depth=event_depth, timeout=timeout, clock_hz=clock_hz)


class BoardTop(Elaboratable):
    """The host link of ``model`` on a board's PLL clock, UART and LEDs.

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
    pll : PllSetting or None
        The PLL making the clock from the board's oscillator (:func:`esl_hw.fpga.pll.pll_for`);
        ``None`` runs everything on the oscillator itself, as the platform's default domain.
    """

    def __init__(
        self,
        model: CorePlan | Model,
        baud: int = DEFAULT_BAUD,
        lanes: int | None = None,
        event_depth: int = DEFAULT_EVENT_DEPTH,
        rewiring: bool | None = None,
        pll: PllSetting | None = None,
    ):
        self.plan = link_plan(model, lanes, rewiring)
        self.model = self.plan.model
        self.baud = baud
        self.lanes = self.plan.lanes
        self.event_depth = event_depth
        self.rewiring = self.plan.rewiring
        self.pll = pll

    def elaborate(self, platform) -> Module:
        clock_hz = self.pll.f_out_hz if self.pll is not None else round(platform.default_clk_frequency)
        link = board_link(self.plan, clock_hz, self.baud, self.event_depth)  # a bad baud raises here
        m = Module()
        if self.pll is not None:
            add_pll_domain(m, platform, self.pll)
        m.submodules.link = link
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buffer = rx_buffer = io.Buffer("i", uart.rx)
        m.submodules.tx_buffer = tx_buffer = io.Buffer("o", uart.tx)
        m.d.comb += [link.rx.eq(rx_buffer.i), tx_buffer.o.eq(link.tx)]
        leds = []
        for index in range(2):
            leds.append(io.Buffer("o", platform.request("led", index, dir="-")))
            m.submodules[f"led{index}"] = leds[-1]
        m.d.comb += [leds[0].o.eq(link.running), leds[1].o.eq(self._stretch(m, link.error, clock_hz))]
        return m

    @staticmethod
    def _stretch(m: Module, pulse: Signal, clock_hz: int) -> Signal:
        """``pulse`` stretched to 0.1-0.2 s: 255 ticks of ``2**k`` cycles (two short counters,
        not one of 22 bits, whose carry chain the iCE40 placer split across a full die: 63 ns)."""
        prescaler = Signal(max(1, (clock_hz // 10 // 255).bit_length()))
        stretch = Signal(8)
        m.d.sync += prescaler.eq(prescaler + 1)
        with m.If(pulse):
            m.d.sync += stretch.eq(255)
        with m.Elif((prescaler == 0) & (stretch != 0)):
            m.d.sync += stretch.eq(stretch - 1)
        return stretch != 0


def core_report_fmax(path: str | Path, plan: CorePlan, target: Target) -> float:
    """The post-route Fmax of the core's synthesis report ``path`` (``report.json`` or its
    folder), checked to be of this core (target, lanes, rewiring, layer sizes, synapses)."""
    file = Path(path)
    file = file / "report.json" if file.is_dir() else file
    try:
        report = json.loads(file.read_text())
    except (OSError, ValueError) as error:
        raise EslError(f"cannot read the core's synthesis report {str(file)!r}: {error}") from None
    model = plan.model
    sizes = [model.n_inputs] + [layer.n_out for layer in model.layers]
    expected = {"target": target.name, "lanes": plan.lanes, "rewiring": plan.rewiring, "sizes": sizes,
                "synapses": model.synapses}  # fmt: skip
    found = {**{key: report.get(key) for key in ("target", "lanes", "rewiring")}, **report.get("model", {})}
    wrong = [f"{key} {found.get(key)!r} (this top: {value!r})" for key, value in expected.items()
             if found.get(key) != value]  # fmt: skip
    if wrong:
        raise EslError(f"synthesis report {str(file)!r} is of another core: {'; '.join(wrong)}")
    if not report.get("fmax_mhz"):
        raise EslError(f"synthesis report {str(file)!r} has no post-route Fmax")
    return float(report["fmax_mhz"])


def board_clock_request(
    plan: CorePlan, target: Target, folder: Path, freq_mhz: float | None, core_report: str | Path | None
) -> tuple[float, str]:
    """The clock a board top is built for, in MHz, and where it comes from: ``freq_mhz`` when
    given, else the Fmax of the core's synthesis report ``core_report``, else the Fmax of a
    synthesis of the core run now in ``folder/core`` (:func:`esl_hw.fpga.synth.synthesize`)."""
    if freq_mhz is not None:
        return float(as_mhz(freq_mhz, "the board's clock")), "given"
    if core_report is not None:
        return core_report_fmax(core_report, plan, target), f"core synthesis report {core_report}"
    report = synthesize(plan, target.name, folder / "core", allow_timing_failure=True)
    if report.fmax_mhz is None:
        raise EslError(f"the synthesis of the core for {target.device} gave no Fmax (report: {folder}/core)")
    return report.fmax_mhz, "core synthesised in core/ (post-route Fmax)"


def build_bitstream(
    model: CorePlan | Model,
    board: str,
    out_dir: str | Path,
    baud: int = DEFAULT_BAUD,
    lanes: int | None = None,
    rewiring: bool | None = None,
    report_dir: str | Path | None = None,
    freq_mhz: float | None = None,
    core_report: str | Path | None = None,
    allow_timing_failure: bool = False,
) -> dict:
    """Build the bitstream of :class:`BoardTop` for ``board`` in ``out_dir``; return a report dict.

    ``model`` is the core's plan, or the artifact on ``lanes`` lanes (by default its own) with
    ``rewiring``. The top's clock is the PLL output closest to, and not above, ``freq_mhz``
    (default: the core's post-route Fmax from ``core_report``, a synthesis ``report.json`` or its
    folder, else from a synthesis of the core run in ``out_dir/core``); nextpnr is constrained at
    that PLL frequency. ``report_dir`` is the folder the report names as the bitstream's (default
    ``out_dir``).

    The report (also written to ``out_dir/board.json``) has ``board``, ``device``,
    ``oscillator_mhz``, ``requested_mhz``, ``clock_source``, ``clock_mhz`` (the PLL's actual
    output), ``pll``, ``baud``, ``rewiring``, ``utilisation``, ``fmax_mhz`` (post-route, whole
    top), ``timing_met``, ``bitstream`` and ``bitstream_bytes``. Raises :class:`DoesNotFit` naming
    the overflowing resource, :class:`TimingFailure` when the top misses the PLL clock (unless
    ``allow_timing_failure``; the bitstream is written all the same), or :class:`EslError` for a
    clock no PLL setting reaches or a tool that fails.
    """
    spec = get_board(board)
    target = get_target(spec.target)
    core_plan = link_plan(model, lanes, rewiring)
    platform = make_platform(spec)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    oscillator_mhz = platform.default_clk_frequency / 1e6
    requested, source = board_clock_request(core_plan, target, folder, freq_mhz, core_report)
    pll = pll_for(target.family.name, oscillator_mhz, requested)
    clock_mhz = round(pll.f_out_hz / 1e6, 6)
    with progress.step(f"amaranth: Verilog of the board top ({pll.primitive} at {clock_mhz:g} MHz)"):
        plan = platform.prepare(BoardTop(core_plan, baud, pll=pll), name="top")
    for name, content in plan.files.items():
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(folder / name, mode) as handle:
            handle.write(content)
    run_yosys(["top.ys"], folder)  # the complete log in yosys.log
    cells = netlist_cells(folder / "top.json", "top")
    table = utilisation(count_cells(cells, target.family), target)
    report: dict = {"board": spec.name, "device": target.device, "oscillator_mhz": oscillator_mhz,
                    "requested_mhz": requested, "clock_source": source, "clock_mhz": clock_mhz,
                    "pll": pll.summary(requested), "baud": baud, "rewiring": core_plan.rewiring}  # fmt: skip
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
        timing_met=fmax is not None and fmax >= round(clock_mhz, 2),
        utilisation=routed_utilisation(pnr, table, target),
        bitstream=str(Path(report_dir or folder) / bitstream.name),
        bitstream_bytes=bitstream.stat().st_size,
    )
    (folder / "board.json").write_text(json.dumps(report, indent=2) + "\n")
    if not report["timing_met"] and not allow_timing_failure:
        raise TimingFailure(
            f"timing not met on {spec.name}: the top reached {fmax} MHz post-route at a {clock_mhz:g} MHz "
            f"PLL clock (rebuild with a lower --freq, e.g. {0.95 * (fmax or 0):.1f}: placement moves Fmax "
            f"by a few MHz; or pass --allow-timing-failure; "
            f"report: {report_dir or folder}/board.json)"
        )
    return report
