"""Benchmark: NIR in and out on MNIST (docs/nir.md "Measured").

Usage::

    python bench/nir_interchange.py [--data DIR] [--epochs 3] [--hidden 128] [--beta 0.875]
                                    [--models bench/models/mnist_d0.05 ...] [--out docs/benchmarks]

In: an snnTorch network (``Linear -> Leaky -> Linear -> Leaky``, default ``nn.Linear`` with bias and
``snn.Leaky`` with its subtracting reset) is trained on esl-hw's rate-encoded spikes (T = 8, spike
counts as the readout), exported with snnTorch's own ``export_to_nir``, and imported as
``esl-hw import-nir`` does (calibrated on 1,000 training images) at several weight widths; the
accuracy of snnTorch itself, of the NIR graph as a float network and of the integer reference on
the whole test set. Out: each ``--models`` artifact written as a NIR graph and run by snnTorch's
``import_from_nir`` beside the integer reference. Writes ``nir.json`` and ``nir.md`` into ``--out``.
Needs the ``nir`` extra.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from esl_hw.artifact_io import load_model
from esl_hw.datasets import Dataset, load_dataset
from esl_hw.encoding import encode
from esl_hw.interchange.nir_float import discretise, run_float
from esl_hw.interchange.nir_quantise import quantise
from esl_hw.interchange.nir_read import read_nir
from esl_hw.interchange.nir_snntorch import snntorch_predictions
from esl_hw.interchange.nir_write import model_to_graph, write_nir
from esl_hw.reference import predict

ROOT = Path(__file__).resolve().parent.parent
T = 8
BATCH = 128
W_BITS = (8, 6, 4)


def train_snntorch(data: Dataset, hidden: int, beta: float, epochs: int, seed: int = 0):
    """The snnTorch network, trained with Adam on spike counts; returns it and its test accuracy."""
    import snntorch
    import torch
    from snntorch import utils

    torch.manual_seed(seed)
    network = torch.nn.Sequential(
        torch.nn.Linear(data.n_inputs, hidden),
        snntorch.Leaky(beta=beta, init_hidden=True),
        torch.nn.Linear(hidden, data.classes),
        snntorch.Leaky(beta=beta, init_hidden=True, output=True),
    )
    optimiser = torch.optim.Adam(network.parameters(), lr=1e-3)
    labels = torch.from_numpy(data.train.labels)
    for epoch in range(epochs):
        order = np.random.default_rng(seed + epoch).permutation(len(labels))
        for start in range(0, len(order), BATCH):
            batch = order[start : start + BATCH]
            spikes = torch.from_numpy(encode(data.train.images[batch], T).astype(np.float32))
            utils.reset(network)
            counts = sum(network(spikes[t])[0] for t in range(T))
            loss = torch.nn.functional.cross_entropy(counts, labels[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(data.test.labels), 1000):
            spikes = torch.from_numpy(encode(data.test.images[start : start + 1000], T).astype(np.float32))
            utils.reset(network)
            counts = sum(network(spikes[t])[0] for t in range(T))
            correct += int((counts.argmax(1).numpy() == data.test.labels[start : start + 1000]).sum())
    return network, correct / len(data.test.labels)


def nir_in(data: Dataset, folder: Path, hidden: int, beta: float, epochs: int) -> dict[str, Any]:
    """Train, export with snnTorch, import at each of :data:`W_BITS`; the accuracies."""
    import nir
    import snntorch
    import torch

    started = time.perf_counter()
    network, own = train_snntorch(data, hidden, beta, epochs)
    seconds = time.perf_counter() - started
    path = folder / "snntorch.nir"
    nir.write(path, snntorch.export_to_nir(network, torch.zeros(1, data.n_inputs)))
    float_net = discretise(read_nir(path))
    activity = run_float(float_net, data.train.images[:1000], T).activity
    floating = run_float(float_net, data.test.images, T).predictions
    labels = data.test.labels
    rows = []
    for w_bits in W_BITS:
        imported = quantise(float_net, w_bits=w_bits, v_bits=16, timesteps=T, activity=activity)
        integer = predict(imported.model, data.test.images)
        rows.append(
            {
                "w_bits": w_bits,
                "int_accuracy": float(np.mean(integer == labels)),
                "agreement": float(np.mean(integer == floating)),
                "scales": [layer.get("scale") for layer in imported.layers],
            }
        )
    return {
        "network": f"{data.n_inputs}-{hidden}-{data.classes}",
        "beta": beta,
        "epochs": epochs,
        "train_seconds": seconds,
        "snntorch_accuracy": own,
        "float_accuracy": float(np.mean(floating == labels)),
        "imports": rows,
    }


def nir_out(data: Dataset, folder: Path, models: list[Path]) -> list[dict[str, Any]]:
    """Each model written as NIR and run by snnTorch beside the integer reference."""
    rows = []
    for path in models:
        model = load_model(path)
        graph = write_nir(model_to_graph(model), folder / f"{path.name}.nir")
        reference = predict(model, data.test.images)
        imported = snntorch_predictions(graph, data.test.images, model.timesteps, model.encoder)
        labels = data.test.labels
        rows.append(
            {
                "model": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
                "int_accuracy": float(np.mean(reference == labels)),
                "snntorch_accuracy": float(np.mean(imported == labels)),
                "agreement": float(np.mean(imported == reference)),
            }
        )
    return rows


def markdown(results: dict[str, Any]) -> str:
    into = results["in"]
    lines = [
        "# NIR in and out on MNIST",
        "",
        f"Written by `{results['command']}`; {results['test_images']} test images of {results['dataset']}; "
        f"{results['machine']}.",
        "",
        f"**In.** An snnTorch {into['network']} network (`nn.Linear` with bias, "
        f"`snn.Leaky(beta={into['beta']})` with its default subtracting reset), trained {into['epochs']} "
        f"epochs on esl-hw's rate-encoded spikes (T = {T}, {into['train_seconds']:.0f} s), exported by "
        "`snntorch.export_to_nir` and imported as `esl-hw import-nir` does, calibrated on 1,000 training "
        "images:",
        "",
        "| model | accuracy | agreement with the float graph |",
        "| --- | --- | --- |",
        f"| snnTorch itself (delayed reset) | {into['snntorch_accuracy']:.4f} | |",
        f"| NIR graph as a float network | {into['float_accuracy']:.4f} | |",
    ]
    for row in into["imports"]:
        name = f"integer reference, {row['w_bits']}-bit weights"
        lines.append(f"| {name} | {row['int_accuracy']:.4f} | {row['agreement']:.4f} |")
    lines += [
        "",
        "**Out.** Each artifact written by `esl-hw export-nir` and run by snnTorch's `import_from_nir`:",
        "",
        "| model | integer reference | snnTorch | difference (points) | same prediction |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in results["out"]:
        points = 100 * (row["snntorch_accuracy"] - row["int_accuracy"])
        accuracies = f"{row['int_accuracy']:.4f} | {row['snntorch_accuracy']:.4f}"
        lines.append(f"| `{row['model']}` | {accuracies} | {points:+.2f} | {row['agreement']:.4f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="IDX or NPZ dataset folder (default: embedded MNIST)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--beta", type=float, default=0.875)
    parser.add_argument("--models", type=Path, nargs="*", default=[ROOT / "bench" / "models" / "mnist_d0.05"])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    args = parser.parse_args()
    data = load_dataset(args.data)
    with tempfile.TemporaryDirectory(prefix="esl-hw-nir-") as folder:
        results = {
            "command": shlex.join(["python", "bench/nir_interchange.py", *sys.argv[1:]]),
            "dataset": data.source,
            "test_images": len(data.test.labels),
            "machine": f"{platform.processor() or platform.machine()}, Python {platform.python_version()}",
            "in": nir_in(data, Path(folder), args.hidden, args.beta, args.epochs),
            "out": nir_out(data, Path(folder), args.models),
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "nir.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "nir.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
