"""ESL-SNN paper Fig. 3 on CPU: (a) VGGSNN accuracy vs density, (b) per-layer density with redistribution.

Stand-in data: the paper's Fig. 3 uses CIFAR-10/100 and DVS-CIFAR10, which are not on this project's
machines (and hours of GPU at full size); here VGGSNN runs on Fashion-MNIST (``data.dataset: images``,
28×28 grey, whole 10,000-image test split), reduced in width, time steps, training images and epochs
so that the whole sweep fits about an hour of one CPU core. Every figure and table says so. The conv
nets train in float (there is no integer export for them): their accuracy is float accuracy.

- Fig. 3(a): VGGSNN (``configs/fashion_mnist_vggsnn_d0.1.yaml``) at densities 0.01, 0.05, 0.1, 0.3,
  1.0 (ERK), ``redistribute: none``, one seed.
- Fig. 3(b): the per-layer density after every ESL update with ``redistribute`` ``none`` (constant by
  construction), ``momentum`` and ``magnitude``, at overall density 0.1, on the same reduced VGGSNN
  (its ``none`` run is Fig. 3(a)'s density 0.1) and on the MLP 784-800-10 multi-spike on MNIST
  (``configs/mnist_multispike_d0.1.yaml`` with both layers sparse and started at the same density,
  ``init: uniform``, so that density can move either way; the config keeps the output layer dense,
  which leaves nothing to redistribute).

Runs go to ``--runs/<name>``, one at a time, each in a fresh process with one torch thread
(:func:`fig4_prune_growth.sweep`); a finished run is reused, an interrupted one resumed, runs already
scored in the results JSONs are not run again, and ``--budget-minutes`` starts no run that would end
after it. Results, from whatever runs are complete and saying how many: ``<out>/fig3a_fashion_vggsnn``
and ``<out>/fig3b_redistribution`` ``.json``/``.md``/``.png``, written by ``fig3_fashion_report.py``.

Usage::

    python bench/fig3_fashion.py --budget-minutes 70        # the reduced settings below
    python bench/fig3_fashion.py --replot                   # tables and figures from the JSONs
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

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fig4_prune_growth as fig4  # noqa: E402
import train_runs  # noqa: E402  (bench/ is not a package)
from fig3_fashion_report import FIG3A, FIG3B, FIG3B_DENSITY, RULES, STAND_IN, write_results  # noqa: E402

from esl_hw.app.cli import _non_negative_int, _positive_int  # noqa: E402  (one line, exit 2)
from esl_hw.train.config import Config, config_from_dict, load_config  # noqa: E402
from esl_hw.train.export import load_checkpoint  # noqa: E402
from esl_hw.train.tasks import load_vision_test, task_for  # noqa: E402

DENSITIES = (0.1, 1.0, 0.01, 0.3, 0.05)  # the order they run in: 0.1 is also Fig. 3(b)'s
FASHION = "/usr/share/datasets/fashion-mnist"
MNIST = "/work/shared/data/mnist"
log = logging.getLogger("fig3_fashion")


@dataclasses.dataclass(frozen=True)
class Run:
    """One training: ``model`` is ``vggsnn`` or ``mlp``; ``figures`` the figures it is drawn in."""

    name: str
    model: str
    density: float
    redistribute: str
    figures: tuple[str, ...]
    config: Config


def _overrides(data: str, train_samples: int | None, delta_t: int) -> argparse.Namespace:
    """What :func:`train_runs._override` reads besides the seed and epochs."""
    return argparse.Namespace(data=data, train_samples=train_samples, device="cpu", delta_t=delta_t)


def vgg_config(args: argparse.Namespace, density: float, redistribute: str) -> Config:
    """The reduced VGGSNN run: the config's, with ``args``' data, width, time steps, samples, epochs."""
    base = load_config(train_runs.CONFIGS / "fashion_mnist_vggsnn_d0.1.yaml")
    overrides = _overrides(args.data, args.train_samples, args.delta_t)
    config = train_runs._override(
        base, overrides, args.seed, args.epochs, density=density, redistribute=redistribute
    )
    model = dataclasses.replace(config.model, width=args.width, timesteps=args.timesteps)
    return dataclasses.replace(config, model=model)


def mlp_config(args: argparse.Namespace, redistribute: str) -> Config:
    """The MLP run: ``mnist_multispike_d0.1.yaml`` with both layers sparse from the same density."""
    base = load_config(train_runs.CONFIGS / "mnist_multispike_d0.1.yaml")
    overrides = _overrides(args.mnist, None, args.mlp_delta_t)
    return train_runs._override(
        base,
        overrides,
        args.seed,
        args.mlp_epochs,
        dense_layers=(),
        init="uniform",
        redistribute=redistribute,
    )


def plan(args: argparse.Namespace) -> list[Run]:
    """Every run, the most telling first: VGGSNN at 0.1 (both figures), its redistributed runs, the MLP
    (minutes), the other densities, VGGSNN ``magnitude`` last."""
    suffix = "" if args.seed == 0 else f"_s{args.seed}"
    runs = []
    for density in args.densities:
        figures = ("3a", "3b") if density == FIG3B_DENSITY else ("3a",)
        config = vgg_config(args, density, "none")
        runs.append(Run(f"vggsnn_d{density}_none{suffix}", "vggsnn", density, "none", figures, config))
    extra = [
        Run(
            f"vggsnn_d{FIG3B_DENSITY}_{rule}{suffix}",
            "vggsnn",
            FIG3B_DENSITY,
            rule,
            ("3b",),
            vgg_config(args, FIG3B_DENSITY, rule),
        )
        for rule in args.redistribute
        if rule != "none"
    ]
    mlp = [
        Run(
            f"mlp_d{FIG3B_DENSITY}_{rule}{suffix}",
            "mlp",
            FIG3B_DENSITY,
            rule,
            ("3b",),
            mlp_config(args, rule),
        )
        for rule in ("none", *(rule for rule in args.redistribute if rule != "none"))
    ]
    first = [run for run in runs if run.density == FIG3B_DENSITY]
    rest = [run for run in runs if run.density != FIG3B_DENSITY]
    return first + extra[:1] + mlp + rest + extra[1:]


def density_trace(run_dir: Path) -> dict[str, Any]:
    """From ``metrics.jsonl``: the layers' names, their densities at the start (``start``: before the
    first update, ``(active − grown + pruned) / size`` of that update), after every ESL update
    (``updates``: iteration and densities) and after every epoch (``epochs``)."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    updates = [update for record in records for update in record["esl_updates"]]
    names = [layer["name"] for layer in updates[0]["layers"]] if updates else []
    return {
        "layer_names": names,
        "start": [
            layer["density"] * (layer["active"] - layer["grown"] + layer["pruned"]) / layer["active"]
            for layer in (updates[0]["layers"] if updates else [])
        ],
        "updates": [
            {"iteration": update["iteration"], "density": [layer["density"] for layer in update["layers"]]}
            for update in updates
        ],
        "epochs": [record["density"] for record in records],
        "train_seconds": sum(record["seconds"] for record in records),
    }


@torch.no_grad()
def score_vgg(run_dir: Path, batch_size: int = 1000) -> dict[str, Any]:
    """Float test accuracy of the best epoch of a finished conv run on the whole test split, its layers'
    sizes and connections (from the checkpoint's masks)."""
    checkpoint = load_checkpoint(run_dir)
    config = config_from_dict(checkpoint["config"])
    task = task_for(config)
    data = task.prepare_data(config)
    net = task.build_net(config, data)
    net.load_state_dict(checkpoint["model"])
    net.eval()
    inputs, labels = load_vision_test(config)
    correct = 0
    for start in range(0, len(labels), batch_size):
        logits = task.logits(net, inputs[start : start + batch_size], "float")
        correct += int((logits.argmax(dim=1) == labels[start : start + batch_size]).sum())
    masks = checkpoint["sparse"]["masks"]
    return {
        "run": str(run_dir),
        "best_epoch": checkpoint["epoch"],
        "val_accuracy": checkpoint["val_accuracy"],
        "test_accuracy": correct / len(labels),
        "test_images": len(labels),
        "layer_params": [mask.numel() for mask in masks],
        "connections": sum(int(mask.sum()) for mask in masks),
        "density": sum(int(mask.sum()) for mask in masks) / sum(mask.numel() for mask in masks),
    }


def score_run(run: Run, runs: Path) -> dict[str, Any]:
    """Train (reuse when finished, resume when interrupted) and score ``run`` (MLP: integer and float on
    the whole MNIST test split; VGGSNN: float), with its density trace."""
    started = time.monotonic()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if run.model == "mlp":
        job = train_runs.Job(
            run.name, "multi", run.config.seed, run.config, run.density, run.config.sparsity.grow
        )
        row = train_runs.run_job(job, runs)
        row["test_accuracy"] = row["test_accuracy_float"]
        row["layer_params"] = [
            a * b for a, b in zip(row["layer_sizes"], row["layer_sizes"][1:], strict=False)
        ]
        for key in ("density_history", "ever_active_history"):
            row.pop(key)
    else:
        train_runs._run(run.config, runs / run.name)
        row = score_vgg(runs / run.name)
    trained = load_checkpoint(runs / run.name)["config"]
    if trained["train"]["epochs"] != run.config.train.epochs or (
        trained["sparsity"]["redistribute"] != run.redistribute
    ):
        raise RuntimeError(f"{runs / run.name} was trained otherwise than planned: remove it")
    return (
        row
        | density_trace(runs / run.name)
        | {
            "name": run.name,
            "model": run.model,
            "target": run.density,
            "redistribute": run.redistribute,
            "figures": list(run.figures),
            "seed": run.config.seed,
            "config": {"epochs": run.config.train.epochs, "delta_t": run.config.sparsity.delta_t},
            "wall_seconds": round(time.monotonic() - started, 1),
        }
    )


def execute(run: Run, runs: Path) -> dict[str, Any]:
    """:func:`score_run` in a fresh process (:func:`fig4_prune_growth.in_fresh_process`)."""
    return fig4.in_fresh_process(run, runs, score_run)


def refreshed(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with its density trace read anew from its run folder when that is still there (rows
    scored by an older version of this script lack ``start``)."""
    run = Path(row.get("run", ""))
    return row | density_trace(run) if (run / "metrics.jsonl").is_file() else row


def previous_rows(out: Path) -> dict[str, dict[str, Any]]:
    """Rows of the earlier results JSONs of both figures, by run name."""
    rows: dict[str, dict[str, Any]] = {}
    for stem in (FIG3A, FIG3B):
        rows |= fig4._previous(out / f"{stem}.json")
    return rows


def _command(args: argparse.Namespace, defaults: argparse.Namespace) -> str:
    parts = ["python bench/fig3_fashion.py"]
    keys = ("width", "timesteps", "train_samples", "epochs", "delta_t", "mlp_epochs", "mlp_delta_t", "seed")
    for key in keys:
        if getattr(args, key) != getattr(defaults, key):
            parts += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    if args.budget_minutes is not None:
        parts += ["--budget-minutes", f"{args.budget_minutes:g}"]
    return " ".join(parts)


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parse.add_argument("--data", default=FASHION, help="Fashion-MNIST IDX or NPZ folder")
    parse.add_argument("--mnist", default=MNIST, help="MNIST IDX folder (the MLP's)")
    parse.add_argument("--width", type=float, default=0.125, help="VGGSNN channel scale (1.0: the paper's)")
    parse.add_argument("--timesteps", type=_positive_int, default=4)
    parse.add_argument("--train-samples", type=_positive_int, default=10000, help="first N training images")
    parse.add_argument("--epochs", type=_positive_int, default=8, help="VGGSNN epochs")
    parse.add_argument("--delta-t", type=_positive_int, default=25, help="VGGSNN ESL update interval")
    parse.add_argument("--mlp-epochs", type=_positive_int, default=5)
    parse.add_argument("--mlp-delta-t", type=_positive_int, default=50)
    parse.add_argument("--densities", type=float, nargs="+", default=list(DENSITIES))
    parse.add_argument("--redistribute", nargs="+", choices=RULES, default=list(RULES))
    parse.add_argument("--seed", type=_non_negative_int, default=0)
    parse.add_argument("--runs", type=Path, default=Path("runs/fig3"))
    parse.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parse.add_argument("--budget-minutes", type=float, help="start no run that would end after this")
    parse.add_argument("--retry-seconds", type=float, default=30.0, help="wait before retrying a failed run")
    parse.add_argument("--replot", action="store_true", help="rewrite tables and figures from the JSONs")
    return parse


def main(argv: list[str] | None = None) -> None:
    parse = parser()
    args = parse.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.replot:
        results = json.loads((args.out / f"{FIG3A}.json").read_text())
        results["runs"] = [refreshed(row) for row in previous_rows(args.out).values()]
        write_results(results, args.out)
        return
    for folder in (args.data, args.mnist):
        if not Path(folder).is_dir():
            parse.error(f"data folder {folder} is missing")
    runs = plan(args)
    previous = previous_rows(args.out)
    missing = [run.name for run in fig4.pending(runs, previous)]
    vgg = runs[0].config
    channels = [max(1, round(count * args.width)) for count in (64, 128, 256, 256, 512, 512, 512, 512)]
    results: dict[str, Any] = {
        "command": _command(args, parse.parse_args([])),
        "stand_in": STAND_IN,
        "data": args.data,
        "mnist": args.mnist,
        "seed": args.seed,
        "test_images": 10000,
        "vggsnn": {
            "width": args.width,
            "channels": "-".join(map(str, channels)),
            "timesteps": args.timesteps,
            "train_samples": args.train_samples,
            "val_fraction": vgg.data.val_fraction,
            "epochs": args.epochs,
            "delta_t": args.delta_t,
            "batch_size": vgg.train.batch_size,
        },
        "mlp": {"epochs": args.mlp_epochs, "delta_t": args.mlp_delta_t},
        "planned": {figure: sum(figure in run.figures for run in runs) for figure in ("3a", "3b")},
        "machine": train_runs._machine(),
        "load_average": {"start": train_runs._load(), "end": None},
        "wall_seconds": None,
        "runs": [previous[run.name] for run in runs if run.name not in missing],
        "missing": missing,
        "failed": [],
    }
    started = time.monotonic()
    fig4.sweep(runs, args, results, execute, write_results)
    results["load_average"]["end"] = train_runs._load()
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    write_results(results, args.out)


if __name__ == "__main__":
    main()
