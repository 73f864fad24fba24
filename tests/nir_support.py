"""Helpers of the NIR tests: NIR files written with h5py in the layout nir.write uses (so the reader is
tested without nir itself, and with the layout of newer nir versions), a small synthetic dataset, and a
small snnTorch network trained in a few seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

T = 6


def write_graph(
    path: Path,
    nodes: dict[str, dict[str, Any]],
    edges: list[tuple[str, str]],
    version: str | None = "1.0.4",
    compression: str | None = None,
    metadata: dict[str, str] | None = None,
) -> Path:
    """A NIR file as nir.write lays it out: ``version``, ``node/type``, ``node/nodes/<name>/...``,
    ``node/edges``. Each node is ``{"type": ..., parameter: value}``; nir 1.0.8 writes gzip-compressed
    arrays (``compression="gzip"``), ``v_reset`` and a string-typed version."""
    import h5py

    strings = h5py.string_dtype()
    with h5py.File(path, "w") as handle:
        if version is not None:
            handle.create_dataset("version", data=version, dtype=strings)
        root = handle.create_group("node")
        root.create_dataset("type", data="NIRGraph", dtype=strings)
        group = root.create_group("nodes")
        for name, node in nodes.items():
            entry = group.create_group(name)
            for key, value in node.items():
                if isinstance(value, str):
                    entry.create_dataset(key, data=value, dtype=strings)
                else:
                    array = np.asarray(value)
                    options = {"compression": compression} if compression and array.ndim else {}
                    entry.create_dataset(key, data=array, **options)
        root.create_dataset("edges", data=np.array(edges, dtype=object), dtype=strings)
        if metadata:
            extra = root.create_group("metadata")
            for key, value in metadata.items():
                extra.create_dataset(key, data=value, dtype=strings)
    return path


def lif(
    n: int, beta: float = 0.875, threshold: float = 1.0, dt: float = 1e-4, **extra: Any
) -> dict[str, Any]:
    """A LIF node as snnTorch 0.9.1 exports ``snn.Leaky(beta)``: scalar τ = dt/(1−β), R = τ/dt."""
    tau = dt / (1 - beta)
    node = {"type": "LIF", "tau": np.float32(tau), "r": np.float32(tau / dt), "v_leak": np.float32(0.0)}
    node["v_threshold"] = np.float32(threshold)
    if n and extra.pop("vector", False):
        node = {key: (np.full(n, value) if key != "type" else value) for key, value in node.items()}
    node.update(extra)
    return node


def affine(rng: np.random.Generator, n_in: int, n_out: int, bias: bool = True) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "Affine" if bias else "Linear"}
    node["weight"] = rng.normal(0, 0.5, (n_out, n_in)).astype(np.float32)
    if bias:
        node["bias"] = rng.normal(0, 0.1, n_out).astype(np.float32)
    return node


def chain(rng: np.random.Generator, sizes: list[int], last_neurons: bool = True, **neuron: Any):
    """Nodes and edges of ``Input -> (Affine -> LIF)* -> Affine [-> LIF] -> Output``."""
    nodes: dict[str, dict[str, Any]] = {"input": {"type": "Input", "shape": np.array([1, sizes[0]])}}
    order = ["input"]
    for index, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        nodes[f"fc{index}"] = affine(rng, n_in, n_out)
        order.append(f"fc{index}")
        if index < len(sizes) - 2 or last_neurons:
            nodes[f"lif{index}"] = lif(n_out, **neuron)
            order.append(f"lif{index}")
    nodes["output"] = {"type": "Output", "shape": np.array([1, sizes[-1]])}
    order.append("output")
    return nodes, list(zip(order, order[1:], strict=False))


def synthetic_images(
    seed: int, count: int, n_in: int = 16, classes: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Images of ``classes`` noisy prototypes (uint8 ``[count, n_in]``) and their labels."""
    rng = np.random.default_rng(1000)
    prototypes = rng.integers(0, 256, (classes, n_in))
    labels = np.random.default_rng(seed).integers(0, classes, count)
    noise = np.random.default_rng(seed + 1).normal(0, 110, (count, n_in))
    images = np.clip(prototypes[labels] + noise, 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)


def write_dataset(folder: Path, train: int = 600, test: int = 300, n_in: int = 16, classes: int = 3) -> Path:
    """An NPZ dataset folder (``train.npz``, ``test.npz``) of :func:`synthetic_images`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, seed, count in (("train", 1, train), ("test", 2, test)):
        images, labels = synthetic_images(seed, count, n_in, classes)
        np.savez(folder / f"{name}.npz", x=images, y=labels)
    return folder


def train_snntorch(images: np.ndarray, labels: np.ndarray, hidden: int, classes: int, beta: float = 0.875):
    """A ``Linear -> Leaky -> Linear -> Leaky`` snnTorch network (default ``nn.Linear`` with bias,
    ``snn.Leaky`` with its default subtracting reset) trained for a few seconds on the rate-encoded
    ``images``, spike counts as the readout."""
    import snntorch
    import torch
    from snntorch import utils

    from esl_hw.encoding import encode

    torch.manual_seed(0)
    network = torch.nn.Sequential(
        torch.nn.Linear(images.shape[1], hidden),
        snntorch.Leaky(beta=beta, init_hidden=True),
        torch.nn.Linear(hidden, classes),
        snntorch.Leaky(beta=beta, init_hidden=True, output=True),
    )
    spikes = torch.from_numpy(encode(images, T).astype(np.float32))
    targets = torch.from_numpy(labels)
    optimiser = torch.optim.Adam(network.parameters(), lr=5e-3)
    for _ in range(4):
        for start in range(0, len(targets), 50):
            utils.reset(network)
            counts = sum(network(spikes[t, start : start + 50])[0] for t in range(T))
            loss = torch.nn.functional.cross_entropy(counts, targets[start : start + 50])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return network


def snntorch_accuracy(network, images: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the trained network in snnTorch itself (its own semantics)."""
    import torch
    from snntorch import utils

    from esl_hw.encoding import encode

    spikes = torch.from_numpy(encode(images, T).astype(np.float32))
    with torch.no_grad():
        utils.reset(network)
        counts = sum(network(spikes[t])[0] for t in range(T))
    return float((counts.argmax(1).numpy() == labels).mean())
