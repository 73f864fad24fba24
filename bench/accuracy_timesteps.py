"""Accuracy against the number of time steps T: the 784-800-10 multi-spike LIF network trained with
ESL at T = 2, 4, 6, 8 and densities 0.05 and 0.1, scored by the integer reference on the whole test set.

Fewer time steps mean fewer input events and synaptic operations per inference, so fewer cycles on the
core: the table puts each model's integer accuracy beside its mean SOPs per image and the cycle floor
``max_l (SOPs_l + T·N_l) / L`` (docs/metrics.md) at a few lane counts, the figures the latency
benchmark (bench/latency.py) starts from.

Each run trains ``configs/mnist_multispike_d<density>.yaml`` with ``model.timesteps`` replaced, into
``--runs``/mnist_T<T>_d<density>; a finished run is reused and an interrupted one resumed, so the sweep can
be carried out in pieces; the tables are drawn from the runs complete so far and say how many. The
artifact of every finished run is exported to ``<run>/model`` (``esl-hw export``'s format).

    python bench/accuracy_timesteps.py --data ../shared/data/mnist --epochs 15

writes docs/benchmarks/accuracy_timesteps.json and .md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from esl_hw.artifact import Model
from esl_hw.artifact_io import load_model, save_model
from esl_hw.datasets import load_dataset
from esl_hw.encoding import encode
from esl_hw.metrics import cycle_floor, synaptic_ops
from esl_hw.reference import argmax_lowest, run
from esl_hw.train.checkpoint import work_folder
from esl_hw.train.config import Config, load_config
from esl_hw.train.export import export_run
from esl_hw.train.loop import train

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
TIMESTEPS = (2, 4, 6, 8)
DENSITIES = (0.05, 0.1)
LANES = (16, 32, 64)
BATCH = 1000


@dataclasses.dataclass(frozen=True)
class Job:
    """One training run: time steps, density and the config it trains."""

    timesteps: int
    density: float
    config: Config

    @property
    def name(self) -> str:
        return f"mnist_T{self.timesteps}_d{self.density}"


def job_config(density: float, timesteps: int, data: Path, epochs: int | None, seed: int) -> Config:
    """``configs/mnist_multispike_d<density>.yaml`` at ``timesteps``, ``epochs`` (None: the config's),
    on the IDX folder ``data``, on the CPU."""
    config = load_config(CONFIGS / f"mnist_multispike_d{density}.yaml")
    train_config = dataclasses.replace(config.train, device="cpu", threads=1)
    if epochs is not None:
        train_config = dataclasses.replace(train_config, epochs=epochs)
    return dataclasses.replace(
        config,
        seed=seed,
        data=dataclasses.replace(config.data, path=str(data)),
        model=dataclasses.replace(config.model, timesteps=timesteps),
        train=train_config,
    )


def plan(args: argparse.Namespace) -> list[Job]:
    """Every (T, density) run, in the order given on the command line (T outer)."""
    return [
        Job(timesteps, density, job_config(density, timesteps, args.data, args.epochs, args.seed))
        for timesteps in args.timesteps
        for density in args.densities
    ]


def finished(folder: Path) -> bool:
    """Whether the run in ``folder`` completed (its checkpoint is written at the end)."""
    return (folder / "checkpoint.pt").is_file()


def train_job(job: Job, runs: Path) -> Path:
    """Train ``job`` into ``runs/<name>`` unless finished; resume an interrupted run."""
    folder = runs / job.name
    if not finished(folder):
        resume = work_folder(folder).joinpath("state.pt").is_file()
        train(job.config, folder, progress=True, resume=resume, force=True)
    return folder


def exported(folder: Path) -> Model:
    """The run's artifact, exported once into ``<run>/model``."""
    target = folder / "model"
    if not (target / "model.yaml").is_file():
        save_model(export_run(folder), target)
    return load_model(target)


def score(model: Model, images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Integer accuracy (the reference, equal to the RTL) and mean SOPs per layer over ``images``."""
    correct = 0
    layer_sops = np.zeros(len(model.layers), dtype=np.float64)
    for start in range(0, len(labels), BATCH):
        spikes = encode(images[start : start + BATCH], model.timesteps, model.encoder)
        trace = run(model, spikes, record_potentials=False)
        correct += int((argmax_lowest(trace.outputs) == labels[start : start + BATCH]).sum())
        layer_sops += synaptic_ops(model, spikes, trace).sum(axis=0)
    layer_sops /= len(labels)
    return {
        "accuracy": correct / len(labels),
        "test_images": len(labels),
        "sops_per_image": float(layer_sops.sum()),
        "layer_sops_per_image": [float(value) for value in layer_sops],
        "synapses": int(sum(layer.nnz for layer in model.layers)),
        "floor_cycles": {str(lanes): cycle_floor(model, layer_sops, lanes) for lanes in LANES},
    }


def row(job: Job, folder: Path, images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """The table row of a finished run."""
    model = exported(folder)
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return {
        "timesteps": job.timesteps,
        "density": job.density,
        "run": os.path.relpath(folder, ROOT),
        "epochs": job.config.train.epochs,
        "best_epoch": int(model.metadata.get("epoch", -1)),
        "train_seconds": sum(record["seconds"] for record in records),
        **score(model, images, labels),
    }


def markdown(results: dict[str, Any]) -> str:
    """The Markdown page of ``results``."""
    rows = results["rows"]
    lines = [
        "# MNIST accuracy against time steps",
        "",
        f"Generated by `{results['command']}` on {results['date']}. The multi-spike LIF 784-800-10 trained "
        "with ESL (configs/mnist_multispike_d<density>.yaml, seed "
        f"{results['seed']}, with `model.timesteps` = T), {results['epochs_note']}; accuracy is the integer "
        f"reference (bit-exact with the RTL) on all {results['test_images']:,} test images. Runs complete: "
        f"{len(rows)} of {results['planned']}.",
        "",
        f"Machine: {results['machine']}; load average at the start {results['load_start']}, at the end "
        f"{results['load_end']}.",
        "",
        "SOPs: synaptic operations per image (mean). Floor: `max_l (SOPs_l + T·N_l) / L` cycles per "
        "inference (docs/metrics.md), the least the core can take with L lanes before its fixed costs.",
        "",
        "| T | density | synapses | epochs (best) | integer accuracy | SOPs / image | "
        + " | ".join(f"floor L={lanes}" for lanes in LANES)
        + " | training min |",
        "| ---: | ---: | ---: | --- | ---: | ---: | " + " | ".join("---:" for _ in LANES) + " | ---: |",
    ]
    for item in sorted(rows, key=lambda r: (r["density"], r["timesteps"])):
        floors = " | ".join(f"{item['floor_cycles'][str(lanes)]:,.0f}" for lanes in LANES)
        lines.append(
            f"| {item['timesteps']} | {item['density']} | {item['synapses']:,} | {item['epochs']} "
            f"({item['best_epoch']}) | {100 * item['accuracy']:.2f}% | {item['sops_per_image']:,.0f} | "
            f"{floors} | {item['train_seconds'] / 60:.1f} |"
        )
    lines += ["", f"Trained run folders: `{results['runs']}` (not committed)."]
    return "\n".join(lines) + "\n"


def machine() -> str:
    """CPU model, cores and torch version."""
    cpu = platform.machine()
    info = Path("/proc/cpuinfo")
    if info.is_file():
        lines = info.read_text().splitlines()
        names = [line.split(":", 1)[1].strip() for line in lines if "model name" in line]
        cpu = names[0] if names else cpu
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, one torch thread, CPU"


def load() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="MNIST IDX folder")
    parser.add_argument("--timesteps", type=int, nargs="+", default=list(TIMESTEPS))
    parser.add_argument("--densities", type=float, nargs="+", default=list(DENSITIES))
    parser.add_argument("--epochs", type=int, help="override the configs' epochs (30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "timesteps")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    parser.add_argument("--only-finished", action="store_true", help="train nothing: tabulate finished runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = load()
    test = load_dataset(args.data).test
    jobs = plan(args)
    rows = []
    for job in jobs:
        folder = args.runs / job.name
        if not args.only_finished:
            began = time.perf_counter()
            train_job(job, args.runs)
            print(f"{job.name}: trained in {(time.perf_counter() - began) / 60:.1f} min", flush=True)
        if finished(folder):
            rows.append(row(job, folder, test.images, test.labels))
            write(args, jobs, rows, started)
            print(f"{job.name}: integer accuracy {100 * rows[-1]['accuracy']:.2f}%", flush=True)
    write(args, jobs, rows, started)


def write(args: argparse.Namespace, jobs: list[Job], rows: list[dict[str, Any]], started: str) -> None:
    """Write the JSON and Markdown of the rows so far."""
    epochs = sorted({row["epochs"] for row in rows})
    results = {
        "command": "python bench/accuracy_timesteps.py --data MNIST"
        + (f" --epochs {args.epochs}" if args.epochs is not None else ""),
        "date": time.strftime("%Y-%m-%d"),
        "seed": args.seed,
        "epochs_note": f"{', '.join(map(str, epochs)) or '-'} epochs per run on the CPU (the configs say 30)",
        "test_images": rows[0]["test_images"] if rows else 0,
        "planned": len(jobs),
        "machine": machine(),
        "load_start": started,
        "load_end": load(),
        "runs": os.path.relpath(args.runs, ROOT),
        "lanes": list(LANES),
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accuracy_timesteps.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "accuracy_timesteps.md").write_text(markdown(results))


if __name__ == "__main__":
    main()
