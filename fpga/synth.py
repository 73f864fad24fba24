"""Synthesis and place-and-route of the generated core, with a resource, timing and latency report.

:func:`synthesize` builds a plan as planned, or for a model the first configuration that fits among
the candidates of :mod:`esl_hw.fpga.autofit` (options left out chosen for the target; those the
block-memory estimate rules out dropped before any tool runs). For each it runs, in ``out_dir``:

1. Amaranth: the core (:class:`esl_hw.rtl_gen.SNNCore`) inside :class:`~esl_hw.fpga.shim.SynthShim`
   to ``top.v``;
2. Yosys: ``proc; flatten; memory -nomap`` to list the memories (``memories.txt``), then
   ``synth_ecp5`` / ``synth_ice40`` to ``netlist.json``;
3. the memory check: each memory the plan places in block RAM (row pointers, synapses, potentials
   and currents, :attr:`esl_hw.rtl_gen.memories.CoreMemory.placement`) must come out as block
   RAM (``DP16KD``, ``SB_RAM40_4K``) or SPRAM cells, never LUT RAM or flip-flops;
4. on a family counted in logic cells (the iCE40) nextpnr ``--pack-only``: the packed cells (a
   candidate above :data:`~esl_hw.fpga.autofit.PLACE_MARGIN` of them gives way to the next);
   then nextpnr with ``--report report-pnr.json``: utilisation and post-route Fmax;
5. the latency per inference: cycles (from co-simulation, or given) over the achieved Fmax.

Everything about the core comes from its plan (:func:`esl_hw.rtl_gen.plan.plan_model`: the
memory list names the memories the check looks for), everything about the device from its
:class:`~esl_hw.fpga.targets.Family` (cells, tools, whether small memories need flip-flops);
:mod:`esl_hw.fpga.netlist` reads what the tools made of the core. It writes ``report.json`` and
``report.md`` and returns a :class:`SynthReport`. A design that does not fit raises
:class:`DoesNotFit`, a missed clock raises :class:`TimingFailure` (unless
``allow_timing_failure``); both are :class:`EslError` raised after the report is written.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

from esl_hw import progress
from esl_hw.artifact import Model
from esl_hw.errors import EslError
from esl_hw.fpga import autofit, fit
from esl_hw.fpga.autofit import choose_synapse_memory
from esl_hw.fpga.fit import DoesNotFit
from esl_hw.fpga.netlist import (
    classify_memories,
    count_cells,
    critical_path,
    fmax_of,
    netlist_cells,
    netlist_memories,
    overflows,
    routed_utilisation,
    utilisation,
)
from esl_hw.fpga.report import write_reports
from esl_hw.fpga.shim import SHIM_TOP, SynthShim, core_port_bits
from esl_hw.fpga.targets import Target, get_target
from esl_hw.fpga.tools import first_error, run_tool, run_yosys
from esl_hw.rtl_gen.plan import CorePlan, HardwareConfig, as_plan, plan_model


class TimingFailure(EslError):
    """Place-and-route did not reach the requested clock frequency."""


@dataclass
class SynthReport:
    """Everything :func:`synthesize` measured (also written as ``report.json``)."""

    target: str
    device: str
    model: dict
    lanes: int
    rewiring: bool
    synapse_memory: str
    lane_fifo_depth: int
    freq_mhz: float
    fmax_mhz: float | None
    timing_met: bool | None
    utilisation: dict[str, dict]
    memories: list[dict]
    memories_in_block_ram: bool
    overflow: list[dict]
    fit_advice: dict
    cycles_per_inference: float | None
    cycles_source: str
    latency_us: float | None
    critical_path: dict | None
    shim: dict
    seconds: dict[str, float] = field(default_factory=dict)
    capacity_source: str = ""
    out_dir: str = ""
    fifo_depth: int = 16
    spike_fifo_depth: int | None = None
    settings: dict = field(default_factory=dict)
    streaming: bool = True

    @property
    def fits(self) -> bool:
        return not self.overflow

    def to_dict(self) -> dict:
        return asdict(self)


def _check_freq(freq_mhz: float | None) -> None:
    if freq_mhz is not None and (isinstance(freq_mhz, bool) or not isinstance(freq_mhz, (int, float))):
        raise EslError(f"freq_mhz must be a number of MHz, got {freq_mhz!r}")
    if freq_mhz is not None and not 1 <= freq_mhz <= 1000:
        raise EslError(f"frequency must be 1..1000 MHz, got {freq_mhz}")


#: A memory of the core to be mapped to SPRAM, its declaration and its initial contents in the
#: Verilog written by Amaranth (a ``(* ram_style = "huge" *)`` attribute, then an ``initial`` block
#: that sets every word).
_HUGE_MEMORY_INIT = re.compile(
    r'(\(\* ram_style = "huge" \*\)\n\s*reg \[[^\]]*\] (\S+) \[[^\]]*\];\n)\s*initial begin\n'
    r"(?:\s*\2\[\d+\] = [^\n]*\n)*\s*end\n"
)


def drop_host_loaded_init(verilog_text: str) -> tuple[str, int]:
    """``verilog_text`` without the initial contents of its SPRAM memories (``ram_style =
    "huge"``), and how many it dropped: SPRAM cannot be initialised by the bitstream, so Yosys
    maps such a memory only without them, and the host writes its words before the first
    inference (the simulated core starts with them loaded)."""
    return _HUGE_MEMORY_INIT.subn(r"\1", verilog_text)


def write_top(plan: CorePlan, folder: Path) -> tuple[Path, dict]:
    """Write ``top.v`` (the core of ``plan`` in its shim) and return its path and the shim's port
    figures."""
    from amaranth.back import verilog

    config = plan.config
    shim = SynthShim(
        plan, plan.lanes, config.rewiring, config.synapse_memory, config.lane_fifo_depth, config.streaming
    )
    inputs, outputs = core_port_bits(shim.core)
    path = folder / "top.v"
    text, _ = drop_host_loaded_init(verilog.convert(shim, name=SHIM_TOP, emit_src=False))
    path.write_text(text)
    figures = {"core_input_bits": inputs, "core_output_bits": outputs, "rewiring": shim.core.rewiring}
    return path, {**figures, "ffs": inputs + 1, "luts_approx": -(-outputs // 3)}


def _parse_memories(text: str) -> list[dict]:
    """Memories from a Yosys ``dump`` of ``$mem_v2`` cells: name, size and width."""
    memories, current = [], None
    for line in text.splitlines():
        line = line.strip()
        found = re.match(r"cell \$mem_v2 (\S+)", line)
        if found:
            current = {"name": found.group(1).lstrip("\\"), "depth": 0, "width": 0}
            memories.append(current)
        elif current is not None and line.startswith("parameter \\SIZE "):
            current["depth"] = int(line.split()[-1])
        elif current is not None and line.startswith("parameter \\WIDTH "):
            current["width"] = int(line.split()[-1])
        elif line == "end":
            current = None
    return memories


def _yosys(folder: Path, target: Target, top_v: Path, plan: CorePlan) -> tuple[list[dict], float]:
    script = folder / "synth.ys"
    family = target.family
    # A family without LUT RAM (the iCE40) would give every small memory (FIFOs, accumulators) a
    # block RAM of its own, not flip-flops as the block estimate of esl_hw.fpga.fit assumes: ask
    # for flip-flops for memories of at most fit.SMALL_DEPTH words, except those the plan places
    # in block RAM (they keep their block RAM however small).
    exempt = "".join(
        f" n:{name} %d" for name, memory in netlist_memories(plan).items() if memory.placement == "block"
    )
    small = f'setattr -set ram_style "logic" t:$mem_v2 r:SIZE<={fit.SMALL_DEPTH} %i{exempt}'
    # A family with LUT RAM (the ECP5) gets LUT RAM for every memory of at most fit.SMALL_DEPTH words,
    # block-placed ones included (a DP16KD would hold 32x more than they need; a read stays registered):
    # with many lanes the per-lane potentials, currents and FIFOs are that shallow, and in block RAM
    # they would outnumber the device's EBR (784-800-10 at 32 lanes: over 300), as the block estimate
    # of esl_hw.fpga.fit already assumes. Only memories the design writes: a ROM is left to Yosys.
    shallow = f'setattr -set ram_style "distributed" t:$mem_v2 r:SIZE<={fit.SMALL_DEPTH} %i r:WR_PORTS>0 %i'
    synth = " ".join([family.synth_command, "-top", SHIM_TOP, *family.synth_options, "-json", "netlist.json"])
    script.write_text(
        "\n".join(
            [
                f"read_verilog {top_v.name}",
                f"hierarchy -top {SHIM_TOP}",
                "proc; flatten; opt_clean; memory -nomap",
                shallow if family.lut_ram else small,
                "tee -q -o memories.txt dump t:$mem_v2",
                synth,
                "tee -q -o stat.txt stat",
            ]
        )
        + "\n"
    )
    run = run_yosys(["-s", script.name], folder)  # the complete log in yosys.log
    return _parse_memories((folder / "memories.txt").read_text()), run.seconds


def place_and_route(
    folder: Path, target: Target, freq: float, netlist: str = "netlist.json", constraints: str | None = None
) -> tuple[dict | None, float, str | None]:
    """Run nextpnr on ``folder/netlist``; return ``(report or None, seconds, first error or None)``.

    Without ``constraints`` (an ``.lpf`` / ``.pcf`` file) the I/O are placed freely. The routed
    design is written to the family's file (:attr:`Family.routed`: ``design.config`` on the
    ECP5, ``design.asc`` on the iCE40).
    """
    args = [*target.nextpnr_args, "--json", netlist, "--freq", str(freq)]
    args += ["--report", "report-pnr.json", "--timing-allow-fail", "--seed", "1"]
    args += target.family.nextpnr_files(constraints)
    log = folder / "nextpnr.log"
    status, run = run_tool(target.family.nextpnr, args, folder, log, check=False)
    if status != 0:
        return None, run.seconds, first_error(log) or f"nextpnr exited with status {status}"
    return json.loads((folder / "report-pnr.json").read_text()), run.seconds, None


def pack_cells(folder: Path, target: Target, netlist: str = "netlist.json") -> tuple[dict | None, float]:
    """nextpnr's packed cell counts of ``folder/netlist`` (``--pack-only``: no placement), or None
    when packing fails (place-and-route then reports why); and the seconds it took."""
    family = target.family
    args = [*target.nextpnr_args, "--json", netlist, "--pack-only", "--report", "report-pack.json"]
    args.append(f"--{family.constraints}-allow-unconstrained")
    status, run = run_tool(family.nextpnr, args, folder, folder / "nextpnr-pack.log", check=False)
    if status != 0:
        return None, run.seconds
    return json.loads((folder / "report-pack.json").read_text()), run.seconds


def synthesize(
    model: CorePlan | Model,
    target: str,
    out_dir: str | Path,
    freq_mhz: float | None = None,
    lanes: int | None = None,
    allow_timing_failure: bool = False,
    cycles_per_inference: float | None = None,
    cycles_source: str = "given",
    rewiring: bool | None = None,
    synapse_memory: str = "auto",
    lane_fifo_depth: int | None = None,
    report_dir: str | Path | None = None,
    fifo_depth: int | None = None,
    spike_fifo_depth: int | None = None,
    streaming: bool | None = None,
) -> SynthReport:
    """Synthesise and place-and-route the core of ``model`` for ``target``; see the module docstring.

    Given a model, the options left unset are chosen (:mod:`esl_hw.fpga.autofit`): candidate
    configurations in order of preference, those the block-memory estimate rules out dropped
    before any tool runs, then each synthesised until one fits and places (on the iCE40: FIFOs
    of 4 words, the rewiring unit in before out, the spike-mask FIFO in block RAM before
    flip-flops, streaming on before off, synapses in SPRAM where block RAM is too small; a
    candidate without streaming whose twin with streaming took too many logic cells for it to fit
    is passed over without synthesis, :func:`esl_hw.fpga.autofit.without_streaming_may_fit`).
    ``report.settings`` says what was chosen and why the others were passed over, and
    ``streaming_dropped`` when streaming was turned off to fit.

    Parameters
    ----------
    model : CorePlan or Model
        The core's plan (:func:`esl_hw.rtl_gen.plan.plan_model`; built as it is, the options must
        then be unset or the plan's own), or the artifact, planned with those options.
    target : str
        A name in :data:`esl_hw.fpga.targets.TARGETS` (``ecp5-85k``, ``ecp5-25k``, ``ice40-up5k``).
    out_dir : path
        Folder for the build and the reports (created).
    freq_mhz : float or None
        Clock constraint (default: the target's).
    lanes : int or None
        Lanes of the core (default: the model's own; on the iCE40 then 1 if that does not fit).
    allow_timing_failure : bool
        Return normally when the achieved Fmax is below ``freq_mhz``.
    cycles_per_inference : float or None
        Cycles of one inference (e.g. the mean from :func:`esl_hw.sim.run_cosim` of the same
        configuration; :func:`with_latency` adds them afterwards); the latency is left out
        without it.
    cycles_source : str
        Where ``cycles_per_inference`` comes from, for the report.
    rewiring : bool or None
        Include the on-chip rewiring unit (None: whenever the weights allow it and, on the iCE40,
        the core fits with it).
    synapse_memory : str
        ``auto`` (default: block RAM where it fits, else the iCE40's SPRAM), ``block`` or
        ``spram`` (synapses in SPRAM, loaded by the host).
    lane_fifo_depth, fifo_depth, spike_fifo_depth : int or None
        Depths of each lane's event FIFO, of the spike FIFOs between layers and of each LIF
        layer's spike-mask FIFO (``HardwareConfig``'s options; None: chosen).
    streaming : bool or None
        Streamed inferences (``HardwareConfig``'s option; None: on, unless on the iCE40 the core
        fits only without).
    report_dir : path or None
        The folder the reports name as theirs (default ``out_dir``; a command that builds in a
        staging folder names its ``--out``).

    Raises
    ------
    EslError
        An unknown target or bad option; :class:`DoesNotFit` (before any tool when the
        block-memory estimate already rules out every candidate); :class:`TimingFailure`; a tool
        that is missing or fails for another reason.
    """
    spec = get_target(target)
    _check_freq(freq_mhz)
    options = dict(lanes=lanes, rewiring=rewiring, lane_fifo_depth=lane_fifo_depth)
    options.update(fifo_depth=fifo_depth, spike_fifo_depth=spike_fifo_depth, streaming=streaming)
    plans, settings = _candidate_plans(model, spec, synapse_memory, options)
    freq = float(freq_mhz if freq_mhz is not None else spec.default_freq_mhz)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tried: list[dict] = []
    skip, skip_reason = None, ""  # a configuration without streaming that cannot fit (its twin's logic)
    for index, make_plan in enumerate(plans):
        plan = make_plan()
        last = index == len(plans) - 1
        if plan.config == skip and not last:
            tried.append({"settings": autofit.describe(plan.config, plan.rewiring), "reason": skip_reason})
            progress.note(f"synth: passed over {tried[-1]['settings']} ({skip_reason})")
            continue
        if len(plans) > 1:
            progress.note(f"synth: trying {autofit.describe(plan.config, plan.rewiring)}")
        report = _build(plan, spec, folder, freq, may_pass=not last)
        if report.fits or last:
            break
        reason = _overflow_text(report.overflow)
        tried.append({"settings": autofit.describe(plan.config, plan.rewiring), "reason": reason})
        progress.note(f"synth: passed over ({reason})")
        if spec.family.logic_cells:  # a twin without streaming that cannot fit is not synthesised
            cells = report.utilisation["luts"]["available"]
            skip, skip_reason = autofit.hopeless_twin(
                plan.config, report.overflow, cells, fit.streaming_logic_cells(plan)
            )
    settings.update(chosen=autofit.describe(plan.config, plan.rewiring), tried=tried)
    if settings.get("auto") and streaming is None:
        settings["streaming_dropped"] = not plan.config.streaming
    report = replace(report, settings=settings, out_dir=str(folder if report_dir is None else report_dir))
    return with_latency(report, folder, cycles_per_inference, cycles_source, allow_timing_failure)


def with_latency(
    report: SynthReport,
    folder: str | Path,
    cycles_per_inference: float | None,
    cycles_source: str = "given",
    allow_timing_failure: bool = False,
) -> SynthReport:
    """``report`` with the cycles per inference and the latency at its Fmax, its ``report.json``
    and ``report.md`` (re)written into ``folder``; raises :class:`DoesNotFit` or
    :class:`TimingFailure` as :func:`synthesize` does."""
    latency = None
    if cycles_per_inference is not None and report.fmax_mhz:
        latency = round(cycles_per_inference / report.fmax_mhz, 3)
    source = cycles_source if cycles_per_inference is not None else "none"
    report = replace(
        report, cycles_per_inference=cycles_per_inference, cycles_source=source, latency_us=latency
    )
    write_reports(report.to_dict(), Path(folder))
    _raise_for(report, allow_timing_failure)
    return report


def hardware_config(report: SynthReport | dict) -> HardwareConfig:
    """The :class:`HardwareConfig` the core of ``report`` (or of its ``report.json``) was built with,
    to co-simulate the same core."""
    values = report if isinstance(report, dict) else report.to_dict()
    names = ("lanes", "fifo_depth", "lane_fifo_depth", "spike_fifo_depth", "synapse_memory", "rewiring")
    # a report from before the option: its core took one inference at a time
    return HardwareConfig(**{name: values[name] for name in names}, streaming=values.get("streaming", False))


def _build(plan: CorePlan, spec: Target, folder: Path, freq: float, may_pass: bool = False) -> SynthReport:
    """Synthesise, pack, place and route the core of ``plan`` in ``folder``; its report without
    cycles. With ``may_pass`` (another candidate remains) a core above
    :data:`~esl_hw.fpga.autofit.PLACE_MARGIN` of the logic cells is not placed."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    with progress.step("amaranth: Verilog of the core"):
        top_v, shim = write_top(plan, folder)
    seconds["amaranth"] = round(time.perf_counter() - started, 2)
    memories, seconds["yosys"] = _yosys(folder, spec, top_v, plan)
    cells = netlist_cells(folder / "netlist.json", SHIM_TOP)
    memories = classify_memories(memories, cells, spec.family, plan)
    table = utilisation(count_cells(cells, spec.family), spec)
    if spec.family.logic_cells and not overflows(table):
        packed, seconds["pack"] = pack_cells(folder, spec)
        table = routed_utilisation(packed, table, spec) if packed else table
    over = overflows(table)
    if not over and may_pass:
        over = _crowded(table)
    pnr, fmax, path = None, None, None
    if not over:
        pnr, seconds["nextpnr"], error = place_and_route(folder, spec, freq)
        if pnr is None:
            over = [{"resource": "place-and-route", "used": None, "available": None, "excess": None}]
            over[0]["error"] = error
    if pnr is not None:
        table, fmax, path = routed_utilisation(pnr, table, spec), fmax_of(pnr), critical_path(pnr)
    config = plan.config
    return SynthReport(
        target=spec.name,
        device=spec.device,
        model=_model_summary(plan.model),
        lanes=plan.lanes,
        rewiring=bool(shim["rewiring"]),
        synapse_memory=config.synapse_memory,
        lane_fifo_depth=config.lane_fifo_depth,
        freq_mhz=freq,
        fmax_mhz=fmax,
        timing_met=None if fmax is None else fmax >= freq,
        utilisation=table,
        memories=memories,
        memories_in_block_ram=all(memory["ok"] for memory in memories),
        overflow=over,
        fit_advice=fit.fit_advice(plan, spec),
        cycles_per_inference=None,
        cycles_source="none",
        latency_us=None,
        critical_path=path,
        shim=shim,
        seconds=seconds,
        capacity_source=spec.source,
        fifo_depth=config.fifo_depth,
        spike_fifo_depth=config.spike_fifo_depth,
        streaming=config.streaming,
    )


def _crowded(table: dict[str, dict]) -> list[dict]:
    """An overflow row when the logic takes more than :data:`~esl_hw.fpga.autofit.PLACE_MARGIN`
    of the device's (the candidate is passed over while another remains), else none."""
    row = table["luts"]
    limit = int(row["available"] * autofit.PLACE_MARGIN)
    if row["used"] <= limit:
        return []
    margin = f"{autofit.PLACE_MARGIN:.0%} placement margin"
    return [{"resource": "luts", "used": row["used"], "available": limit, "excess": row["used"] - limit,
             "margin": margin}]  # fmt: skip


def _overflow_text(overflow: list[dict]) -> str:
    """The overflow rows of a report in words."""
    parts = []
    for row in overflow:
        if row.get("error"):
            parts.append(f"place-and-route failed: {row['error']}")
        elif row.get("margin"):
            limit = f"the {row['margin']} ({row['available']})"
            parts.append(f"{row['resource']} needs {row['used']}, above {limit}")
        else:
            parts.append(f"{row['resource']} needs {row['used']} of {row['available']} (+{row['excess']})")
    return "; ".join(parts)


def _candidate_plans(
    model: CorePlan | Model, target: Target, synapse_memory: str, options: dict
) -> tuple[list, dict]:
    """The plans :func:`synthesize` tries, in order (each a callable: planning takes time), and
    the settings record: ``model`` itself when it is a plan (the options must agree with it),
    else the candidates of :func:`esl_hw.fpga.autofit.fitting_candidates`; every option checked
    before any file is written, and :class:`DoesNotFit` when the estimate rules out every one."""
    if isinstance(model, CorePlan):
        choose_synapse_memory(model, target, requested=synapse_memory)  # a known choice?
        given = None if synapse_memory == "auto" else synapse_memory
        plan = as_plan(model, synapse_memory=given, **options)
        choose_synapse_memory(plan, target, requested=plan.config.synapse_memory)  # SPRAM on the device?
        return [lambda: plan], {"auto": False, "dropped": []}
    fitting, dropped = autofit.fitting_candidates(model, target, synapse_memory, **options)
    if not fitting:
        raise DoesNotFit(autofit.refusal(model, target, dropped[-1]))
    plans = [partial(plan_model, model, candidate.config) for candidate in fitting]
    estimate = "block-memory estimate {} EBR + {} SPRAM"
    record = [
        {"settings": autofit.describe(c.config, c.rewiring), "reason": estimate.format(c.bram, c.spram)}
        for c in dropped
    ]
    return plans, {"auto": True, "dropped": record}


def logic_advice(report: SynthReport) -> str:
    """What frees logic cells on a device without LUT RAM (the iCE40) whose logic overflows or does
    not place, else ``""``."""
    logic = any(row["resource"] in ("luts", "ffs", "place-and-route") for row in report.overflow)
    family = get_target(report.target).family
    if not logic or family.lut_ram:
        return ""
    hints = []
    small = autofit.SMALL_FIFO_DEPTH
    if report.lane_fifo_depth > small:
        hints.append(f"--lane-fifo-depth {small} (small memories are flip-flops on the {family.label})")
    if report.fifo_depth > small:
        hints.append(f"--fifo-depth {small}")
    if report.streaming:
        cells = fit.streaming_logic_cells(len(report.model["sizes"]) - 2)
        hints.append(f"--no-streaming (streaming takes about {cells:,} logic cells)")
    if report.rewiring:
        hints.append("--no-rewiring (the rewiring unit takes about 1,100 logic cells)")
    return f" Fewer logic cells: {' and '.join(hints)}." if hints else ""


def _raise_for(report: SynthReport, allow_timing_failure: bool = False) -> None:
    where = f"(report: {report.out_dir}/report.md)"
    if report.overflow:
        advice = fit.advice_text(report.fit_advice) + logic_advice(report)
        raise DoesNotFit(
            f"model does not fit {report.device}: {_overflow_text(report.overflow)}; {advice} {where}"
        )
    if report.timing_met is False and not allow_timing_failure:
        raise TimingFailure(
            f"timing not met on {report.device}: achieved Fmax {report.fmax_mhz} MHz < requested "
            f"{report.freq_mhz} MHz (pass --allow-timing-failure to accept it) {where}"
        )


def _model_summary(model: Model) -> dict:
    sizes = [model.n_inputs] + [layer.n_out for layer in model.layers]
    return {
        "sizes": sizes,
        "synapses": model.synapses,
        "density": round(model.density, 4),
        "w_bits": [layer.w_bits for layer in model.layers],
        "timesteps": model.timesteps,
    }
