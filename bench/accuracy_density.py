"""Accuracy vs density on MNIST or Fashion-MNIST (ESL-SNN paper, Fig. 2, Fig. 3b, Fig. 4 and Table 1).

Trains the paper's MNIST experiments from the configs in ``configs/`` and scores them on the test set:

- multi-spike LIF 784-800-10 at densities 1.0, 0.3, 0.1, 0.05, 0.01 (``mnist_multispike_d*.yaml``),
  test accuracy in float mode and in the exact integer mode (what the hardware computes);
- growth rules gradient, momentum, random and random-unfired at densities 0.1 and 0.01 (Fig. 4);
- single-spike (Mostafa) 784-800-10 at ε = 60 (``mnist_singlespike_eps60.yaml``);
- Table 1 for the multi-spike models: parameters, density, FLOPs and energies (constants below, kept
  in ``train_runs.py`` with the training and scoring of one run that the other benches share).

``--dataset fashion-mnist`` runs the density sweep alone (1.0, 0.3, 0.1, 0.05) on Fashion-MNIST from
``fashion_mnist_multispike_d*.yaml`` (the MNIST configs with the Debian folder as ``data.path``), into
``docs/benchmarks/fashion_mnist/`` and runs named ``fashion_mnist_multi_d*``, so that MNIST's results and
runs are never overwritten or reused; the growth rules, the single-spike network and the paper's targets
are MNIST only and left out. The density 1.0 row scored in float mode is the dense float accuracy of the
same MLP.

Each run goes to ``--runs/<name>``; a finished run is reused and an interrupted one resumed, so the
script can be stopped and started again. Results: ``<out>/accuracy_density.json`` and ``.md``, plots
``fig2_accuracy_density.png``, ``fig3b_layer_density.png``, ``fig4_growth_rules.png`` (when growth rules
ran). The results record the machine (CPU, cores, load average at the start and the end) and the wall time.

Energy constants (45 nm, Horowitz, ISSCC 2014, the values the SNN literature uses): a 32-bit float
multiply-accumulate 4.6 pJ (GPU energy: every stored weight is used at every step, FLOPs = 2 · MACs),
an accumulate 0.9 pJ (neuromorphic energy: one accumulate per synaptic operation, i.e. per input spike
and outgoing synapse, counted on the test set in integer mode).

Runs are trained ``--jobs`` at a time in worker processes (each with one torch thread); a run that
fails is logged and left out. ``--seeds`` repeats the density sweep (``--growth-seeds`` the growth
rules) and the Markdown gives mean ± std and the worst seed. ``--replot FILE`` rewrites the Markdown
and figures from a results JSON.

Usage (about 7 minutes on one H200 GPU; hours of CPU on full MNIST)::

    python bench/accuracy_density.py --data /path/to/mnist-idx --device cuda --jobs 12 --single-epochs 30
    python bench/accuracy_density.py --data /path/to/mnist-idx --runs runs/bench
    python bench/accuracy_density.py --epochs 1 --train-samples 1000   # smoke test, embedded subset
    python bench/accuracy_density.py --dataset fashion-mnist            # /usr/share/datasets/fashion-mnist
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_runs import CONFIGS, E_AC, E_MAC, Job, _load, _machine, _override, run_job  # noqa: E402

from esl_hw.train.config import load_config  # noqa: E402

#: Targets of the issue: the ESL-SNN paper's 97.69% at density 0.3, 97.5% at 0.1, and the paper's
#: single-spike 96.58% at ε = 60 (ESL-SNN, Shen et al., AAAI 2023).
TARGETS = {0.3: 0.9769, 0.1: 0.975}
SINGLE_TARGET = 0.9658
DENSITIES = (1.0, 0.3, 0.1, 0.05, 0.01)
GROW_RULES = ("gradient", "momentum", "random", "random-unfired", "hardware-random")
#: Prune rule a growth rule needs (the chip's rewiring prunes the smallest integer |w| itself).
PRUNE_FOR = {"hardware-random": "magnitude"}
GROW_DENSITIES = (0.1, 0.01)
log = logging.getLogger("accuracy_density")


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """A dataset the benchmark runs on: its name in titles, the prefix of its configs
    (``configs/<prefix>_multispike_d<density>.yaml``), its run names and its default output folder."""

    name: str
    prefix: str
    densities: tuple[float, ...]
    out: Path
    run_prefix: str  # before every run name, so that two datasets never share a run folder
    paper: bool  # growth rules, single spike and the paper's targets (MNIST only)


BENCHMARKS = {
    "mnist": Benchmark("MNIST", "mnist", DENSITIES, Path("docs/benchmarks"), "", True),
    "fashion-mnist": Benchmark(
        "Fashion-MNIST",
        "fashion_mnist",
        (1.0, 0.3, 0.1, 0.05),
        Path("docs/benchmarks/fashion_mnist"),
        "fashion_mnist_",
        False,
    ),
}


def benchmark_of(name: str) -> Benchmark:
    """The :class:`Benchmark` called ``name``; an unknown name raises, naming the known ones."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def sweep_config(benchmark: Benchmark, density: float) -> Path:
    """The config of ``benchmark``'s multi-spike run at ``density``."""
    return CONFIGS / f"{benchmark.prefix}_multispike_d{density}.yaml"


def _suffix(seed: int) -> str:
    return "" if seed == 0 else f"_s{seed}"


def plan_jobs(args: argparse.Namespace) -> list[Job]:
    """Every run, most important first: the sweep and the growth rules at the first seed, the single-
    spike network, then the other seeds. A growth run equal to a sweep run (same rule) is not repeated.
    A dataset other than MNIST has the density sweep alone."""
    benchmark = benchmark_of(args.dataset)
    densities = benchmark.densities if args.densities is None else args.densities
    jobs: list[Job] = []
    for position, seed in enumerate(args.seeds):
        for density in densities:
            config = _override(load_config(sweep_config(benchmark, density)), args, seed, args.epochs)
            name = f"{benchmark.run_prefix}multi_d{density}{_suffix(seed)}"
            jobs.append(Job(name, "multi", seed, config, density, config.sparsity.grow))
        if not benchmark.paper:
            continue
        for density in () if args.skip_growth or position >= args.growth_seeds else GROW_DENSITIES:
            for rule in args.grow_rules:
                base = load_config(CONFIGS / f"mnist_multispike_d{density}.yaml")
                if rule == base.sparsity.grow:
                    continue
                prune = PRUNE_FOR.get(rule, base.sparsity.prune)
                config = _override(base, args, seed, args.epochs, grow=rule, prune=prune)
                jobs.append(
                    Job(f"grow_{rule}_d{density}{_suffix(seed)}", "grow", seed, config, density, rule)
                )
        if not args.skip_single and position == 0:
            epochs = args.single_epochs if args.single_epochs is not None else args.epochs
            config = _override(load_config(CONFIGS / "mnist_singlespike_eps60.yaml"), args, seed, epochs)
            jobs.append(Job(f"single_eps60{_suffix(seed)}", "single", seed, config))
    return sorted(jobs, key=lambda job: (job.seed != args.seeds[0], job.kind == "single"))


def _stats(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=float)
    return {
        "mean": float(array.mean()),
        "std": float(array.std()),
        "min": float(array.min()),
        "n": len(array),
    }


def summarise(rows: list[dict[str, Any]], growth_seeds: list[int] | None = None) -> dict[str, Any]:
    """Per density (sweep) and per (density, rule) (growth, over ``growth_seeds`` only, so that every
    rule has the same seeds): test accuracy over seeds, and the first seed's connection counts, FLOPs
    and energies (the same for every seed)."""

    def group(selected: list[dict[str, Any]], key: Any) -> list[dict[str, Any]]:
        groups: dict[Any, list[dict[str, Any]]] = {}
        for row in sorted(selected, key=lambda row: row["seed"]):
            groups.setdefault(key(row), []).append(row)
        return [
            {
                **members[0],
                "seeds": [row["seed"] for row in members],
                "integer": _stats([row["test_accuracy_integer"] for row in members]),
                "float": _stats([row["test_accuracy_float"] for row in members]),
            }
            for members in groups.values()
        ]

    multi = group([row for row in rows if row["kind"] == "multi"], lambda row: row["target"])
    lif = [
        row
        for row in rows
        if row["kind"] in ("multi", "grow")
        and row["target"] in GROW_DENSITIES
        and (growth_seeds is None or row["seed"] in growth_seeds)
    ]
    growth = group(lif, lambda row: (row["target"], row["grow"]))
    single = [row for row in rows if row["kind"] == "single"]
    return {
        "multi_spike": sorted(multi, key=lambda row: -row["target"]),
        "growth_rules": sorted(growth, key=lambda row: (-row["target"], GROW_RULES.index(row["grow"]))),
        "single_spike": single[0] if single else None,
    }


def _plots(summary: dict[str, Any], out: Path, benchmark: Benchmark = BENCHMARKS["mnist"]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    multi = summary["multi_spike"]
    densities = [row["density"] for row in multi]
    figure, left = plt.subplots(figsize=(5, 3.5))
    left.errorbar(
        densities,
        [100 * row["integer"]["mean"] for row in multi],
        yerr=[100 * row["integer"]["std"] for row in multi],
        fmt="o-",
        capsize=3,
        label="test accuracy (integer)",
    )
    left.set_xscale("log")
    left.set_xlabel("density")
    left.set_ylabel("test accuracy (%)")
    right = left.twinx()
    right.plot(
        densities, [row["connections"] for row in multi], "s--", color="tab:orange", label="connections"
    )
    right.set_ylabel("connections")
    figure.suptitle(f"{benchmark.name} 784-800-10, ESL (Fig. 2)")
    figure.tight_layout()
    figure.savefig(out / "fig2_accuracy_density.png", dpi=120)
    plt.close(figure)

    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    for row in multi:
        densities_per_epoch = np.array(row["density_history"], dtype=float)
        for layer in range(densities_per_epoch.shape[1]):
            left.plot(
                np.arange(1, len(densities_per_epoch) + 1),
                densities_per_epoch[:, layer],
                "-" if layer == 0 else ":",
                label=f"d={row['density']:.2f} layer {layer + 1}",
            )
        history = np.array(row["ever_active_history"], dtype=float)
        if len(history):
            right.plot(history[:, 0] / 627200, label=f"d={row['density']:.2f}")
    left.set_yscale("log")
    left.set_xlabel("epoch")
    left.set_ylabel("layer density (active / all)")
    left.legend(fontsize=6, ncol=2)
    right.set_xlabel("ESL update")
    right.set_ylabel("layer 1: fraction ever active")
    right.legend(fontsize=7)
    figure.suptitle("Per-layer density over training, constant by construction, and exploration (Fig. 3b)")
    figure.tight_layout()
    figure.savefig(out / "fig3b_layer_density.png", dpi=120)
    plt.close(figure)
    if not benchmark.paper:  # growth rules: MNIST only
        return

    figure, axis = plt.subplots(figsize=(5, 3.5))
    width = 0.8 / len(GROW_RULES)
    for index, rule in enumerate(GROW_RULES):
        rows = {row["target"]: row for row in summary["growth_rules"] if row["grow"] == rule}
        present = [i for i, density in enumerate(GROW_DENSITIES) if density in rows]
        axis.bar(
            np.array(present) + index * width,
            [100 * rows[GROW_DENSITIES[i]]["integer"]["mean"] for i in present],
            width,
            yerr=[100 * rows[GROW_DENSITIES[i]]["integer"]["std"] for i in present],
            capsize=2,
            label=rule,
        )
    axis.set_xticks(
        np.arange(len(GROW_DENSITIES)) + (len(GROW_RULES) - 1) / 2 * width, [f"d={d}" for d in GROW_DENSITIES]
    )
    axis.set_ylabel("test accuracy (%)")
    axis.set_ylim(80, 100)
    axis.legend(fontsize=7)
    figure.suptitle("Growth rules (Fig. 4)")
    figure.tight_layout()
    figure.savefig(out / "fig4_growth_rules.png", dpi=120)
    plt.close(figure)


def _accuracy(stats: dict[str, float]) -> str:
    if stats["n"] == 1:
        return f"{100 * stats['mean']:.2f}%"
    spread = f"{100 * stats['std']:.2f}% (n={stats['n']}, min {100 * stats['min']:.2f}%)"
    return f"{100 * stats['mean']:.2f} ± {spread}"


def _run_lines(results: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    """The machine, load, epochs and wall time of the run, and the dense float accuracy of the same MLP
    (the density 1.0 row in float mode); nothing for results older than these records, so that their
    Markdown reads as it did."""
    machine = results.get("machine")
    if not machine:
        return []
    load = results.get("load_average", {})
    lines = [
        f"Machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}, torch "
        f"{machine['torch']}, device {results.get('device', 'cpu')}, {results.get('jobs', 1)} run(s) at a "
        "time with one torch thread each; load average (1, 5, 15 min) "
        f"{', '.join(map(str, load.get('start', [])))} at the start, "
        f"{', '.join(map(str, load.get('end') or ['(still running)']))} at the end.",
        "",
    ]
    epochs = sorted({row["config"]["epochs"] for row in summary["multi_spike"] if "config" in row})
    if epochs:
        wall = results.get("wall_seconds")
        trained = sum(row.get("train_seconds", 0.0) for row in results["runs"])
        timing = f"wall time {wall / 60:.1f} min" if wall is not None else "wall time: still running"
        configured = results.get("config_epochs")
        if configured and configured != epochs:
            timing = f"the configs say {', '.join(map(str, configured))}, --epochs overrides them; {timing}"
        lines += [
            f"Epochs per run: {', '.join(map(str, epochs))} ({timing}; "
            f"{trained / 60:.1f} min of training summed over the runs, evaluation not included).",
            "",
        ]
    dense = [row for row in summary["multi_spike"] if row["target"] == 1.0]
    if dense:
        sizes = "-".join(map(str, dense[0].get("layer_sizes", [784, 800, 10])))
        lines += [
            f"Dense float accuracy of the same MLP ({sizes}, density 1.0, float mode, no integer "
            f"quantisation): {_accuracy(dense[0]['float'])}. The float column of the other rows is the "
            "same sparse network before quantisation; the integer column is what the hardware computes.",
            "",
        ]
    return lines


def _markdown(results: dict[str, Any], summary: dict[str, Any]) -> str:
    benchmark = benchmark_of(results.get("dataset", "mnist"))
    test_images = {row["test_images"] for row in summary["multi_spike"] if "test_images" in row}
    split = f"its {min(test_images):,}-image test split" if len(test_images) == 1 else "its test split"
    if results.get("test_samples") is not None:
        split = f"the first {results['test_samples']:,} images of its test split (--test-samples)"
    lines = [
        f"# {benchmark.name} accuracy vs density (ESL)",
        "",
        f"Reproduce: `{results['command']}`.",
        "",
        f"Data: {results.get('data', 'MNIST')}; test accuracy on {split}, mean ± standard deviation "
        "over seeds where there are several; the best epoch is chosen on the validation split.",
        "",
        *_run_lines(results, summary),
        "| density | connections | test acc. integer | test acc. float | FLOPs | GPU energy (µJ) | SOPs/img "
        "| neuromorphic energy (µJ) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in summary["multi_spike"]:
        lines.append(
            f"| {row['density']:.3f} | {row['connections']:,} | {_accuracy(row['integer'])} "
            f"| {_accuracy(row['float'])} | {row['flops']:,} | {row['gpu_energy_uj']:.2f} "
            f"| {row['sops_per_image']:,.0f} | {row['neuromorphic_energy_uj']:.3f} |"
        )
    if not benchmark.paper:
        lines += [
            "",
            f"Growth rules, the single-spike network and the ESL-SNN paper's targets are MNIST only: "
            f"not run for {benchmark.name}.",
        ]
        if results.get("missing"):
            lines += ["", f"Not finished (left out above): {', '.join(results['missing'])}."]
        energy = f"Energy constants: MAC {E_MAC * 1e12} pJ, AC {E_AC * 1e12} pJ (45 nm, Horowitz 2014)."
        return "\n".join([*lines, "", energy, ""])
    lines += [
        "",
        "Growth rules (test accuracy, integer mode):",
        "",
        "| density | rule | accuracy |",
        "| ---: | --- | ---: |",
    ]
    for row in summary["growth_rules"]:
        lines.append(f"| {row['target']} | {row['grow']} | {_accuracy(row['integer'])} |")
    single = summary["single_spike"]
    if single:
        lines += [
            "",
            f"Single spike (ε = 60): {100 * single['test_accuracy']:.2f}% test, {single['connections']:,} "
            f"connections (density {single['density']:.3f}), best epoch {single['best_epoch']}.",
        ]
    tuning = results.get("single_spike_tuning")
    if tuning:
        lines += [
            "",
            "Single-spike variants tried (30 epochs each; the config was chosen by validation accuracy):",
            "",
            "| variant | seed | validation | test | best epoch |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for row in tuning:
            lines.append(
                f"| {row['variant']} | {row['seed']} | {100 * row['val_accuracy']:.2f}% "
                f"| {100 * row['test_accuracy']:.2f}% | {row['best_epoch']} |"
            )
    lines += ["", "Targets:", ""]
    for row in summary["multi_spike"]:
        if row["target"] in TARGETS:
            goal, got = TARGETS[row["target"]], row["integer"]["min"]
            verdict = "met" if got >= goal else "NOT met"
            claim = f"≥ {100 * goal:.2f}%, worst seed {100 * got:.2f}%"
            lines.append(f"- density {row['target']}: {claim}: {verdict}")
    if single:
        verdict = "met" if single["test_accuracy"] >= SINGLE_TARGET else "NOT met"
        lines.append(
            f"- single spike: ≥ {100 * SINGLE_TARGET:.2f}%, "
            f"got {100 * single['test_accuracy']:.2f}%: {verdict}"
        )
    if results.get("missing"):
        lines += ["", f"Not finished (left out above): {', '.join(results['missing'])}."]
    lines += ["", f"Energy constants: MAC {E_MAC * 1e12} pJ, AC {E_AC * 1e12} pJ (45 nm, Horowitz 2014).", ""]
    return "\n".join(lines)


def write_results(results: dict[str, Any], out: Path, plots: bool = True) -> None:
    """``accuracy_density.json``/``.md`` (and the figures) from the per-run rows in ``results``."""
    summary = summarise(results["runs"], results.get("growth_seeds"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "accuracy_density.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "accuracy_density.md").write_text(_markdown(results, summary))
    if plots and summary["multi_spike"]:
        _plots(summary, out, benchmark_of(results.get("dataset", "mnist")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset",
        choices=tuple(BENCHMARKS),
        default="mnist",
        help="mnist (the whole benchmark) or fashion-mnist (the density sweep alone)",
    )
    parser.add_argument(
        "--data",
        help="IDX or NPZ folder (default: the configs' data.path; MNIST's: the embedded subset)",
    )
    parser.add_argument("--runs", type=Path, default=Path("runs/bench"))
    parser.add_argument(
        "--out", type=Path, help="results folder (default: docs/benchmarks, Fashion-MNIST: its subfolder)"
    )
    parser.add_argument("--epochs", type=int, help="override every config's epochs")
    parser.add_argument("--single-epochs", type=int, help="override the single-spike config's epochs")
    parser.add_argument("--train-samples", type=int, help="use only the first N training images")
    parser.add_argument("--test-samples", type=int, help="score on the first N test images only")
    parser.add_argument("--delta-t", type=int, help="override every config's ESL update interval")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of the density sweep")
    parser.add_argument(
        "--densities", type=float, nargs="*", help="densities of the sweep (default: the dataset's)"
    )
    parser.add_argument(
        "--grow-rules", nargs="+", choices=GROW_RULES, default=list(GROW_RULES), help="growth rules compared"
    )
    parser.add_argument(
        "--growth-seeds", type=int, default=1, help="how many of --seeds the growth rules use"
    )
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once (processes)")
    parser.add_argument("--skip-growth", action="store_true")
    parser.add_argument("--skip-single", action="store_true")
    parser.add_argument("--replot", type=Path, help="rewrite the Markdown and figures from this JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.replot:  # into --out, else the folder of the JSON's dataset
        results = json.loads(args.replot.read_text())
        write_results(results, args.out or benchmark_of(results.get("dataset", "mnist")).out)
        return
    benchmark = benchmark_of(args.dataset)
    out = args.out if args.out is not None else benchmark.out
    started, load_start = time.monotonic(), _load()
    jobs = plan_jobs(args)
    data = jobs[0].config.data.path if jobs else args.data
    if data is not None and not Path(data).is_dir():
        parser.error(f"{benchmark.name} data folder {data} is missing (give --data DIR)")
    results: dict[str, Any] = {
        "command": "python bench/accuracy_density.py " + " ".join(_argv(args)),
        "dataset": args.dataset,
        "data": data or "the embedded MNIST subset (6,000 train incl. validation / 1,000 test images)",
        "device": args.device,
        "jobs": args.jobs,
        "test_samples": args.test_samples,
        "machine": _machine(),
        "load_average": {"start": load_start, "end": None},
        "config_epochs": sorted(
            {
                load_config(sweep_config(benchmark, job.density)).train.epochs
                for job in jobs
                if job.kind == "multi"
            }
        ),
        "wall_seconds": None,
        "growth_seeds": args.seeds[: args.growth_seeds],
        "runs": [],
        "missing": [job.name for job in jobs],
    }
    context = multiprocessing.get_context("spawn")  # CUDA does not survive fork
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
        futures = {pool.submit(run_job, job, args.runs, args.test_samples): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            try:
                row = future.result()
            except Exception:  # one failed run must not lose the others
                log.exception("run %s failed", job.name)
                continue
            results["runs"].append(row)
            results["missing"].remove(job.name)
            log.info("%s: test %s", job.name, row.get("test_accuracy_integer", row.get("test_accuracy")))
            write_results(results, out, plots=False)
    results["load_average"]["end"] = _load()
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    write_results(results, out)


def _argv(args: argparse.Namespace) -> list[str]:
    parts = [] if args.dataset == "mnist" else ["--dataset", args.dataset]
    keys = ("data", "epochs", "single_epochs", "train_samples", "test_samples", "delta_t", "device", "jobs")
    for key in keys:
        value = getattr(args, key)
        if value is not None and (key, value) not in (("device", "cpu"), ("jobs", 1)):
            parts += [f"--{key.replace('_', '-')}", str(value)]
    if args.densities is not None and args.densities != list(benchmark_of(args.dataset).densities):
        parts += ["--densities", *map(str, args.densities)]
    if args.grow_rules != list(GROW_RULES):
        parts += ["--grow-rules", *args.grow_rules]
    if args.seeds != [0]:
        parts += ["--seeds", *map(str, args.seeds)]
    if args.growth_seeds != 1:
        parts += ["--growth-seeds", str(args.growth_seeds)]
    return parts + [
        flag for flag, on in (("--skip-growth", args.skip_growth), ("--skip-single", args.skip_single)) if on
    ]


if __name__ == "__main__":
    main()
