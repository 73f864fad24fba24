"""Co-simulate the generated core against the reference model (Verilator or Icarus).

:func:`run_cosim` emits the core's Verilog and the harness, builds them once per Verilog text,
simulator and run mode in the build cache outside any output folder (:mod:`esl_hw.sim.build_cache`:
``$ESL_HW_CACHE``, else ``~/.cache/esl-hw``; a later call with the same Verilog reuses the build,
``rm -rf`` of that folder clears it), runs the simulation on the images' events in a run folder of
its own (``build_dir/runs/run-*``: events, trace, report, simulator log), and returns a
:class:`CosimResult` built from the JSON report of the checker
(:func:`esl_hw.sim.testbench.check`). Progress (the build, then the images done, read from the
growing trace) goes to :mod:`esl_hw.progress`.

Run modes (:data:`~esl_hw.sim.build.MODES`): ``cocotb`` runs the cocotb test module
:mod:`esl_hw.sim.testbench`, which awaits the harness's ``done`` and checks the trace inside the
simulator (Verilator or Icarus); ``binary`` (Verilator only, its default) runs the harness as a
plain Verilator executable, clocked from C++, without VPI or ``--timing`` (about four times as many
simulated cycles per second), and runs the same checker on its trace afterwards. Both write the
same trace and the same report.

Streaming (``stream=True``): the harness sends the images back to back (the next image's events
right after the last marker of the one before, never waiting for ``done``), so consecutive
inferences overlap in the core; the checker compares every image's spikes, potentials,
outputs, prediction and counters with the reference as in the default mode, and the result
carries the harness cycle of every ``done`` (``finish_cycles``): its differences are the cycles
between consecutive results (:attr:`CosimResult.cycles_between_results`), the throughput, while
the ``cycles`` counter stays each inference's latency.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from esl_hw import progress
from esl_hw.artifact import Model
from esl_hw.artifact_io import save_model
from esl_hw.errors import EslError
from esl_hw.rtl_gen import emit_verilog
from esl_hw.rtl_gen.core import SUMMED_COUNTERS
from esl_hw.rtl_gen.plan import CorePlan, HardwareConfig, as_plan
from esl_hw.sim.build import (
    TIMESCALE,
    binary_path,
    check_mode,
    check_simulator,
    simulator_environment,
)
from esl_hw.sim.build_cache import cached_build, writable_cache
from esl_hw.sim.harness import (
    CONFIG_ENV,
    CORE_NAME,
    HARNESS_TOP,
    capacity_for,
    event_words,
    harness_verilog,
    write_events,
)

TEST_MODULE = "esl_hw.sim.testbench"
#: seconds between two looks at a running co-simulation's trace
WATCH_INTERVAL_S = 0.5


@dataclass
class CosimResult:
    """Outcome of one co-simulation.

    ``mismatches`` counts samples with any bit differing from the reference; ``cycles``,
    ``sops``, ``spikes`` (per inference, per LIF layer), ``memory_reads`` and ``memory_writes``
    (per memory kind ``ptr``, ``syn``, ``cur``, ``pot``, ``acc``: one figure per inference) come
    from the core's performance counters; ``lanes`` is the lane count of the simulated core,
    ``config`` its whole hardware configuration; ``build`` the build's folder in the cache and
    ``built`` whether this call built it (else it reused a finished build); ``mode`` the run mode
    (``cocotb`` or ``binary``, see the module docstring); ``simulation_seconds`` the simulator's
    own wall time (from start to ``done``, without the build and the check); ``stream`` whether
    the images were streamed back to back; ``finish_cycles`` the harness cycle of each image's
    ``done``; ``counters_checked`` whether every counter but ``cycles`` was compared with the
    reference (a mismatch counts in ``mismatches``).
    """

    simulator: str
    samples: int
    mismatches: int
    predictions: list[int]
    expected_predictions: list[int]
    outputs: list[list[int]]
    cycles: list[int]
    sops: list[int]
    spikes: list[list[int]]
    memory_reads: dict[str, list[int]]
    memory_writes: dict[str, list[int]]
    build_seconds: float
    run_seconds: float
    built: bool
    details: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    report_path: Path | None = None
    lanes: int = 1
    config: HardwareConfig | None = None
    build: Path | None = None
    mode: str = "cocotb"
    simulation_seconds: float = 0.0
    stream: bool = False
    finish_cycles: list[int] = field(default_factory=list)
    counters_checked: bool = False

    @property
    def result_intervals(self) -> list[int]:
        """Cycles between consecutive results (``done`` to ``done``), one per image after the first."""
        return np.diff(np.asarray(self.finish_cycles, dtype=np.int64)).tolist()

    @property
    def cycles_between_results(self) -> float | None:
        """Mean cycles between consecutive results, ``(last done − first done) / (N − 1)``: the
        steady-state cost per inference of a stream (``None`` with fewer than two results)."""
        if len(self.finish_cycles) < 2:
            return None
        return (self.finish_cycles[-1] - self.finish_cycles[0]) / (len(self.finish_cycles) - 1)

    @property
    def ok(self) -> bool:
        """No mismatching sample and a complete, well-formed trace."""
        return self.mismatches == 0 and not self.problems


def resolve_mode(simulator: str, mode: str | None) -> str:
    """The run mode of ``simulator``: ``mode``, or by default ``binary`` for Verilator and
    ``cocotb`` for Icarus; :class:`EslError` for a bad pair."""
    check_simulator(simulator)
    if mode is None:
        mode = "binary" if simulator == "verilator" else "cocotb"
    check_mode(simulator, mode)
    return mode


def _build(
    plan: CorePlan, simulator: str, capacity: int, cache: Path, mode: str | None = None
) -> tuple[Path, bool]:
    """Build the core of ``plan`` and its harness in the build cache ``cache`` for run ``mode``
    (:func:`resolve_mode`) unless a finished build of the same Verilog is there
    (:func:`esl_hw.sim.build_cache.cached_build`); return the folder and whether it built. Run it inside
    :func:`~esl_hw.sim.build.simulator_environment`."""

    def write_sources(folder: Path) -> list[Path]:
        core = emit_verilog(plan, folder, name=CORE_NAME)
        harness = folder / f"{HARNESS_TOP}.v"
        harness.write_text(harness_verilog(plan, capacity))
        return [core, harness]

    mode = resolve_mode(simulator, mode)
    return cached_build(simulator, HARNESS_TOP, write_sources, cache, mode, inputs=(plan, capacity))


def run_cosim(
    model: CorePlan | Model,
    images: np.ndarray,
    simulator: str = "verilator",
    build_dir: str | os.PathLike[str] | None = None,
    trace_potentials: bool = True,
    gap_percent: int = 0,
    backpressure_percent: int = 0,
    seed: int = 1,
    fifo_depth: int | None = None,
    reference_model: Model | None = None,
    lanes: int | None = None,
    random_gaps: int = 0,
    synapse_memory: str | None = None,
    lane_fifo_depth: int | None = None,
    mode: str | None = None,
    capacity: int | None = None,
    stream: bool = False,
    streaming: bool | None = None,
) -> CosimResult:
    """Co-simulate the core of ``model`` on ``images`` and check it bit for bit against the reference.

    Parameters
    ----------
    model : CorePlan or Model
        The plan of the core (:func:`esl_hw.rtl_gen.plan.plan_model`), or the artifact the core is
        generated from with the options below (unset ones at the defaults of
        :class:`~esl_hw.rtl_gen.hardware.HardwareConfig`, the lanes the model's own).
    images : numpy.ndarray
        ``[N, n_in]`` uint8 pixels, encoded with the model's encoder (``N >= 1``).
    simulator : str
        ``"verilator"`` or ``"icarus"``.
    build_dir : path or None
        Holds one ``runs/run-*`` folder per call (events, trace, report, simulator log); a
        temporary folder when ``None``. The build itself goes to the build cache
        (:func:`esl_hw.sim.build_cache.cache_root`, with a compile cache for Verilator's runtime) and is
        reused by any later call with the same Verilog and simulator.
    trace_potentials : bool
        Also trace and check every potential (not only spikes, outputs and predictions).
    gap_percent, backpressure_percent : int
        Share (0..90 %) of idle cycles on the input stream and not-ready cycles on the output
        stream, drawn by an LFSR seeded with ``seed``.
    seed : int
        Seed of the harness's idle/backpressure pattern.
    fifo_depth : int or None
        Depth of the spike FIFOs between layers.
    reference_model : Model or None
        What the checker compares against (default ``model``); a different one shows that the
        checker can fail.
    lanes : int or None
        Lanes per layer core of the generated core (a power of two, see
        :class:`esl_hw.rtl_gen.SNNCore`; ``None``: the model's own).
    random_gaps : int
        When non-zero (at most 90), the harness draws a new idle share and backpressure share in
        ``0 .. random_gaps`` % for every image after the first (which uses ``gap_percent`` and
        ``backpressure_percent``).
    synapse_memory : str or None
        ``block`` or ``spram`` (see :class:`esl_hw.rtl_gen.SNNCore`; an SPRAM core is simulated
        with its synapses loaded).
    lane_fifo_depth : int or None
        Depth of each lane's event FIFO.
    mode : str or None
        ``"cocotb"`` or ``"binary"`` (Verilator only): how the simulation runs, see the module
        docstring (``None``: ``binary`` on Verilator, ``cocotb`` on Icarus).
    capacity : int or None
        Depth of the harness's event memory: a power of two holding the images' events (``None``:
        the smallest, :func:`~esl_hw.sim.harness.capacity_for`). It is part of the build: calls on
        parts of one image set that give the same depth share one build.
    stream : bool
        Stream the images back to back (``+STREAM=1``, module docstring) instead of waiting for
        each inference's ``done`` before the next image's events; the same build. Only a core
        built with streaming (``streaming``, the default) takes it: for one built without,
        :class:`EslError` before any build.
    streaming : bool or None
        Build the core with streamed inferences (:class:`~esl_hw.rtl_gen.hardware.HardwareConfig`;
        ``None``: the default, on).

    Returns
    -------
    CosimResult

    Raises
    ------
    EslError
        Unknown simulator or run mode, missing simulator, bad images or options, a build cache
        that cannot be written, or a build or run that produced no report.
    """
    mode = resolve_mode(simulator, mode)
    shares = (("gap_percent", gap_percent), ("backpressure_percent", backpressure_percent))
    for name, value in (*shares, ("random_gaps", random_gaps)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 90:
            raise EslError(f"{name} must be an integer in 0..90, got {value!r}")
    options = {"fifo_depth": fifo_depth, "synapse_memory": synapse_memory, "lane_fifo_depth": lane_fifo_depth}
    plan = as_plan(model, lanes, streaming=streaming, **options)
    check_stream(plan, stream)
    model = plan.model
    words = event_words(model, images)
    if len(images) == 0:
        raise EslError("no images to co-simulate")
    capacity = _capacity(len(words), capacity)
    keep_report = build_dir is not None
    with contextlib.ExitStack() as stack:
        if build_dir is None:
            build_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="esl-cosim-"))
        root = Path(build_dir).resolve()
        cache = writable_cache()
        with simulator_environment(simulator, cache / "objcache"):
            started = time.perf_counter()
            folder, built = _build(plan, simulator, capacity, cache, mode)
            build_seconds = time.perf_counter() - started
            started = time.perf_counter()
            report, report_path = _run(
                model,
                reference_model or model,
                np.asarray(images),
                words,
                simulator,
                folder,
                root,
                trace_potentials,
                [
                    f"+GAP={gap_percent}",
                    f"+BACKPRESSURE={backpressure_percent}",
                    f"+RANDOMGAPS={random_gaps}",
                    f"+SEED={seed}",
                    f"+STREAM={int(bool(stream))}",
                ],
                extra_config={"lanes": plan.lanes},
                mode=mode,
            )
            run_seconds = time.perf_counter() - started
        report_path = report_path if keep_report else None
        result = _result(model, simulator, report, report_path, build_seconds, run_seconds, built)
        result.lanes, result.config, result.build = plan.lanes, plan.config, folder
        result.mode, result.stream = mode, bool(stream)
        return result


#: Why images cannot be streamed into a core built without streaming (one line).
STREAM_REFUSAL = (
    "cannot stream the images (--stream): the core is built without streaming (--no-streaming), "
    "it takes one inference at a time"
)


def check_stream(plan: CorePlan, stream: bool) -> None:
    """Raise :class:`EslError` (:data:`STREAM_REFUSAL`) when ``stream`` asks to stream the images
    into a core of ``plan`` built without streaming: it takes one inference at a time."""
    if stream and not plan.config.streaming:
        raise EslError(STREAM_REFUSAL)


def _capacity(n_events: int, capacity: int | None) -> int:
    """The harness's event memory depth: ``capacity`` checked (a power of two holding
    ``n_events``), or the smallest one."""
    if capacity is None:
        return capacity_for(n_events)
    number = isinstance(capacity, int) and not isinstance(capacity, bool)
    if not number or capacity < max(n_events, 1) or capacity & (capacity - 1):
        raise EslError(
            f"capacity must be a power of two of at least {n_events} (the events), got {capacity!r}"
        )
    return capacity


def _count_done(trace: Path, stop: threading.Event, counter: progress.Counter) -> None:
    """Until ``stop``: count the images the harness finished (``D`` lines of the growing ``trace``)."""
    offset, done, last = 0, 0, b"\n"
    while not stop.wait(WATCH_INTERVAL_S):
        try:
            with open(trace, "rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
        except OSError:
            continue
        if not chunk:
            continue
        offset += len(chunk)
        done += (last + chunk).count(b"\nD ")
        last = chunk[-1:]
        counter.set(done)


@contextlib.contextmanager
def _watching(trace: Path, counter: progress.Counter) -> Iterator[None]:
    """Follow ``trace`` in a thread while the simulator writes it (progress of the images)."""
    stop = threading.Event()
    watcher = threading.Thread(target=_count_done, args=(trace, stop, counter), daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()


def _run(
    model: Model,
    reference_model: Model,
    images: np.ndarray,
    words: np.ndarray,
    simulator: str,
    folder: Path,
    root: Path,
    trace_potentials: bool,
    options: list[str],
    extra_config: dict | None = None,
    extra_cycles: int = 0,
    mode: str | None = None,
) -> tuple[dict, Path]:
    """Run the build in ``folder`` (made for run ``mode``, :func:`resolve_mode`) on ``images`` in a
    new run folder ``root/runs/run-*``; return the checker's report and its path."""
    mode = resolve_mode(simulator, mode)
    (root / "runs").mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=root / "runs"))
    reference_dir = save_model(reference_model, run_dir / "reference_model")
    np.save(run_dir / "images.npy", images)
    events = write_events(run_dir / "events.hex", words)
    trace = run_dir / "trace.txt"
    report_path = run_dir / "report.json"
    config = {
        "reference_model": str(reference_dir),
        "images": str(run_dir / "images.npy"),
        "trace": str(trace),
        "report": str(report_path),
        "trace_potentials": bool(trace_potentials),
        **(extra_config or {}),
    }
    (run_dir / "config.json").write_text(json.dumps(config))
    work = model.synapses + sum(layer.n_in + layer.n_out for layer in model.layers) + 16
    max_cycles = 20 * len(images) * model.timesteps * work + 10_000 + extra_cycles
    plusargs = [
        f"+EVENTS={events}",
        f"+NEVENTS={len(words)}",
        f"+NIMAGES={len(images)}",
        f"+TRACE={trace}",
        f"+POTENTIALS={int(trace_potentials)}",
        f"+MAXCYCLES={max_cycles}",
        *options,
    ]
    log = run_dir / "sim.log"
    with progress.Counter(f"cosim: {simulator}", len(images), "images") as counter:
        with _watching(trace, counter):
            if mode == "binary":
                failure = _simulate_binary(binary_path(folder, HARNESS_TOP), run_dir, plusargs, config, log)
            else:
                failure = _simulate_cocotb(simulator, folder, run_dir, plusargs, log)
        if not report_path.is_file():
            tail = log.read_text()[-3000:] if log.is_file() else ""
            raise EslError(f"{simulator} run in {run_dir} wrote no report ({failure}); log tail:\n{tail}")
        report = json.loads(report_path.read_text())
        counter.set(report["samples"], mismatches=report["mismatches"])
    return report, report_path


def _simulate_cocotb(simulator: str, folder: Path, run_dir: Path, plusargs: list[str], log: Path) -> str:
    """Run the cocotb test module (:mod:`esl_hw.sim.testbench`: it awaits ``done``, then checks
    the trace and writes the report); return what went wrong, or ``"no error"``."""
    from cocotb_tools.runner import get_runner

    try:
        get_runner(simulator).test(
            test_module=TEST_MODULE,
            hdl_toplevel=HARNESS_TOP,
            hdl_toplevel_lang="verilog",
            build_dir=folder / "sim",
            test_dir=run_dir,
            plusargs=plusargs,
            extra_env={CONFIG_ENV: str(run_dir / "config.json")},
            timescale=TIMESCALE,
            log_file=log,
        )
    except (SystemExit, Exception) as error:
        # A failing check also ends here: the report then holds the mismatches.
        return f"{error.__class__.__name__}: {error}"
    return "no error"


def _simulate_binary(executable: Path, run_dir: Path, plusargs: list[str], config: dict, log: Path) -> str:
    """Run the plain Verilator executable (``+FINISH=1``: it ends the cycle after ``done``), then
    the cocotb test module's checker on its trace (:func:`esl_hw.sim.testbench.check`), which
    writes the report; return what went wrong, or ``"no error"`` (no report is written when the
    simulator fails)."""
    from esl_hw.sim.testbench import check

    started = time.perf_counter()
    with open(log, "w") as handle:
        status = subprocess.call(
            [str(executable), *plusargs, "+FINISH=1"], cwd=run_dir, stdout=handle, stderr=subprocess.STDOUT
        )
    simulated = time.perf_counter() - started
    if status != 0:
        return f"{executable.name} exited with status {status}"
    report = check(config)
    report["simulation_seconds"] = simulated
    Path(config["report"]).write_text(json.dumps(report))
    return "no error" if report["ok"] else f"{report['mismatches']} of {report['samples']} samples mismatch"


def _result(
    model: Model,
    simulator: str,
    report: dict,
    report_path: Path | None,
    build_seconds: float,
    run_seconds: float,
    built: bool,
) -> CosimResult:
    counters = [entry or {} for entry in report["counters"]]
    kinds = sorted({name.split("_")[0] for name in SUMMED_COUNTERS if "_" in name})
    hidden = range(len(model.hidden_layers))
    return CosimResult(
        simulator=simulator,
        samples=report["samples"],
        mismatches=report["mismatches"],
        predictions=report["predictions"],
        expected_predictions=report["expected_predictions"],
        outputs=report["outputs"],
        cycles=[entry.get("cycles", 0) for entry in counters],
        sops=[entry.get("sops", 0) for entry in counters],
        spikes=[[entry.get(f"spikes{layer}", 0) for layer in hidden] for entry in counters],
        memory_reads={kind: [entry.get(f"{kind}_reads", 0) for entry in counters] for kind in kinds},
        memory_writes={
            kind: [entry.get(f"{kind}_writes", 0) for entry in counters]
            for kind in kinds
            if f"{kind}_writes" in SUMMED_COUNTERS
        },
        build_seconds=build_seconds,
        run_seconds=run_seconds,
        built=built,
        details=report["details"],
        problems=report["problems"] + (["watchdog expired"] if report["timed_out"] else []),
        report_path=report_path,
        simulation_seconds=float(report.get("simulation_seconds", 0.0)),
        finish_cycles=[int(cycle) for cycle in report.get("finish_cycles", [])],
        counters_checked=bool(report.get("counters_checked", False)),
    )
