"""Prune × growth rules on MNIST as the ESL-SNN paper ran them (Fig. 4).

{SET, magnitude} pruning × {gradient, momentum, random, random-unfired} growth at densities 1.0, 0.1 and
0.01, seeds 0 and 1, on the multi-spike LIF 784-800-10 of ``configs/mnist_multispike_d<density>.yaml``
(network, time steps, learning-rate schedule, ``delta_t`` and ``t_end`` as the configs say; ``t_end`` is a
fraction of the training length, so ``--epochs`` scales the ESL schedule with it).

At density 1.0 every sparse layer is full: the engine's update prunes and regrows
``min(round(α_t · active), inactive) = 0`` connections (:meth:`esl_hw.train.sparse.SparseEngine.update`),
so neither rule is ever called and all eight pairs are the same dense training. It is trained once per
seed and shown as such in the table and figure.

Runs go to ``--runs/<name>`` (one training process at a time, each in a fresh process with one torch
thread); a finished run is reused and an interrupted one resumed, and runs already scored in the results
JSON are not scored again, so the sweep can be stopped and carried on in pieces. Each run is scored on
the whole test split with the integer reference (what the hardware computes). ``--budget-minutes``
starts no run that would, at the mean time of the runs so far, end after it. Results:
``<out>/fig4_prune_growth.json``/``.md``/``.png``, from whatever runs are complete, saying how many.

Usage (seed 0 first, then seed 1)::

    python bench/fig4_prune_growth.py --data /work/shared/data/mnist --epochs 8
    python bench/fig4_prune_growth.py --replot docs/benchmarks/fig4_prune_growth.json
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import multiprocessing
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_runs  # noqa: E402  (bench/ is not a package)

from esl_hw.app.cli import _non_negative_int, _positive_int  # the CLI's argument checks: one line, exit 2
from esl_hw.train.config import Config, load_config  # noqa: E402

PRUNES = ("set", "magnitude")
GROWS = ("gradient", "momentum", "random", "random-unfired")
DENSITIES = (1.0, 0.1, 0.01)
SEEDS = (0, 1)
#: Table and figure label of the density-1.0 run, which stands for every prune/growth pair.
DENSE = "any (dense)"
RESULTS = "fig4_prune_growth"
log = logging.getLogger("fig4_prune_growth")


@dataclasses.dataclass(frozen=True)
class Run:
    """One training of the sweep; ``prune``/``grow`` are None for the dense run (every pair)."""

    name: str
    seed: int
    density: float
    prune: str | None
    grow: str | None
    config: Config

    @property
    def dense(self) -> bool:
        return self.prune is None


def rewires(config: Config) -> bool:
    """Whether ESL can change any mask: not when every sparse layer is full (density 1.0), where the
    engine's prune-and-regrow count ``min(round(α_t · active), numel - active)`` is always 0."""
    sparsity = config.sparsity
    return (
        sparsity.density is None
        or sparsity.density < 1.0
        or any(density < 1.0 for _, density in sparsity.layer_density)
    )


def _overrides(data: str | None, delta_t: int | None = None) -> argparse.Namespace:
    """What :func:`train_runs._override` reads besides the seed and epochs."""
    return argparse.Namespace(data=data, train_samples=None, device="cpu", delta_t=delta_t)


def plan(
    epochs: int | None,
    data: str | None,
    seeds: tuple[int, ...] = SEEDS,
    densities: tuple[float, ...] = DENSITIES,
    configs: Path = train_runs.CONFIGS,
) -> list[Run]:
    """Every distinct run, seed by seed (all of the first seed before the next): per density, one
    dense run where ESL cannot rewire (:func:`rewires`), else one per prune × growth pair."""
    overrides = _overrides(data)
    runs = []
    for seed in seeds:
        for density in densities:
            base = load_config(configs / f"mnist_multispike_d{density}.yaml")
            if not rewires(base):
                config = train_runs._override(base, overrides, seed, epochs)
                runs.append(Run(f"dense_d{density}_s{seed}", seed, density, None, None, config))
                continue
            for prune in PRUNES:
                for grow in GROWS:
                    config = train_runs._override(base, overrides, seed, epochs, prune=prune, grow=grow)
                    name = f"{prune}_{grow}_d{density}_s{seed}"
                    runs.append(Run(name, seed, density, prune, grow, config))
    return runs


def pending(runs: list[Run], done: dict[str, dict[str, Any]]) -> list[Run]:
    """The runs without a scored row in ``done`` (by name) for the same epochs."""
    return [
        run
        for run in runs
        if run.name not in done or done[run.name]["config"]["epochs"] != run.config.train.epochs
    ]


def score_run(run: Run, runs: Path) -> dict[str, Any]:
    """Train (skip when finished, resume when interrupted) and score ``run`` on the whole test split;
    refuse a finished run trained with other epochs or rules than planned."""
    started = time.monotonic()
    job = train_runs.Job(
        run.name, "dense" if run.dense else "grow", run.seed, run.config, run.density, run.grow
    )
    row = train_runs.run_job(job, runs)
    trained = row["config"]
    wanted = run.config.sparsity
    if trained["epochs"] != run.config.train.epochs or (trained["prune"], trained["grow"]) != (
        wanted.prune,
        wanted.grow,
    ):
        raise RuntimeError(f"{row['run']} was trained with {trained}, not as planned: remove it")
    return row | {"prune": run.prune, "grow": run.grow, "wall_seconds": round(time.monotonic() - started, 1)}


def _started_late(elapsed: float, budget: float | None, times: list[float]) -> bool:
    """Whether a run started now would end after ``budget`` seconds, at the mean of ``times``."""
    if budget is None:
        return False
    return elapsed + (float(np.mean(times)) if times else 0.0) > budget


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (density, prune, growth), densest first, rules in the paper's order: the test
    accuracy (integer mode) per seed and their mean; the dense run once, as every pair."""
    groups: dict[tuple[float, str | None, str | None], dict[int, float]] = {}
    for row in rows:
        key = (row["target"], row["prune"], row["grow"])
        groups.setdefault(key, {})[row["seed"]] = row["test_accuracy_integer"]

    def order(key: tuple[float, str | None, str | None]) -> tuple[float, int, int]:
        density, prune, grow = key
        return (
            -density,
            -1 if prune is None else PRUNES.index(prune),
            -1 if grow is None else GROWS.index(grow),
        )

    return [
        {
            "density": key[0],
            "prune": key[1],
            "grow": key[2],
            "accuracy": {str(seed): seeds[seed] for seed in sorted(seeds)},
            "mean": float(np.mean(list(seeds.values()))),
        }
        for key, seeds in sorted(groups.items(), key=lambda item: order(item[0]))
    ]


def _label(value: str | None) -> str:
    return DENSE if value is None else value


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}%"


def _header(results: dict[str, Any]) -> str:
    """Epochs, completeness: the line beside every figure and table."""
    done = len(results["runs"])
    return (
        f"{results['epochs']} epochs per run (the configs: {results['config_epochs']}); "
        f"{done} of {results['planned']} runs complete"
    )


def markdown(results: dict[str, Any], summary: list[dict[str, Any]]) -> str:
    """The table (density, prune, growth, accuracy per seed, mean) and how it was measured."""
    seeds = results["seeds"]
    machine, load = results["machine"], results["load_average"]
    wall = results.get("wall_seconds")
    times = [row["wall_seconds"] for row in results["runs"] if "wall_seconds" in row]
    images = sorted({row["test_images"] for row in results["runs"]})
    split = f"all {images[0]:,}" if len(images) == 1 else "all the"  # none yet, or several
    lines = [
        "# Prune × growth rules on MNIST (ESL-SNN Fig. 4)",
        "",
        f"Reproduce: `{results['command']}`.",
        "",
        f"{_header(results)}. Multi-spike LIF 784-800-10, T = 8, from `configs/mnist_multispike_d*.yaml` "
        "with only the epochs changed (ESL's `t_end` is a fraction of the training length, `delta_t` "
        f"as configured). Data: {results['data']}; test accuracy on {split} test "
        "images in integer mode (the hardware's arithmetic), best epoch chosen on the validation split.",
        "",
        "At density 1.0 every layer is full, so ESL prunes and regrows nothing and every prune × growth "
        f"pair is the same dense training: it ran once per seed, row `{DENSE}`.",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}, torch "
        f"{machine['torch']}; one run at a time, one torch thread; load average (1, 5, 15 min) "
        f"{', '.join(map(str, load['start']))} at the start, "
        f"{', '.join(map(str, load.get('end') or ['(still running)']))} at the end. "
        + (f"Wall time {wall / 60:.1f} min" if wall is not None else "Wall time: still running")
        + (
            f"; per run (training and scoring) {min(times):.0f}–{max(times):.0f} s, mean "
            f"{np.mean(times):.0f} s."
            if times
            else "."
        ),
        "",
        "| density | prune | growth | " + " | ".join(f"seed {seed}" for seed in seeds) + " | mean |",
        "| ---: | --- | --- | " + " | ".join("---:" for _ in seeds) + " | ---: |",
    ]
    for entry in summary:
        accuracy = [_percent(entry["accuracy"].get(str(seed))) for seed in seeds]
        lines.append(
            f"| {entry['density']} | {_label(entry['prune'])} | {_label(entry['grow'])} | "
            + " | ".join(accuracy)
            + f" | {_percent(entry['mean'])} |"
        )
    if results["runs"]:
        lines += ["", "Per run (wall time: training and scoring):", ""]
        lines += ["| run | test accuracy | best epoch | wall time (s) |", "| --- | ---: | ---: | ---: |"]
    for row in results["runs"]:
        lines.append(
            f"| {row['name']} | {_percent(row['test_accuracy_integer'])} | {row.get('best_epoch', '–')} "
            f"| {row.get('wall_seconds', '–')} |"
        )
    if results.get("missing"):
        lines += ["", f"Not complete (left out above): {', '.join(results['missing'])}."]
    if results.get("failed"):
        lines += ["", f"Failed: {', '.join(results['failed'])}."]
    return "\n".join([*lines, ""])


def plot(results: dict[str, Any], summary: list[dict[str, Any]], path: Path) -> None:
    """Grouped bars: per density, one bar per prune × growth pair (the dense run: one wide bar), the
    mean of the seeds, each seed a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    densities = [d for d in results["densities"] if any(entry["density"] == d for entry in summary)]
    colours = {grow: f"C{index}" for index, grow in enumerate(GROWS)}
    pairs = [(prune, grow) for prune in PRUNES for grow in GROWS]
    width = 0.9 / len(pairs)
    figure, axis = plt.subplots(figsize=(9, 4))
    for group, density in enumerate(densities):
        for entry in (entry for entry in summary if entry["density"] == density):
            if entry["prune"] is None:
                x, bar_width, style = group, 0.3, {"color": "0.6"}
                top = 100 * max(entry["accuracy"].values())
                axis.text(x, top + 0.3, "dense: no rewiring,\nevery pair the same", ha="center", fontsize=7)
            else:
                slot = pairs.index((entry["prune"], entry["grow"]))
                x, bar_width = group - 0.45 + (slot + 0.5) * width, width
                style = {
                    "color": colours[entry["grow"]],
                    "hatch": "//" if entry["prune"] == "magnitude" else "",
                }
            axis.bar(x, 100 * entry["mean"], bar_width, edgecolor="black", linewidth=0.5, **style)
            seeds = list(entry["accuracy"].values())
            axis.plot([x] * len(seeds), [100 * value for value in seeds], "k.", markersize=4)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[grow], label=f"grow {grow}") for grow in GROWS]
    handles += [
        plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="black", label="prune SET"),
        plt.Rectangle(
            (0, 0), 1, 1, facecolor="white", edgecolor="black", hatch="//", label="prune magnitude"
        ),
        plt.Line2D([], [], color="black", marker=".", linestyle="", label="one seed"),
    ]
    axis.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axis.set_xticks(range(len(densities)), [f"density {d}" for d in densities])
    values = [100 * value for entry in summary for value in entry["accuracy"].values()]
    low = min(values, default=90.0)
    axis.set_ylim(max(0.0, np.floor(low - 3.0)), 100)
    axis.set_ylabel("test accuracy, integer mode (%)")
    axis.set_title(f"Prune × growth rules, MNIST 784-800-10 (Fig. 4): {_header(results)}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_results(results: dict[str, Any], out: Path) -> None:
    """``fig4_prune_growth.json``/``.md``/``.png`` from the rows in ``results`` (the figure when any)."""
    summary = summarise(results["runs"])
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{RESULTS}.json").write_text(json.dumps(results | {"summary": summary}, indent=2) + "\n")
    (out / f"{RESULTS}.md").write_text(markdown(results, summary))
    if summary:
        plot(results, summary, out / f"{RESULTS}.png")


def _previous(path: Path) -> dict[str, dict[str, Any]]:
    """Rows of an earlier results JSON by run name (none when there is no file)."""
    if not path.is_file():
        return {}
    return {row["name"]: row for row in json.loads(path.read_text())["runs"]}


def in_fresh_process(
    run: Any, runs: Path, score: Callable[[Any, Path], dict[str, Any]] = score_run
) -> dict[str, Any]:
    """``score(run, runs)`` (:func:`score_run` unless given) in a new process, so that a file of the
    package edited meanwhile is read anew."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=die_with_parent) as pool:
        return pool.submit(score, run, runs).result()


def die_with_parent() -> None:
    """In a worker (Linux): get SIGTERM when the process that started it ends, so that a sweep stopped
    with ``kill`` leaves no training running on (the run resumes from its last epoch next time)."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1: PR_SET_PDEATHSIG


def sweep(
    runs: list[Run],
    args: argparse.Namespace,
    results: dict[str, Any],
    execute: Callable[[Run, Path], dict[str, Any]] = in_fresh_process,
    write: Callable[[dict[str, Any], Path], None] | None = None,
) -> None:
    """Train and score the runs not yet in ``results`` one at a time by ``execute`` (a run that fails is
    retried once, after ``args.retry_seconds``), rewriting the results after each (by ``write``, this
    sweep's :func:`write_results` unless given). ``runs`` need a ``name`` and a ``config``."""
    write = write or write_results
    started = time.monotonic()
    budget = None if args.budget_minutes is None else 60 * args.budget_minutes
    done = {row["name"]: row for row in results["runs"]}
    times: list[float] = []
    for run in pending(runs, done):
        if _started_late(time.monotonic() - started, budget, times):
            log.info("budget of %s min reached: %s and later runs not started", args.budget_minutes, run.name)
            break
        row = None
        for attempt in (1, 2):
            try:
                row = execute(run, args.runs)
                break
            except Exception:  # a half-edited file, a killed worker: try once more
                log.exception("run %s failed (attempt %d)", run.name, attempt)
                if attempt == 1:
                    time.sleep(args.retry_seconds)
        if row is None:
            results["failed"].append(run.name)
            continue
        times.append(row["wall_seconds"])
        results["runs"] = [other for other in results["runs"] if other["name"] != run.name] + [row]
        results["missing"].remove(run.name)
        accuracy = row.get("test_accuracy_integer", row.get("test_accuracy"))  # float-only nets: float
        log.info("%s: test %.4f (%.0f s)", run.name, accuracy, row["wall_seconds"])
        write(results, args.out)


def _command(args: argparse.Namespace) -> str:
    parts = ["python bench/fig4_prune_growth.py"]
    if args.data is not None:
        parts += ["--data", "MNIST" if Path(args.data).name == "mnist" else str(args.data)]
    if args.epochs is not None:
        parts += ["--epochs", str(args.epochs)]
    if list(args.seeds) != list(SEEDS):
        parts += ["--seeds", *map(str, args.seeds)]
    if list(args.densities) != list(DENSITIES):
        parts += ["--densities", *map(str, args.densities)]
    return " ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="MNIST IDX folder (default: the embedded subset)")
    parser.add_argument("--epochs", type=_positive_int, help="epochs of every run (default: the configs')")
    parser.add_argument("--seeds", type=_non_negative_int, nargs="+", default=list(SEEDS))
    parser.add_argument("--densities", type=float, nargs="+", default=list(DENSITIES))
    parser.add_argument("--runs", type=Path, default=Path("runs/fig4"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--budget-minutes", type=float, help="start no run that would end after this")
    parser.add_argument("--retry-seconds", type=float, default=30.0, help="wait before retrying a failed run")
    parser.add_argument("--resume", action="store_true", help="accepted for clarity: resuming is the default")
    parser.add_argument("--replot", type=Path, help="rewrite the table and figure from this JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.replot:
        results = json.loads(args.replot.read_text())
        results.pop("summary", None)
        write_results(results, args.out)
        return
    if args.data is not None and not Path(args.data).is_dir():
        parser.error(f"MNIST folder {args.data} is missing")
    runs = plan(args.epochs, args.data, tuple(args.seeds), tuple(args.densities))
    previous = _previous(args.out / f"{RESULTS}.json")
    missing = [run.name for run in pending(runs, previous)]
    kept = [previous[run.name] for run in runs if run.name not in missing]
    started, load_start = time.monotonic(), train_runs._load()
    results: dict[str, Any] = {
        "command": _command(args),
        "data": args.data or "the embedded MNIST subset",
        "epochs": runs[0].config.train.epochs,
        "config_epochs": load_config(train_runs.CONFIGS / "mnist_multispike_d0.1.yaml").train.epochs,
        "seeds": list(args.seeds),
        "densities": list(args.densities),
        "planned": len(runs),
        "machine": train_runs._machine(),
        "load_average": {"start": load_start, "end": None},
        "wall_seconds": None,
        "runs": kept,
        "missing": missing,
        "failed": [],
    }
    sweep(runs, args, results)
    results["load_average"]["end"] = train_runs._load()
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    write_results(results, args.out)


if __name__ == "__main__":
    main()
