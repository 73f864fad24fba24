"""Training and scoring one benchmark run: the helpers the accuracy benches share.

A :class:`Job` is one training run (its folder name, what it measures, its config);
:func:`_override` applies a bench's command-line options to a config; :func:`run_job` trains a job
(or reuses a finished run, resumes an interrupted one, :func:`_run`) and scores it on its data's
test split: a multi-spike LIF net in float and in the exact integer mode, with its connections,
FLOPs and energies (the constants below), or a single-spike net. :func:`_machine` and
:func:`_load` record what the results were measured on. Used by ``accuracy_density.py``,
``fig3_fashion.py``, ``fig4_prune_growth.py``, ``low_density.py``, ``mixed_precision.py`` and the
single-spike benches (``bench/`` is not a package: they import this module by its name).

Energy constants (45 nm, Horowitz, ISSCC 2014): a 32-bit float multiply-accumulate 4.6 pJ, an
accumulate 0.9 pJ (see ``accuracy_density.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from esl_hw.datasets import load_dataset
from esl_hw.train.checkpoint import work_folder
from esl_hw.train.config import Config
from esl_hw.train.export import load_checkpoint, net_from_checkpoint
from esl_hw.train.loop import train
from esl_hw.train.model import encode_batch
from esl_hw.train.single_spike import SingleSpikeNet

E_MAC, E_AC = 4.6e-12, 0.9e-12
CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@dataclasses.dataclass(frozen=True)
class Job:
    """One training run of the benchmark: its folder name, what it measures and its config."""

    name: str
    kind: str  # "multi" (density sweep), "grow" (growth-rule comparison) or "single"
    seed: int
    config: Config
    density: float | None = None
    grow: str | None = None


def _override(
    config: Config, args: argparse.Namespace, seed: int, epochs: int | None, **sparsity: Any
) -> Config:
    if args.delta_t is not None:
        sparsity["delta_t"] = args.delta_t
    path = args.data if args.data is not None else config.data.path  # MNIST's configs: None, embedded
    data = dataclasses.replace(config.data, path=path, train_samples=args.train_samples)
    train_config = dataclasses.replace(config.train, device=args.device)
    if epochs is not None:
        train_config = dataclasses.replace(train_config, epochs=epochs)
    return dataclasses.replace(
        config,
        seed=seed,
        data=data,
        train=train_config,
        sparsity=dataclasses.replace(config.sparsity, **sparsity),
    )


def _run(config: Config, out: Path) -> Path:
    """Train ``config`` into ``out`` unless done; resume an interrupted run."""
    if (out / "checkpoint.pt").is_file():
        return out
    train(config, out, progress=False, resume=work_folder(out).joinpath("state.pt").is_file(), force=True)
    return out


def run_job(job: Job, runs: Path, test_samples: int | None = None) -> dict[str, Any]:
    """Train (or reuse) ``job``'s run and score it on its data's test split, or on the split's first
    ``test_samples`` images (in a worker process)."""
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    test = load_dataset(job.config.data.path).test.head(test_samples)
    run = _run(job.config, runs / job.name)
    score = _score_single if job.kind == "single" else _score_lif
    return {
        "name": job.name,
        "kind": job.kind,
        "seed": job.seed,
        "target": job.density,
        "grow": job.grow,
        **score(run, test.images, test.labels),
    }


@torch.no_grad()
def _score_lif(run: Path, images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    checkpoint = load_checkpoint(run)
    net, config = net_from_checkpoint(checkpoint)
    correct_float = correct_int = 0
    sops = 0.0
    fanouts = [mask.sum(dim=1).to(torch.float64) for mask in net.masks()]
    for start in range(0, len(labels), 1000):
        spikes = encode_batch(images[start : start + 1000], net.timesteps)
        target = torch.from_numpy(labels[start : start + 1000])
        correct_float += int((net(spikes, mode="float").argmax(dim=1) == target).sum())
        trace = net.forward_integer(spikes)
        correct_int += int((trace.predictions == target).sum())
        for layer_input, fanout in zip([spikes, *trace.spikes], fanouts, strict=True):
            sops += float(layer_input.to(torch.float64).sum(dim=(0, 1)) @ fanout)
    connections = sum(int(mask.sum()) for mask in net.masks())
    dense = sum(mask.numel() for mask in net.masks())
    macs = net.timesteps * connections
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {
        "run": str(run),
        "best_epoch": checkpoint["epoch"],
        "val_accuracy": checkpoint["val_accuracy"],
        "test_accuracy_float": correct_float / len(labels),
        "test_accuracy_integer": correct_int / len(labels),
        "test_images": len(labels),
        "layer_sizes": list(net.sizes),
        "connections": connections,
        "density": connections / dense,
        "layer_density": [float(mask.float().mean()) for mask in net.masks()],
        "flops": 2 * macs,
        "gpu_energy_uj": macs * E_MAC * 1e6,
        "sops_per_image": sops / len(labels),
        "neuromorphic_energy_uj": sops / len(labels) * E_AC * 1e6,
        "train_seconds": sum(record["seconds"] for record in records),
        "density_history": [record["density"] for record in records],
        "ever_active_history": [
            [layer["ever_active"] for layer in update["layers"]]
            for record in records
            for update in record["esl_updates"]
        ],
        "config": config.sparsity.__dict__ | {"epochs": config.train.epochs},
    }


@torch.no_grad()
def _score_single(run: Path, images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    checkpoint = load_checkpoint(run)
    model = checkpoint["config"]["model"]
    net = SingleSpikeNet(model["hidden"], levels=model["levels"], t_max=model["t_max"])
    net.load_state_dict(checkpoint["model"])
    predictions = torch.cat(
        [net.predict(torch.from_numpy(images[s : s + 500])) for s in range(0, len(labels), 500)]
    )
    connections = sum(int(mask.sum()) for mask in net.masks())
    return {
        "run": str(run),
        "best_epoch": checkpoint["epoch"],
        "val_accuracy": checkpoint["val_accuracy"],
        "test_accuracy": float((predictions.numpy() == labels).mean()),
        "connections": connections,
        "density": connections / sum(mask.numel() for mask in net.masks()),
        "train_seconds": sum(
            json.loads(line)["seconds"] for line in (run / "metrics.jsonl").read_text().splitlines()
        ),
    }


def _machine() -> dict[str, Any]:
    """What the results were measured on: CPU model, cores, Python and torch versions."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        models = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line
        ]
        cpu = models[0] if models else cpu
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def _load() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]
