"""MNIST at overall density 0.01 of the 784-800-10: which of the trainer's levers pay (issue 17 item 7).

At density 0.01 the multi-spike LIF 784-800-10 has 6,352 synapses in all, fewer than the 8,000 weights of
a dense output layer. Each *variant* below starts from ``configs/mnist_multispike_d0.01.yaml`` and changes
one or two of the trainer's levers (growth rule, redistribution across layers, how the budget is split
between the two layers, prune rule, time steps, rewiring schedule); the network and the overall density
stay. Every run is scored on the whole test split in integer mode (the hardware's arithmetic, what the
RTL computes bit for bit), best epoch chosen on the validation split. The target of the issue: 97.5 %.

Runs go to ``--runs/<variant>_e<epochs>_s<seed>`` (one training process at a time, a fresh process with
one torch thread each); a finished run is reused, an interrupted one resumed, and runs already scored in
the results JSON are not scored again, so the sweep can be carried out in pieces (``--budget-minutes``
starts no run that would end after it). Results: ``<out>/low_density.json``/``.md``/``.png`` from the runs
complete so far, saying how many.

Usage::

    python bench/low_density.py --data /work/shared/data/mnist --epochs 30
    python bench/low_density.py --data /work/shared/data/mnist --epochs 100 --variants redistribute-momentum
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fig4_prune_growth as fig4  # noqa: E402
import train_runs  # noqa: E402  (bench/ is not a package)

from esl_hw.app.cli import _non_negative_int, _positive_int  # noqa: E402  (one line, exit 2)
from esl_hw.train.config import Config, load_config  # noqa: E402

BASE = "mnist_multispike_d0.01.yaml"
TARGET = 0.975
#: A variant's ``train.teacher`` placeholder: the sweep's dense teacher run (:func:`teacher_job`).
TEACHER = "<teacher>"
#: The teacher: the dense multi-spike 784-800-10 (T = 8), trained by the sweep itself.
TEACHER_CONFIG = "mnist_multispike_d1.0.yaml"
TEACHER_EPOCHS = 10
RESULTS = "low_density"
log = logging.getLogger("low_density")


@dataclasses.dataclass(frozen=True)
class Variant:
    """A change to the base config: ``sparsity``/``model``/``train``/``data`` fields replaced, and what
    it tries."""

    name: str
    lever: str
    sparsity: tuple[tuple[str, Any], ...] = ()
    model: tuple[tuple[str, Any], ...] = ()
    train: tuple[tuple[str, Any], ...] = ()
    data: tuple[tuple[str, Any], ...] = ()


VARIANTS = (
    Variant("random", "the config as it is (random growth)", (("grow", "random"),)),
    Variant("momentum", "growth by momentum (sparse momentum's rule)", (("grow", "momentum"),)),
    Variant(
        "redistribute-momentum",
        "momentum growth; density moves between layers by mean momentum",
        (("grow", "momentum"), ("redistribute", "momentum")),
    ),
    Variant(
        "redistribute-magnitude",
        "momentum growth; density moves between layers by a global magnitude prune (DSR)",
        (("grow", "momentum"), ("redistribute", "magnitude")),
    ),
    Variant(
        "output-0.125",
        "momentum growth; output layer fixed at 1,000 synapses, 5,352 to the input layer",
        (("grow", "momentum"), ("layer_density", ((1, 0.125),))),
    ),
    Variant(
        "output-0.5",
        "momentum growth; output layer fixed at 4,000 synapses, 2,352 to the input layer",
        (("grow", "momentum"), ("layer_density", ((1, 0.5),))),
    ),
    Variant(
        "magnitude-prune",
        "momentum growth, magnitude pruning",
        (("grow", "momentum"), ("prune", "magnitude")),
    ),
    Variant(
        "alpha-0.5",
        "momentum growth; half of the synapses rewired at the first update (alpha 0.5, was 0.3)",
        (("grow", "momentum"), ("alpha", 0.5)),
    ),
    Variant("T16", "momentum growth, 16 time steps (was 8)", (("grow", "momentum"),), (("timesteps", 16),)),
    Variant("T32", "momentum growth, 32 time steps (was 8)", (("grow", "momentum"),), (("timesteps", 32),)),
    Variant(
        "T16-redistribute-magnitude",
        "momentum growth, 16 time steps, density moving between layers by DSR's global magnitude prune",
        (("grow", "momentum"), ("redistribute", "magnitude")),
        (("timesteps", 16),),
    ),
    Variant(
        "T16-leak2",
        "momentum growth, 16 time steps, weaker leak (leak_shift 2: β = 0.75, was 0.5)",
        (("grow", "momentum"),),
        (("timesteps", 16), ("leak_shift", 2)),
    ),
    Variant(
        "T16-shift1",
        "momentum growth, 16 time steps; training images moved by up to 1 pixel per axis (augment_shift 1)",
        (("grow", "momentum"),),
        (("timesteps", 16),),
        data=(("augment_shift", 1),),
    ),
    Variant(
        "T16-shift2",
        "momentum growth, 16 time steps; training images moved by up to 2 pixels per axis (augment_shift 2)",
        (("grow", "momentum"),),
        (("timesteps", 16),),
        data=(("augment_shift", 2),),
    ),
    Variant(
        "distill",
        "momentum growth; knowledge distillation from the dense 784-800-10 (τ 4, weight 0.5)",
        (("grow", "momentum"),),
        (),
        (("teacher", TEACHER),),
    ),
    Variant(
        "T16-distill",
        "momentum growth, 16 time steps; knowledge distillation from the dense 784-800-10 (τ 4, weight 0.5)",
        (("grow", "momentum"),),
        (("timesteps", 16),),
        (("teacher", TEACHER),),
    ),
)


@dataclasses.dataclass(frozen=True)
class Run:
    """One training: a variant at a seed, its run folder name and its config."""

    name: str
    variant: Variant
    seed: int
    config: Config


def variant_config(
    base: Config,
    variant: Variant,
    data: str | None,
    seed: int,
    epochs: int | None,
    teacher: Path | None = None,
) -> Config:
    """``base`` with ``variant``'s fields, the data folder, seed and epochs (``teacher``: the run folder
    that replaces :data:`TEACHER`)."""
    config = train_runs._override(base, fig4._overrides(data), seed, epochs, **dict(variant.sparsity))
    if teacher is None and any(value == TEACHER for _, value in variant.train):
        raise ValueError(f"variant {variant.name} learns from a teacher: give its run folder")
    train = {key: str(teacher) if value == TEACHER else value for key, value in variant.train}
    return dataclasses.replace(
        config,
        model=dataclasses.replace(config.model, **dict(variant.model)),
        train=dataclasses.replace(config.train, **train),
        data=dataclasses.replace(config.data, **dict(variant.data)),
    )


def teacher_job(
    data: str | None, epochs: int = TEACHER_EPOCHS, configs: Path = train_runs.CONFIGS
) -> train_runs.Job:
    """The dense teacher of the ``distill`` variants: :data:`TEACHER_CONFIG` at seed 0, ``epochs``."""
    config = train_runs._override(load_config(configs / TEACHER_CONFIG), fig4._overrides(data), 0, epochs)
    return train_runs.Job(f"teacher-dense_e{epochs}_s0", "grow", 0, config, 1.0, config.sparsity.grow)


def uses_teacher(run: Run) -> bool:
    return any(value == TEACHER for _, value in run.variant.train)


def plan(
    epochs: int | None,
    data: str | None,
    seeds: tuple[int, ...] = (0,),
    names: tuple[str, ...] | None = None,
    configs: Path = train_runs.CONFIGS,
    teacher: Path | None = None,
) -> list[Run]:
    """Every run, seed by seed, variants in :data:`VARIANTS` order (or only ``names``); ``teacher``:
    the run folder of :func:`teacher_job` for the variants that learn from it."""
    known = {variant.name: variant for variant in VARIANTS}
    chosen = [known[name] for name in names] if names else list(VARIANTS)
    base = load_config(configs / BASE)
    runs = []
    for seed in seeds:
        for variant in chosen:
            config = variant_config(base, variant, data, seed, epochs, teacher)
            runs.append(Run(f"{variant.name}_e{config.train.epochs}_s{seed}", variant, seed, config))
    return runs


def _as_planned(config: Config) -> dict[str, Any]:
    """What a finished run must have been trained with to be reused."""
    return {
        "sparsity": dataclasses.asdict(config.sparsity),
        "timesteps": config.model.timesteps,
        "epochs": config.train.epochs,
        "seed": config.seed,
        "teacher": config.train.teacher,
        "augment_shift": config.data.augment_shift,
    }


def score_run(run: Run, runs: Path) -> dict[str, Any]:
    """Train (skip when finished, resume when interrupted) and score ``run`` on the whole test split;
    refuse a finished run trained otherwise than planned."""
    from esl_hw.train.export import load_checkpoint, net_from_checkpoint

    started = time.monotonic()
    job = train_runs.Job(run.name, "grow", run.seed, run.config, 0.01, run.config.sparsity.grow)
    row = train_runs.run_job(job, runs)
    _, trained = net_from_checkpoint(load_checkpoint(Path(row["run"])))
    if _as_planned(trained) != _as_planned(run.config):
        raise RuntimeError(f"{row['run']} was trained otherwise than planned: remove it")
    history = row.pop("density_history")
    row.pop("ever_active_history", None)
    return row | {
        "variant": run.variant.name,
        "lever": run.variant.lever,
        "density_start": history[0] if history else None,
        "wall_seconds": round(time.monotonic() - started, 1),
    }


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}%"


def _header(results: dict[str, Any]) -> str:
    return f"{len(results['runs'])} of {results['planned']} runs complete"


def commands(rows: list[dict[str, Any]]) -> list[str]:
    """One command per (epochs, seed) that trains and scores those rows' variants (``MNIST``: the
    folder of the MNIST IDX files)."""
    groups: dict[tuple[int, int], list[str]] = {}
    for row in rows:
        groups.setdefault((row["config"]["epochs"], row.get("seed", 0)), []).append(row["variant"])
    return [
        f"python bench/low_density.py --data MNIST --epochs {epochs}"
        + ("" if seed == 0 else f" --seeds {seed}")
        + f" --variants {' '.join(variants)}"
        for (epochs, seed), variants in sorted(groups.items())
    ]


def markdown(results: dict[str, Any]) -> str:
    """The table (variant, lever, epochs, seed, per-layer synapses, accuracy) and how it was measured."""
    machine, load = results["machine"], results["load_average"]
    rows = sorted(results["runs"], key=lambda row: -row["test_accuracy_integer"])
    best = rows[0] if rows else None
    reproduce = (
        "; ".join(f"`{command}`" for command in commands(results["runs"])) or f"`{results['command']}`"
    )
    lines = [
        "# MNIST at density 0.01 (784-800-10, 6,352 synapses)",
        "",
        f"Reproduce (MNIST: the folder of the MNIST IDX files): {reproduce}.",
        "",
        f"{_header(results)}. Base: `configs/{BASE}` (multi-spike LIF 784-800-10, T = 8, ER init, "
        "SET pruning), each variant changing the levers named; data: "
        f"{results['data']}; test accuracy on all test images in integer mode (the hardware's arithmetic), "
        f"best epoch on the validation split. Target: {_percent(TARGET)}. "
        + (
            f"Best: **{_percent(best['test_accuracy_integer'])}** ({best['name']}), "
            + ("target met." if best["test_accuracy_integer"] >= TARGET else "target **not** met.")
            if best
            else "No run complete yet."
        ),
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}; one torch thread "
        f"per run; load average {', '.join(map(str, load['start']))} at the start, "
        f"{', '.join(map(str, load.get('end') or ['(still running)']))} at the end of the last command "
        "(other jobs, and at times other runs, shared the machine: training times are not speed figures).",
        "",
        "| run | lever | epochs | synapses (input, output layer) | test accuracy (integer) | float | "
        "best epoch | training (s) |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        sizes = row["layer_sizes"]
        counts = [
            round(density * inputs * outputs)
            for density, inputs, outputs in zip(row["layer_density"], sizes, sizes[1:], strict=False)
        ]
        lines.append(
            f"| {row['name']} | {row['lever']} | {row['config']['epochs']} | "
            f"{' + '.join(f'{count:,}' for count in counts)} = {row['connections']:,} | "
            f"{_percent(row['test_accuracy_integer'])} | {_percent(row['test_accuracy_float'])} | "
            f"{row['best_epoch']} | {row['train_seconds']:.0f} |"
        )
    if teacher := results.get("teacher"):
        lines += [
            "",
            f"Teacher of the distill variants: `configs/{teacher['config']}` (dense 784-800-10, T = 8, "
            f"{teacher['connections']:,} synapses), {teacher['epochs']} epochs, seed 0, trained by the same "
            f"command: test accuracy {_percent(teacher['test_accuracy_integer'])} (integer).",
        ]
    if results.get("missing"):
        lines += ["", f"Not complete (left out above): {', '.join(results['missing'])}."]
    if results.get("failed"):
        lines += ["", f"Failed: {', '.join(results['failed'])}."]
    return "\n".join([*lines, ""])


def plot(results: dict[str, Any], path: Path) -> None:
    """Horizontal bars of test accuracy per run, the target as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(results["runs"], key=lambda row: row["test_accuracy_integer"])
    figure, axis = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.5))
    values = [100 * row["test_accuracy_integer"] for row in rows]
    axis.barh(range(len(rows)), values, color="C0")
    axis.axvline(100 * TARGET, color="C3", linestyle="--", label=f"target {_percent(TARGET)}")
    axis.set_yticks(range(len(rows)), [row["name"] for row in rows], fontsize=7)
    axis.set_xlim(max(0.0, np.floor(min(values) - 1.0)), 100)
    axis.set_xlabel("test accuracy, integer mode (%)")
    axis.set_title(f"MNIST 784-800-10 at density 0.01 (6,352 synapses): {_header(results)}", fontsize=9)
    axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_results(results: dict[str, Any], out: Path) -> None:
    """``low_density.json``/``.md``/``.png`` from the rows in ``results`` (the figure when any)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{RESULTS}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / f"{RESULTS}.md").write_text(markdown(results))
    if results["runs"]:
        plot(results, out / f"{RESULTS}.png")


def in_fresh_process(run: Run, runs: Path) -> dict[str, Any]:
    """:func:`score_run` in a new process (a package file edited meanwhile is read anew)."""
    return fig4.in_fresh_process(run, runs, score_run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="MNIST IDX folder (default: the embedded subset)")
    parser.add_argument("--epochs", type=_positive_int, help="epochs of every run (default: the config's)")
    parser.add_argument("--seeds", type=_non_negative_int, nargs="+", default=[0])
    parser.add_argument("--variants", nargs="+", choices=[variant.name for variant in VARIANTS])
    parser.add_argument("--runs", type=Path, default=Path("runs/low_density"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--budget-minutes", type=float, help="start no run that would end after this")
    parser.add_argument("--retry-seconds", type=float, default=30.0, help="wait before retrying a failed run")
    parser.add_argument("--replot", type=Path, help="rewrite the table and figure from this JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.replot:
        write_results(json.loads(args.replot.read_text()), args.out)
        return
    if args.data is not None and not Path(args.data).is_dir():
        parser.error(f"MNIST folder {args.data} is missing")
    teacher = teacher_job(args.data)
    runs = plan(
        args.epochs,
        args.data,
        tuple(args.seeds),
        tuple(args.variants or ()),
        teacher=args.runs / teacher.name,
    )
    path = args.out / f"{RESULTS}.json"
    previous = json.loads(path.read_text()) if path.is_file() else {"runs": []}
    names = {run.name for run in runs}
    done = {row["name"] for row in previous["runs"]}
    command = " ".join(["python bench/low_density.py", *sys.argv[1:]])
    results: dict[str, Any] = {
        "command": command,
        "data": args.data or "the embedded MNIST subset",
        "planned": len(names | done),
        "machine": train_runs._machine(),
        "load_average": {"start": train_runs._load(), "end": None},
        "runs": previous["runs"],  # earlier invocations' runs (other variants or epochs) are kept
        "missing": sorted(names - done),
        "failed": [],
    }
    if previous.get("teacher"):
        results["teacher"] = previous["teacher"]
    if any(uses_teacher(run) and run.name not in done for run in runs):
        log.info("teacher %s", teacher.name)  # trained (or reused) and scored before its students
        row = fig4.in_fresh_process(teacher, args.runs, train_runs.run_job)
        row.pop("density_history", None)
        row.pop("ever_active_history", None)
        results["teacher"] = row | {"epochs": teacher.config.train.epochs, "config": TEACHER_CONFIG}
    fig4.sweep(runs, args, results, execute=in_fresh_process, write=write_results)
    results["load_average"]["end"] = train_runs._load()
    write_results(results, args.out)


if __name__ == "__main__":
    main()
