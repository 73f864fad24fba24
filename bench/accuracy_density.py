"""Accuracy vs density on MNIST (ESL-SNN paper, Fig. 2, Fig. 3b, Fig. 4 and Table 1).

Trains the paper's MNIST experiments from the configs in ``configs/`` and scores them on the test set:

- multi-spike LIF 784-800-10 at densities 1.0, 0.3, 0.1, 0.05, 0.01 (``mnist_multispike_d*.yaml``),
  test accuracy in float mode and in the exact integer mode (what the hardware computes);
- growth rules gradient, momentum, random and random-unfired at densities 0.1 and 0.01 (Fig. 4);
- single-spike (Mostafa) 784-800-10 at ε = 60 (``mnist_singlespike_eps60.yaml``);
- Table 1 for the multi-spike models: parameters, density, FLOPs and energies (constants below).

Each run goes to ``--runs/<name>``; a finished run is reused and an interrupted one resumed, so the
script can be stopped and started again. Results: ``<out>/accuracy_density.json`` and ``.md``, plots
``fig2_accuracy_density.png``, ``fig3b_layer_density.png``, ``fig4_growth_rules.png``.

Energy constants (45 nm, Horowitz, ISSCC 2014, the values the SNN literature uses): a 32-bit float
multiply-accumulate 4.6 pJ (GPU energy: every stored weight is used at every step, FLOPs = 2 · MACs),
an accumulate 0.9 pJ (neuromorphic energy: one accumulate per synaptic operation, i.e. per input spike
and outgoing synapse, counted on the test set in integer mode).

Usage (hours of CPU on full MNIST)::

    python bench/accuracy_density.py --data /path/to/mnist-idx --runs runs/bench
    python bench/accuracy_density.py --epochs 1 --train-samples 1000   # smoke test, embedded subset
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from esl_hw.datasets import load_mnist
from esl_hw.train.checkpoint import work_folder
from esl_hw.train.config import Config, load_config
from esl_hw.train.export import load_checkpoint, net_from_checkpoint
from esl_hw.train.loop import train
from esl_hw.train.model import encode_batch
from esl_hw.train.single_spike import SingleSpikeNet

E_MAC, E_AC = 4.6e-12, 0.9e-12
DENSITIES = (1.0, 0.3, 0.1, 0.05, 0.01)
GROW_RULES = ("gradient", "momentum", "random", "random-unfired")
GROW_DENSITIES = (0.1, 0.01)
CONFIGS = Path(__file__).resolve().parent.parent / "configs"
log = logging.getLogger("accuracy_density")


def _override(config: Config, args: argparse.Namespace, **sparsity: Any) -> Config:
    if args.delta_t is not None:
        sparsity["delta_t"] = args.delta_t
    data = dataclasses.replace(config.data, path=args.data, train_samples=args.train_samples)
    train_config = (
        config.train if args.epochs is None else dataclasses.replace(config.train, epochs=args.epochs)
    )
    return dataclasses.replace(
        config, data=data, train=train_config, sparsity=dataclasses.replace(config.sparsity, **sparsity)
    )


def _run(config: Config, out: Path) -> Path:
    """Train ``config`` into ``out`` unless done; resume an interrupted run."""
    if (out / "checkpoint.pt").is_file():
        return out
    train(config, out, progress=True, resume=work_folder(out).joinpath("state.pt").is_file(), force=True)
    return out


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
        "connections": connections,
        "density": connections / dense,
        "layer_density": [float(mask.float().mean()) for mask in net.masks()],
        "flops": 2 * macs,
        "gpu_energy_uj": macs * E_MAC * 1e6,
        "sops_per_image": sops / len(labels),
        "neuromorphic_energy_uj": sops / len(labels) * E_AC * 1e6,
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
    }


def _plots(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    multi = results["multi_spike"]
    densities = [row["density"] for row in multi]
    figure, left = plt.subplots(figsize=(5, 3.5))
    left.plot(densities, [100 * row["test_accuracy_integer"] for row in multi], "o-", label="test accuracy")
    left.set_xscale("log")
    left.set_xlabel("density")
    left.set_ylabel("test accuracy (%)")
    right = left.twinx()
    right.plot(
        densities, [row["connections"] for row in multi], "s--", color="tab:orange", label="connections"
    )
    right.set_ylabel("connections")
    figure.suptitle("MNIST 784-800-10, ESL (Fig. 2)")
    figure.tight_layout()
    figure.savefig(out / "fig2_accuracy_density.png", dpi=120)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(5, 3.5))
    for row in multi:
        history = np.array(row["ever_active_history"], dtype=float)
        if len(history):
            axis.plot(history[:, 0] / 627200, label=f"d={row['density']:.2f}")
    axis.set_xlabel("ESL update")
    axis.set_ylabel("layer 1: fraction ever active")
    axis.legend(fontsize=7)
    figure.suptitle("Layer 1 exploration over training (Fig. 3b)")
    figure.tight_layout()
    figure.savefig(out / "fig3b_layer_density.png", dpi=120)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(5, 3.5))
    width = 0.2
    for index, rule in enumerate(GROW_RULES):
        rows = [row for row in results["growth_rules"] if row["grow"] == rule]
        axis.bar(
            np.arange(len(rows)) + index * width,
            [100 * row["test_accuracy_integer"] for row in rows],
            width,
            label=rule,
        )
    axis.set_xticks(np.arange(len(GROW_DENSITIES)) + 1.5 * width, [f"d={d}" for d in GROW_DENSITIES])
    axis.set_ylabel("test accuracy (%)")
    axis.legend(fontsize=7)
    figure.suptitle("Growth rules (Fig. 4)")
    figure.tight_layout()
    figure.savefig(out / "fig4_growth_rules.png", dpi=120)
    plt.close(figure)


def _markdown(results: dict[str, Any]) -> str:
    lines = [
        "# MNIST accuracy vs density (ESL)",
        "",
        f"Reproduce: `{results['command']}`.",
        "",
        f"Data: {results.get('data', 'MNIST')}; test accuracy on its test split; one seed (0) per run.",
        "",
        "| density | connections | test acc. integer | test acc. float | FLOPs | GPU energy (µJ) | SOPs/img "
        "| neuromorphic energy (µJ) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results["multi_spike"]:
        lines.append(
            f"| {row['density']:.3f} | {row['connections']:,} | {100 * row['test_accuracy_integer']:.2f}% "
            f"| {100 * row['test_accuracy_float']:.2f}% | {row['flops']:,} | {row['gpu_energy_uj']:.2f} "
            f"| {row['sops_per_image']:,.0f} | {row['neuromorphic_energy_uj']:.3f} |"
        )
    lines += [
        "",
        "Growth rules (test accuracy, integer mode):",
        "",
        "| density | rule | accuracy |",
        "| ---: | --- | ---: |",
    ]
    for row in results["growth_rules"]:
        lines.append(f"| {row['target']} | {row['grow']} | {100 * row['test_accuracy_integer']:.2f}% |")
    single = results.get("single_spike")
    if single:
        lines += [
            "",
            f"Single spike (ε = 60): {100 * single['test_accuracy']:.2f}% test, {single['connections']:,} "
            f"connections (density {single['density']:.3f}).",
        ]
    lines += ["", f"Energy constants: MAC {E_MAC * 1e12} pJ, AC {E_AC * 1e12} pJ (45 nm, Horowitz 2014).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="MNIST IDX folder (default: the embedded subset)")
    parser.add_argument("--runs", type=Path, default=Path("runs/bench"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--epochs", type=int, help="override every config's epochs")
    parser.add_argument("--train-samples", type=int, help="use only the first N training images")
    parser.add_argument("--delta-t", type=int, help="override every config's ESL update interval")
    parser.add_argument("--skip-growth", action="store_true")
    parser.add_argument("--skip-single", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    test = load_mnist(args.data).test
    results: dict[str, Any] = {
        "command": "python bench/accuracy_density.py " + " ".join(_argv(args)),
        "data": args.data or "the embedded MNIST subset (6,000 train incl. validation / 1,000 test images)",
    }
    results["multi_spike"] = []
    for density in DENSITIES:
        config = _override(load_config(CONFIGS / f"mnist_multispike_d{density}.yaml"), args)
        row = _score_lif(_run(config, args.runs / f"multi_d{density}"), test.images, test.labels)
        results["multi_spike"].append(row)
        log.info("density %s: test %.4f", density, row["test_accuracy_integer"])
    results["growth_rules"] = []
    for density in () if args.skip_growth else GROW_DENSITIES:
        for rule in GROW_RULES:
            config = _override(load_config(CONFIGS / f"mnist_multispike_d{density}.yaml"), args, grow=rule)
            row = _score_lif(_run(config, args.runs / f"grow_{rule}_d{density}"), test.images, test.labels)
            results["growth_rules"].append({"grow": rule, "target": density, **row})
    if not args.skip_single:
        config = _override(load_config(CONFIGS / "mnist_singlespike_eps60.yaml"), args)
        results["single_spike"] = _score_single(
            _run(config, args.runs / "single_eps60"), test.images, test.labels
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accuracy_density.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "accuracy_density.md").write_text(_markdown(results))
    _plots(results, args.out)


def _argv(args: argparse.Namespace) -> list[str]:
    parts = []
    for key in ("data", "epochs", "train_samples", "delta_t"):
        value = getattr(args, key)
        if value is not None:
            parts += [f"--{key.replace('_', '-')}", str(value)]
    return parts + [
        flag for flag, on in (("--skip-growth", args.skip_growth), ("--skip-single", args.skip_single)) if on
    ]


if __name__ == "__main__":
    main()
