"""What ``esl-hw explore SPACE.yaml --out DIR`` does: the co-design exploration, run on Ray.

The command reads and checks the space (:mod:`esl_hw.app.explore_space`), the data and the output
folder (:mod:`esl_hw.app.explore_record`) before any work; starts a local Ray cluster of
``--workers`` CPUs (or joins the one at ``--address``); and hands out points of the space's strategy
(:mod:`esl_hw.app.explore_strategy`). Each stage of a point (:mod:`esl_hw.app.explore_points`) is
looked up in the stage cache (:mod:`esl_hw.app.explore_cache`) and, when absent, run as a Ray task
declaring its resources: one CPU, and one GPU for training when the config's ``train.device`` is
``cuda`` or ``auto`` on a cluster with GPUs. A stage shared by several points runs once. Results
arrive as tasks finish: every finished point is appended to ``points.jsonl`` and ``front.json``,
``front.md`` and ``front.png`` are rewritten (:mod:`esl_hw.app.explore_front`,
:mod:`esl_hw.app.explore_plot`).

Every wait has a deadline: Ray's start (:data:`RAY_START_S`), each stage (the space's
``deadlines``, counted from its submission; the driver never submits more tasks than the cluster
has CPUs, so a task starts when it is submitted), and fetching a finished result. A stage past its
deadline is cancelled and its points fail; ``--resume`` retries failed points and continues a killed
exploration without computing again what it finished.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esl_hw import progress
from esl_hw.app.explore_cache import StageCache, data_identity, default_root
from esl_hw.app.explore_front import front_markdown, front_payload
from esl_hw.app.explore_plot import load_pyplot
from esl_hw.app.explore_points import StageRequest, hardware_stages, point_record, train_stage
from esl_hw.app.explore_record import ExplorationFolder
from esl_hw.app.explore_space import Point, Space, load_space
from esl_hw.app.explore_stages import PASSED_ENVIRONMENT, run_stage
from esl_hw.app.explore_strategy import Planner, import_optuna, planner_for
from esl_hw.app.tables import print_table
from esl_hw.errors import EslError

EXIT_OK = 0
EXIT_FAILED = 1
#: seconds Ray may take to start or to be joined
RAY_START_S = 120.0
#: seconds between two progress lines while stages run
HEARTBEAT_S = 60.0
#: seconds between two redraws of front.png while results arrive
PNG_INTERVAL_S = 15.0
#: seconds to fetch the result of a task Ray reports finished
FETCH_S = 120.0


def import_ray() -> Any:
    """The ``ray`` module, or a one-line :class:`EslError` naming the extra that brings it."""
    try:
        import ray
    except ImportError:
        raise EslError(
            "esl-hw explore needs Ray: pip install 'esl-hw[explore]' (or pip install ray)"
        ) from None
    return ray


class _Deadline(Exception):
    pass


def _reachable(address: str) -> None:
    """Refuse quickly a ``host:port`` where nothing listens (Ray would retry for minutes)."""
    if address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=10):
            pass
    except (OSError, ValueError) as error:
        raise EslError(f"--address {address}: no Ray cluster answers there ({error})") from None


def start_ray(ray: Any, address: str | None, workers: int) -> dict[str, Any]:
    """Start a local cluster of ``workers`` CPUs (or join ``address``) within :data:`RAY_START_S`;
    return its ``cpus``, ``gpus`` and ``address``."""
    if address:
        _reachable(address)

    def expired(signum: int, frame: Any) -> None:
        raise _Deadline

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, RAY_START_S)
    options = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        with progress.step(f"ray: {'joining ' + address if address else f'local cluster of {workers} CPUs'}"):
            if address:
                ray.init(address=address, **options)
            else:
                ray.init(num_cpus=workers, object_store_memory=200 << 20, **options)
    except _Deadline:
        raise EslError(f"Ray did not start within {RAY_START_S:.0f} s") from None
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise EslError(f"cannot start Ray: {str(error).strip().splitlines()[0]}") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    resources = ray.cluster_resources()
    return {
        "cpus": int(resources.get("CPU", 0)),
        "gpus": int(resources.get("GPU", 0)),
        "address": address or "local",
    }


@dataclass
class PointRun:
    """A point being evaluated: its stage results so far and the stages it waits for."""

    number: int
    point: Point
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    needs: set[str] = field(default_factory=lambda: {"train"})


@dataclass
class Task:
    """A stage submitted to Ray."""

    stage: StageRequest
    started: float
    deadline: float


def _message(error: BaseException) -> str:
    """The first line of what a failed task raised (its cause, for Ray's wrapper)."""
    cause = getattr(error, "cause", None) or error
    text = str(cause).strip().splitlines()
    first = text[0] if text else ""
    return first if isinstance(cause, EslError) else f"{type(cause).__name__}: {first}"


class Explorer:
    """Runs the points of a planner on Ray through the stage cache and records them."""

    def __init__(
        self,
        ray: Any,
        space: Space,
        planner: Planner,
        cache: StageCache,
        folder: ExplorationFolder,
        context: dict[str, Any],
        cluster: dict[str, Any],
    ) -> None:
        self.ray, self.space, self.planner, self.cache = ray, space, planner, cache
        self.folder, self.context, self.cluster = folder, context, cluster
        self.remote = ray.remote(run_stage)
        self.session = len(folder.state["sessions"])
        self.recorded = folder.recorded()
        self.points: dict[int, dict[str, Any]] = {}
        self.results: dict[tuple[str, str], dict[str, Any]] = {}
        self.failed: dict[tuple[str, str], str] = {}
        self.waiting: dict[tuple[str, str], list[PointRun]] = {}
        self.ready: collections.deque[StageRequest] = collections.deque()
        self.tasks: dict[Any, Task] = {}
        self.active: dict[int, PointRun] = {}
        self.computed = dict.fromkeys(("train", "cosim", "synth"), 0)
        self.reused = dict.fromkeys(("train", "cosim", "synth"), 0)
        self.points.update({record["number"]: record for record in self.recorded.values()})
        self.recorded_before = len(self.recorded)
        planner.seed(list(self.recorded.values()))
        self.started = time.monotonic()
        self._png_at = -float("inf")
        self._beat_at = time.monotonic()

    # --- points --------------------------------------------------------------------------------

    def _start(self, point: Point) -> None:
        number = self.planner.number(point)
        if point.id in self.recorded:  # finished by an earlier session: nothing to do again
            record = self.recorded[point.id]
            self.planner.tell(point, record["metrics"] if record["status"] == "ok" else None)
            return
        run = PointRun(number, point)
        self.active[number] = run
        self._need(run, train_stage(point, self.cache, self.context))

    def _need(self, run: PointRun, stage: StageRequest) -> None:
        slot = (stage.stage, stage.key)
        if slot in self.failed:  # failed once in this session: not run again before --resume
            self._fail(run, self.failed[slot])
            return
        if slot not in self.results:
            found = self.cache.lookup(*slot)
            if found is None:
                if slot not in self.waiting:
                    self.ready.append(stage)
                self.waiting.setdefault(slot, []).append(run)
                return
            self.results[slot] = found
            self.reused[stage.stage] += 1
        self._deliver(run, stage.stage, self.results[slot])

    def _deliver(self, run: PointRun, stage: str, result: dict[str, Any]) -> None:
        run.results[stage] = result
        run.needs.discard(stage)
        if stage == "train":
            try:
                stages = hardware_stages(run.point, result, self.cache, self.context)
            except EslError as error:
                self._fail(run, f"hardware: {error}")
                return
            run.needs.update(item.stage for item in stages)
            for item in stages:
                self._need(run, item)
        elif not run.needs and run.number in self.active:
            self._finish(run)

    def _finish(self, run: PointRun) -> None:
        del self.active[run.number]
        record = point_record(run.number, run.point, run.results, self.cache, self.session)
        self.folder.record(record)
        self.points[run.number] = record
        self.planner.tell(run.point, record["metrics"] if record["status"] == "ok" else None)
        metrics = record["metrics"]
        figures = [f"accuracy {metrics['accuracy']:.4f}", f"{metrics['cycles']:.0f} cycles"]
        if metrics["latency_us"] is not None:
            figures.append(f"{metrics['latency_us']:.1f} µs")
        progress.note(
            f"explore: point {run.number} ({run.point.label()}): {record['status']}, {', '.join(figures)}"
        )
        self.report()

    def _fail(self, run: PointRun, message: str) -> None:
        if self.active.pop(run.number, None) is None:
            return
        self.points[run.number] = {
            "number": run.number,
            "id": run.point.id,
            "label": run.point.label(),
            "settings": run.point.settings,
            "hardware": run.point.hardware,
            "status": "error",
            "error": message,
            "metrics": {},
            "session": self.session,
        }
        self.planner.tell(run.point, None)
        progress.note(f"explore: point {run.number} ({run.point.label()}) failed: {message}")
        self.report()

    # --- tasks ---------------------------------------------------------------------------------

    def _submit(self) -> None:
        kept: collections.deque[StageRequest] = collections.deque()
        while self.ready and len(self.tasks) < self.cluster["cpus"]:
            stage = self.ready.popleft()
            on_gpus = sum(task.stage.gpus for task in self.tasks.values())
            if stage.gpus and on_gpus + stage.gpus > self.cluster["gpus"]:
                kept.append(stage)  # it would queue in Ray, its deadline running: wait for a GPU here
                continue
            remote = self.remote.options(num_cpus=1, num_gpus=stage.gpus, max_retries=0, name=stage.stage)
            ref = remote.remote(stage.stage, stage.request)
            now = time.monotonic()
            self.tasks[ref] = Task(stage, now, now + self.space.deadlines[stage.stage])
        self.ready.extendleft(reversed(kept))

    def _collect(self, ref: Any) -> None:
        task = self.tasks.pop(ref)
        slot = (task.stage.stage, task.stage.key)
        runs = self.waiting.pop(slot, [])
        try:
            outcome = self.ray.get(ref, timeout=FETCH_S)
        except Exception as error:  # noqa: BLE001 - any failure of a stage fails its points, not the run
            self.failed[slot] = f"{task.stage.stage}: {_message(error)}"
            for run in runs:
                self._fail(run, self.failed[slot])
            return
        (self.computed if outcome["computed"] else self.reused)[task.stage.stage] += 1
        self.results[slot] = outcome["result"]
        for run in runs:
            self._deliver(run, task.stage.stage, outcome["result"])

    def _expire(self) -> None:
        now = time.monotonic()
        for ref, task in list(self.tasks.items()):
            if now > task.deadline:
                self.ray.cancel(ref, force=True)
                del self.tasks[ref]
                limit = self.space.deadlines[task.stage.stage]
                slot = (task.stage.stage, task.stage.key)
                self.failed[slot] = f"{task.stage.stage} ran longer than its deadline of {limit:g} s"
                for run in self.waiting.pop(slot, []):
                    self._fail(run, self.failed[slot])

    def _heartbeat(self) -> None:
        if time.monotonic() - self._beat_at < HEARTBEAT_S:
            return
        self._beat_at = time.monotonic()
        running = collections.Counter(task.stage.stage for task in self.tasks.values())
        stages = ", ".join(f"{name} {count}" for name, count in sorted(running.items())) or "none"
        progress.note(
            f"explore: {len(self.points)} points done, {len(self.active)} in progress; running: {stages} "
            f"({progress.elapsed_text(time.monotonic() - self.started)})"
        )

    def run(self) -> None:
        """Evaluate the planner's points until it is exhausted and every stage has finished."""
        while True:
            # a fixed plan is taken whole (its trainings start first); a sampler gets a few points
            # ahead of the results, about two per CPU
            room = (
                2 * max(self.cluster["cpus"], 1) - len(self.active)
                if self.planner.adaptive
                else self.planner.total
            )
            asked = self.planner.ask(room) if room > 0 and not self.planner.exhausted() else []
            for point in asked:
                self._start(point)
            self._submit()
            if not self.tasks:
                if self.ready:
                    raise EslError("explore: stages are ready but the cluster has no CPU to run them")
                if self.planner.exhausted():
                    break
                if not asked:
                    raise EslError("explore: the strategy handed out no point although it has more")
                continue
            soonest = min(task.deadline for task in self.tasks.values()) - time.monotonic()
            done, _ = self.ray.wait(
                list(self.tasks), num_returns=1, timeout=max(0.1, min(HEARTBEAT_S, soonest))
            )
            for ref in done:
                self._collect(ref)
            self._expire()
            self._heartbeat()
        for run in list(self.active.values()):  # cannot happen: every stage has finished or failed
            self._fail(run, "no stage left to run")

    # --- reports -------------------------------------------------------------------------------

    def session_record(self, interrupted: bool) -> dict[str, Any]:
        return {
            **self.context["session"],
            "wall_s": round(time.monotonic() - self.started, 1),
            "computed": dict(self.computed),
            "reused": dict(self.reused),
            "points_recorded_before": self.recorded_before,
            "points_finished": sum(1 for p in self.points.values() if p.get("session") == self.session),
            "interrupted": interrupted,
        }

    def payload(self, interrupted: bool = True) -> dict[str, Any]:
        sessions = self.folder.state["sessions"]
        sessions[self.session - 1] = self.session_record(interrupted)
        extra = {
            "dataset": self.context["dataset"],
            "data": self.context["data"],
            "planned": self.planner.total,
            "cache": str(self.cache.root),
            "sessions": sessions,
        }
        return front_payload(self.space.to_dict(), self.space.budgets, list(self.points.values()), extra)

    def report(self, final: bool = False, interrupted: bool = True) -> dict[str, Any]:
        """Rewrite ``front.json``, ``front.md``, ``state.json`` and (at most every
        :data:`PNG_INTERVAL_S`, and when ``final``) ``front.png``; return the payload."""
        payload = self.payload(interrupted)
        self.folder.write_state()
        self.folder.write_front(payload, front_markdown(payload))
        if payload["points"] and (final or time.monotonic() - self._png_at >= PNG_INTERVAL_S):
            from esl_hw.app.explore_plot import write_front_png

            try:
                write_front_png(self.folder.path / "front.png", payload)
            except Exception as error:  # noqa: BLE001 - the figure must not cost the results
                progress.note(f"explore: front.png not drawn ({type(error).__name__}: {error})")
            self._png_at = time.monotonic()
        return payload


def _session_info(cluster: dict[str, Any], number: int) -> dict[str, Any]:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return {
        "number": number,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "address": cluster["address"],
        "workers": cluster["cpus"],
        "gpus": cluster["gpus"],
        "cores": os.cpu_count(),
        "load_average": load,
        "host": socket.gethostname(),
    }


def _prepare(args: argparse.Namespace) -> tuple[Space, Any, StageCache, dict[str, Any]]:
    """Everything checked before Ray starts: the space, the options, the extras, the data, the cache."""
    space = load_space(args.space)
    if args.address and args.workers is not None:
        raise EslError(
            "--workers sizes a local cluster; with --address the cluster's own CPUs run the stages"
        )
    ray = import_ray()
    if space.strategy.kind == "optuna":
        import_optuna()
    from esl_hw.datasets import load_dataset

    data_path = args.data or space.dataset
    data = load_dataset(data_path)  # every check of the data (docs/datasets.md), before any work
    cache = StageCache(args.cache if args.cache is not None else default_root())
    cache.check_writable()
    context = {
        "data": data_identity((data.train.images, data.train.labels), (data.test.images, data.test.labels)),
        "dataset": data.source,
        "data_path": None if data_path is None else str(Path(data_path).resolve()),
        "deadlines": dict(space.deadlines),
        "environment": {name: os.environ[name] for name in PASSED_ENVIRONMENT if name in os.environ},
    }
    return space, ray, cache, context


def _print_summary(payload: dict[str, Any], folder: Path) -> None:
    points = {point["number"]: point for point in payload["points"]}
    rows: list[tuple[str, object]] = []
    for number in payload["front"]:
        point = points[number]
        metrics = point["metrics"]
        figures = [f"accuracy {metrics['accuracy']:.4f}", f"{metrics['cycles']:.0f} cycles"]
        if metrics.get("latency_us") is not None:
            figures.append(f"{metrics['latency_us']:.1f} µs")
        if metrics.get("luts") is not None:
            figures.append(f"{metrics['luts']} LUT")
        rows.append((f"front #{number} {point['label']}", ", ".join(figures)))
    for budget in payload["budgets"]:
        rows.append(
            (
                f"budget: {budget['name']}",
                "none within it" if budget["point"] is None else f"#{budget['point']}",
            )
        )
    session = payload["sessions"][-1]
    rows.append(
        (
            "stages computed (train/cosim/synth)",
            "/".join(str(session["computed"][s]) for s in ("train", "cosim", "synth")),
        )
    )
    rows.append(("stages reused from the cache", sum(session["reused"].values())))
    rows.append(("points recorded before", session["points_recorded_before"]))
    rows.append(("wall time (s, Ray's start aside)", f"{session['wall_s']:.1f}"))
    print_table(f"esl-hw explore {payload['name']}: {len(points)} points, written to {folder}", rows)


def _extra_entries(out: Path, cache: Path) -> tuple[str, ...]:
    """The entry of ``out`` that holds the cache, when ``--cache`` lies inside ``--out``."""
    out, cache = out.resolve(), cache.resolve()
    if cache == out:
        raise EslError("--cache must not be --out itself")
    return (cache.relative_to(out).parts[0],) if out in cache.parents else ()


def run_explore(args: argparse.Namespace) -> int:
    """``esl-hw explore SPACE --out DIR [--data DIR] [--workers N] [--address A] [--cache C] [--resume]``."""
    space, ray, cache, context = _prepare(args)
    out = Path(args.out)
    extra = _extra_entries(out, cache.root)
    inputs = [args.space, context["data_path"]]
    state = ExplorationFolder.check(out, args.resume, space.to_dict(), context["data"], inputs)
    previous = signal.getsignal(signal.SIGTERM)
    explorer, interrupted = None, True
    try:
        cluster = start_ray(ray, args.address, args.workers or os.cpu_count() or 1)
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # a kill ends it as Ctrl-C does
        context["gpus"] = cluster["gpus"]
        with ExplorationFolder.open(out, state, extra) as folder:
            folder.state["sessions"].append({})
            context["session"] = _session_info(cluster, len(folder.state["sessions"]))
            try:
                load_pyplot()  # before any result: a kill cannot then interrupt its import
                explorer = Explorer(ray, space, planner_for(space), cache, folder, context, cluster)
                progress.note(
                    f"explore: {space.name}, {explorer.planner.total} points ({space.strategy.kind}), "
                    f"{explorer.recorded_before} recorded before, cache {cache.root}"
                )
                explorer.run()
                interrupted = False
            finally:
                if ray.is_initialized():
                    ray.shutdown()
                if explorer is not None:
                    payload = explorer.report(final=True, interrupted=interrupted)
                folder.append_log()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if ray.is_initialized():
            ray.shutdown()
    _print_summary(payload, out)
    failed = [point for point in payload["points"] if point["status"] in ("error", "mismatch")]
    if failed:
        progress.note(
            f"explore: {len(failed)} points failed or mismatched (front.md lists them); --resume retries "
            "those that failed"
        )
        return EXIT_FAILED
    return EXIT_OK
