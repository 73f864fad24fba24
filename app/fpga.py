"""What ``esl-hw synth``, ``esl-hw bitstream`` and ``esl-hw run`` do; the parser lives in
:mod:`esl_hw.app.cli`.

Each ``run_<command>(args)`` returns the exit status; bad input raises :class:`EslError` (exit 2
in the CLI): an unknown target or board, a design that does not fit, a missed clock without
``--allow-timing-failure``, an absent serial port.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from esl_hw.app.reports import add_provenance, write_report
from esl_hw.app.stages import core_lanes, core_streaming, optional_target
from esl_hw.app.tables import print_table
from esl_hw.artifact import Model
from esl_hw.artifact_io import load_model
from esl_hw.errors import EslError
from esl_hw.outputs import check_writable_target, staged_folder
from esl_hw.rtl_gen.plan import DEFAULT_LANE_FIFO_DEPTH, CorePlan, plan_model

EXIT_OK = 0
EXIT_MISMATCH = 1


def sample_images(
    model: Model, count: int, data: Path | None = None, seed: int = 0
) -> tuple[np.ndarray, str]:
    """``count`` test images for ``model`` and where they come from: the first test images of the
    dataset folder ``data`` (an :class:`EslError` naming both sizes when its images do not have the
    model's input size); without ``data``, the embedded MNIST subset's for a model of 784 inputs,
    else uniform random pixels (seeded by ``seed``)."""
    from esl_hw.datasets import MNIST_INPUTS, check_fits, load_dataset

    if data is not None or model.n_inputs == MNIST_INPUTS:
        dataset = load_dataset(data)
        check_fits(dataset, model.n_inputs)
        return dataset.test.images[:count], f"test images ({dataset.source})"
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, model.n_inputs), dtype=np.uint8), "random images"


def measure_cycles(
    model: Model | CorePlan,
    samples: int,
    simulator: str = "verilator",
    lanes: int = 1,
    data: Path | None = None,
    synapse_memory: str = "block",
    lane_fifo_depth: int = DEFAULT_LANE_FIFO_DEPTH,
) -> dict[str, Any]:
    """Mean cycles and energy per inference from a bit-exact co-simulation of ``samples`` images
    (of the core of a plan as planned, or of the model with its synapses in ``synapse_memory``).

    Returns ``cycles``, ``source`` (a sentence for the report), ``energy_j``, ``mismatches``.
    """
    from esl_hw.sim import run_cosim, sim_report

    options = dict(lanes=lanes, synapse_memory=synapse_memory, lane_fifo_depth=lane_fifo_depth)
    if isinstance(model, CorePlan):
        options, model, plan = {}, model.model, model
    else:
        plan = model
    images, where = sample_images(model, samples, data)
    with tempfile.TemporaryDirectory(prefix="esl-synth-cosim-") as build:
        result = run_cosim(
            plan, images, simulator=simulator, build_dir=build, trace_potentials=False, **options
        )
    labels = np.zeros(len(images), dtype=np.int64)
    report = sim_report(model, result, images, labels)
    return {
        "cycles": round(report["cycles_per_inference"], 1),
        "source": f"{simulator} co-simulation, mean of {result.samples} {where}",
        "energy_j": report["energy_per_inference_j"],
        "mismatches": result.mismatches,
    }


def _synth_provenance(folder: Path, args: argparse.Namespace) -> None:
    """Add provenance to the ``report.json`` synthesis wrote into ``folder`` (if it wrote one) and
    write its ``report.md`` (:func:`esl_hw.fpga.report.markdown`) with the results table under it."""
    import json

    from esl_hw.fpga.report import markdown

    path = folder / "report.json"
    if path.is_file():
        title, _, body = markdown(json.loads(path.read_text())).partition("\n")
        add_provenance(folder, "synth", title.removeprefix("# "), args, body)


def run_synth(args: argparse.Namespace) -> int:
    """``esl-hw synth MODEL --target T [--lanes L] [--freq MHZ] --out DIR``: the options left out
    are chosen for the target (:mod:`esl_hw.fpga.autofit`) and printed; then the cycles of the
    chosen core from co-simulation."""
    from esl_hw.fpga.autofit import fitting_candidates, refusal
    from esl_hw.fpga.synth import DoesNotFit, TimingFailure, hardware_config, synthesize, with_latency
    from esl_hw.fpga.targets import get_target

    state = check_writable_target(args.out, args.force, inputs=[args.model, args.data])
    model = load_model(args.model)
    target = get_target(args.target)
    depths = ("lane_fifo_depth", "fifo_depth", "spike_fifo_depth")
    options = {name: getattr(args, name, None) for name in depths}
    options.update(lanes=args.lanes, rewiring=False if args.no_rewiring else None)
    options["streaming"] = core_streaming(args)
    # Every option checked, and a model the block-memory estimate rules out refused, before any work.
    fitting, dropped = fitting_candidates(model, target, args.synapses, **options)
    if not fitting:
        raise DoesNotFit(f"{args.model}: {refusal(model, target, dropped[-1])}")
    options["synapse_memory"] = args.synapses
    # A design that does not fit or misses its clock still gets its complete report at --out.
    with staged_folder(args.out, state=state, keep_on=(DoesNotFit, TimingFailure)) as staging:
        try:
            report = synthesize(model, target.name, staging, freq_mhz=args.freq, allow_timing_failure=True,
                                report_dir=args.out, **options)  # fmt: skip
            _print_settings(report.settings)
            cycles, source = None, "none"
            if args.samples > 0:
                plan = plan_model(model, hardware_config(report))
                measured = measure_cycles(plan, args.samples, args.simulator, data=args.data)
                if measured["mismatches"]:
                    raise EslError(f"co-simulation mismatches the reference: {measured['source']}")
                cycles, source = measured["cycles"], measured["source"]
            report = with_latency(report, staging, cycles, source, args.allow_timing_failure)
        except DoesNotFit as error:  # after synthesis: the report stays at --out
            raise DoesNotFit(f"{args.model}: {error}") from None
        finally:  # also the report of a design that does not fit or misses its clock
            _synth_provenance(staging, args)
    rows = [(kind, f"{row['used']} / {row['available']}") for kind, row in report.utilisation.items()]
    rows += [
        ("settings", report.settings["chosen"]),
        ("rewiring unit", report.rewiring),
        ("streamed inferences", report.streaming),
        ("synapse memory", report.synapse_memory),
        ("Fmax (MHz)", report.fmax_mhz),
        ("timing met", report.timing_met),
        ("memories in block RAM", report.memories_in_block_ram),
        ("cycles per inference", report.cycles_per_inference),
        ("latency (µs)", report.latency_us),
    ]
    print_table(f"esl-hw synth: {report.device}, report in {args.out}/report.md", rows)
    return EXIT_OK


def _print_settings(settings: dict) -> None:
    """The settings synthesis chose and those it passed over, one line each (stdout)."""
    how = "chosen for the target" if settings.get("auto") else "as planned"
    for entry in settings.get("dropped", []) + settings.get("tried", []):
        print(f"esl-hw synth: passed over {entry['settings']}: {entry['reason']}")
    print(f"esl-hw synth: settings ({how}): {settings['chosen']}")
    if settings.get("streaming_dropped"):
        print("esl-hw synth: streaming dropped to fit (before the rewiring unit): one inference at a time")


def run_bitstream(args: argparse.Namespace) -> int:
    """``esl-hw bitstream MODEL --board B [--baud N] [--lanes L] [--no-rewiring] [--freq MHZ |
    --core-report DIR] --out DIR``: the top on a PLL clock (default: the core's post-route Fmax)."""
    from esl_hw.fpga.boards import build_bitstream, get_board
    from esl_hw.fpga.synth import DoesNotFit, TimingFailure

    state = check_writable_target(args.out, args.force, inputs=[args.model])
    model = load_model(args.model)
    get_board(args.board)
    rewiring = False if args.no_rewiring else None
    with staged_folder(args.out, state=state, keep_on=(DoesNotFit, TimingFailure)) as staging:
        try:
            report = build_bitstream(
                model,
                args.board,
                staging,
                baud=args.baud,
                lanes=core_lanes(model, args.lanes),
                rewiring=rewiring,
                report_dir=args.out,
                freq_mhz=getattr(args, "freq", None),
                core_report=getattr(args, "core_report", None),
                allow_timing_failure=getattr(args, "allow_timing_failure", False),
            )
        finally:  # also the report of a board top that does not fit or misses its clock
            add_provenance(staging, "bitstream", f"Bitstream for {args.board}", args)
    rows = [(kind, f"{row['used']} / {row['available']}") for kind, row in report["utilisation"].items()]
    rows += [
        ("requested clock (MHz)", f"{report['requested_mhz']:g} ({report['clock_source']})"),
        ("PLL clock / Fmax (MHz)", f"{report['clock_mhz']:g} / {report['fmax_mhz']}"),
        ("timing met", report["timing_met"]),
        ("bitstream", report["bitstream"]),
    ]
    print_table(f"esl-hw bitstream: {report['board']} ({report['device']})", rows)
    return EXIT_OK


def run_run(args: argparse.Namespace) -> int:
    """``esl-hw run MODEL --port PORT [--baud N] [--samples N] [--data DIR]``: on the board, checked."""
    from esl_hw.fpga.driver import HostDriver, open_serial, run_images
    from esl_hw.rtl_gen import counter_names

    state = optional_target(args, args.model, args.data)
    model = load_model(args.model)
    transport = open_serial(args.port, args.baud)
    try:
        driver = HostDriver(transport, counter_names(model), reply_timeout=args.timeout)
        images, where = sample_images(model, args.samples, args.data)
        if args.load_synapses:  # a core with its synapses in SPRAM starts without them
            driver.load_synapses(model, driver.info().lanes)
        result = run_images(driver, model, images)
    finally:
        close = getattr(transport, "close", None)
        if close is not None:
            close()
    if state is not None:
        with staged_folder(args.out, state=state) as staging:
            record = {"port": args.port, "images": where, **result}
            write_report(staging, "run", f"Images run on the board at {args.port}", record, args)
    rows = [
        ("images", f"{result['samples']} {where}"),
        ("mismatching samples", result["mismatches"]),
        ("mean cycles per inference", float(np.mean(result["cycles"])) if result["cycles"] else 0.0),
        ("clock (MHz, from INFO)", result["clock_mhz"] or "not reported"),
        ("mean latency (µs)", float(np.mean(result["latency_us"])) if result["latency_us"] else None),
    ]
    print_table(f"esl-hw run on {args.port}", rows)
    for line in result["details"][:5]:
        print(line)
    return EXIT_OK if result["mismatches"] == 0 else EXIT_MISMATCH
