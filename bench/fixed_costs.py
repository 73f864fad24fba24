"""Benchmark: fixed cycles per time step and per inference of the generated core (Verilator).

Usage::

    python bench/fixed_costs.py [--samples N] [--only NAME ...] [--timesteps T ...] [--out docs/benchmarks]

Every network is a seeded random model built here (:func:`network`): an ``N``-input model of the
demo's shape (784-128-10, Erdős–Rényi density 0.1 as ``configs/demo.yaml``) on images of the
embedded MNIST subset, smaller ones on seeded random pixels. Each is co-simulated on Verilator
(spikes, potentials, outputs, predictions and counters checked against the reference) for one
all-zero image and ``--samples`` input images, at every ``T`` of its series.

Fixed cost (method): the all-zero image gives no input event, so the only work is the sweep of
``G = max_l ceil(N_l / L)`` groups per step; a least-squares fit of its cycles over the series'
``T``, ``cycles = a + b·T``, gives the fixed cycles per step ``b − G`` and per inference ``a``.
For the input images the report gives the floor ``max_l (SOPs_l + T·N_l) / L``, cycles / floor,
and the event-rate floor ``max_l Σ_t max(E_l,t + 1, (SOPs_l,t + N_l) / L)`` (``E_l,t`` events into
layer ``l`` at step ``t``, ``+ 1`` its end-of-step marker: a layer takes one event per cycle),
which separates the event-rate limit from the fixed costs. Writes ``fixed_costs.json`` and
``fixed_costs.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from esl_hw.artifact import Model, layer_from_dense
from esl_hw.datasets import load_mnist
from esl_hw.encoding import encode
from esl_hw.metrics import cycle_floor, synaptic_ops
from esl_hw.reference import run

#: Inputs of the demo's shape: those networks run on MNIST images.
MNIST_INPUTS = 784


@dataclass(frozen=True)
class Case:
    """One network of the benchmark: layer sizes, lanes and the series of time steps."""

    name: str
    sizes: tuple[int, ...]
    lanes: int
    timesteps: tuple[int, ...]


#: The networks: tiny to the demo's shape, a few lane counts, ``T`` from 1 to 8.
CASES = (
    Case("1-1-1 L1", (1, 1, 1), 1, (1, 2, 4, 8)),
    Case("16-16-4 L1", (16, 16, 4), 1, (1, 2, 8)),
    Case("16-16-4 L4", (16, 16, 4), 4, (1, 2, 8)),
    Case("16-16-4 L8", (16, 16, 4), 8, (1, 2, 8)),
    Case("8-3-2 L1", (8, 3, 2), 1, (1, 2, 8)),
    Case("64-32-10 L4", (64, 32, 10), 4, (1, 2, 8)),
    Case("784-128-10 L16", (784, 128, 10), 16, (1, 2, 8)),
    Case("784-128-10 L4", (784, 128, 10), 4, (8,)),
    Case("784-128-10 L1", (784, 128, 10), 1, (8,)),
)


def er_densities(sizes: tuple[int, ...], density: float) -> list[float]:
    """Erdős–Rényi densities ``min(1, ε·(n_in + n_out)/(n_in·n_out))`` with overall ``density``
    (layers capped at 1 leave their budget to the others), as ``esl-hw train`` initialises."""
    shapes = list(zip(sizes, sizes[1:], strict=False))
    fixed: dict[int, float] = {}
    while True:
        free = [i for i in range(len(shapes)) if i not in fixed]
        budget = density * sum(a * b for a, b in shapes) - sum(fixed[i] * math.prod(shapes[i]) for i in fixed)
        epsilon = budget / sum(sum(shapes[i]) for i in free)
        over = [i for i in free if epsilon * sum(shapes[i]) / math.prod(shapes[i]) > 1]
        if not over:
            break
        fixed.update({i: 1.0 for i in over})
    return [fixed.get(i, epsilon * sum(s) / math.prod(s)) for i, s in enumerate(shapes)]


def network(sizes: tuple[int, ...], timesteps: int, seed: int = 0) -> Model:
    """A seeded random model ``sizes[0] -> … -> sizes[-1]`` (LIF layers, output layer last): ER
    density 0.1 for the demo's input size, 0.5 otherwise (at least one synapse per layer); 8-bit
    weights, ``v_bits`` 16, leak shift 2, thresholds that make the hidden layers spike."""
    rng = np.random.default_rng(seed)
    densities = er_densities(sizes, 0.1) if sizes[0] == MNIST_INPUTS else [0.5] * (len(sizes) - 1)
    layers = []
    for index, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        mask = rng.random((n_in, n_out)) < densities[index]
        mask[rng.integers(n_in), rng.integers(n_out)] = True
        dense = rng.integers(-60, 128, (n_in, n_out)) * mask
        if index == len(sizes) - 2:
            layers.append(layer_from_dense(dense, "output", 8, mask=mask))
            continue
        drive = 40.0 * mask.sum() / n_out * (0.2 if index == 0 and n_in == MNIST_INPUTS else 0.5)
        threshold = int(min(30000, max(16, 1.5 * drive)))
        layers.append(
            layer_from_dense(dense, "lif", 8, v_bits=16, threshold=threshold, leak_shift=2, mask=mask)
        )
    metadata = {"source": f"bench/fixed_costs.py, seed {seed}"}
    return Model(tuple(layers), timesteps=timesteps, metadata=metadata)


def input_images(n_in: int, samples: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """An all-zero image, then ``samples`` images: MNIST test images for the demo's input size,
    seeded random pixels otherwise. Returns the images and their source."""
    if n_in == MNIST_INPUTS:
        data = load_mnist(None)
        images, source = data.test.images[:samples], data.source
    else:
        images = np.random.default_rng(seed + 1).integers(0, 256, (samples, n_in), dtype=np.uint8)
        source = "random pixels"
    return np.concatenate([np.zeros((1, n_in), dtype=np.uint8), images]), source


def floors(model: Model, images: np.ndarray, lanes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per image the floor ``max_l (SOPs_l + T·N_l)/L`` and the event-rate floor (module doc)."""
    spikes = encode(images, model.timesteps, model.encoder)
    trace = run(model, spikes, record_potentials=False)
    floor = np.array([cycle_floor(model, sops, lanes) for sops in synaptic_ops(model, spikes, trace)])
    event_floor = np.zeros(len(images))
    for layer, layer_in in zip(model.layers, [spikes, *trace.spikes], strict=True):
        events = layer_in.sum(axis=2).astype(np.float64)  # [T, B]
        sops = layer_in.astype(np.int64) @ np.diff(layer.row_ptr)  # [T, B]
        swept = layer.n_out if layer.is_hidden else 0
        per_step = np.maximum(events + 1, (sops + swept) / lanes)
        event_floor = np.maximum(event_floor, per_step.sum(axis=0))
    return floor, event_floor


def measure(case: Case, timesteps: int, samples: int, build_dir: Path) -> dict:
    """Co-simulate one network at one ``T``; the zero image's cycles and the input images' figures."""
    from esl_hw.sim import run_cosim

    model = network(case.sizes, timesteps)
    images, source = input_images(case.sizes[0], samples)
    result = run_cosim(model, images, "verilator", build_dir, trace_potentials=True, lanes=case.lanes)
    floor, event_floor = floors(model, images, case.lanes)
    cycles = np.asarray(result.cycles, dtype=np.float64)
    groups = max(-(-layer.n_out // case.lanes) for layer in model.hidden_layers)
    return {
        "timesteps": timesteps,
        "inputs": source,
        "samples": samples,
        "mismatches": result.mismatches,
        "synapses": model.synapses,
        "groups": groups,
        "zero_input_cycles": float(cycles[0]),
        "cycles_per_inference": float(cycles[1:].mean()),
        "cycle_floor": float(floor[1:].mean()),
        "cycles_over_floor": float(cycles[1:].mean() / floor[1:].mean()),
        "event_floor": float(event_floor[1:].mean()),
        "event_floor_over_floor": float(event_floor[1:].mean() / floor[1:].mean()),
        "cycles_over_event_floor": float(cycles[1:].mean() / event_floor[1:].mean()),
        "overhead_per_step": float((cycles[1:] - floor[1:]).mean() / timesteps),
    }


def fit(rows: list[dict]) -> dict | None:
    """``cycles = a + b·T`` over the zero-input runs of one network: fixed cycles per step ``b − G``,
    per inference ``a``, and the largest residual; ``None`` with fewer than two ``T``."""
    if len(rows) < 2:
        return None
    steps = np.array([row["timesteps"] for row in rows], dtype=np.float64)
    cycles = np.array([row["zero_input_cycles"] for row in rows])
    slope, intercept = np.polyfit(steps, cycles, 1)
    residual = float(np.abs(cycles - (intercept + slope * steps)).max())
    groups = rows[0]["groups"]
    return {
        "cycles_per_step": float(slope),
        "sweep_groups": groups,
        "fixed_per_step": float(slope - groups),
        "fixed_per_inference": float(intercept),
        "max_residual": residual,
    }


def markdown(report: dict) -> str:
    """The report as a Markdown page."""
    lines = [
        "# Fixed cycles per time step and per inference",
        "",
        f"Generated by `{report['command']}` on {report['date']}; Verilator; machine "
        f"{report['machine']} ({report['cpus']} CPUs), load average {report['load_average']} at the start. "
        "Seeded random models (`bench/fixed_costs.py`): the 784-input ones have the demo's shape "
        "(784-128-10, Erdős–Rényi density 0.1) and run on MNIST test images of the embedded subset, "
        "the others on random pixels; every run bit-exact against the reference (mismatches 0).",
        "",
        "Method: the all-zero image has no input event, so a step costs its sweep of `G` groups "
        "(`max_l ceil(N_l/L)`) plus fixed cycles; a least-squares fit `cycles = a + b·T` of that "
        "image's cycles over the network's `T` gives the fixed cycles per step `b − G` and per "
        "inference `a`. For the input images: the floor `max_l (SOPs_l + T·N_l)/L`, and the "
        "event-rate floor `max_l Σ_t max(E_l,t + 1, (SOPs_l,t + N_l)/L)` (`E_l,t` events into "
        "layer `l` at step `t`, `+1` its end-of-step marker: every layer core takes one event per "
        "cycle), which tells the event-rate limit from the fixed costs.",
        "",
        "## Fixed costs (all-zero image)",
        "",
        "| network | T | cycles | fit: cycles per step | G | fixed per step | fixed per inference "
        "| max residual |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in report["networks"]:
        fitted = entry["fit"]
        series = ", ".join(f"{row['zero_input_cycles']:.0f}" for row in entry["runs"])
        steps = ", ".join(str(row["timesteps"]) for row in entry["runs"])
        if fitted is None:
            groups = entry["runs"][0]["groups"]
            lines.append(f"| {entry['name']} | {steps} | {series} | - | {groups} | - | - | - |")
            continue
        lines.append(
            f"| {entry['name']} | {steps} | {series} | {fitted['cycles_per_step']:.2f} | "
            f"{fitted['sweep_groups']} | {fitted['fixed_per_step']:.2f} | "
            f"{fitted['fixed_per_inference']:.1f} | {fitted['max_residual']:.2f} |"
        )
    lines += [
        "",
        "## Input images",
        "",
        "| network | T | images | cycles | floor | cycles / floor | event-rate floor / floor "
        "| cycles / event-rate floor | (cycles − floor) / T | mismatches |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in report["networks"]:
        for row in entry["runs"]:
            lines.append(
                f"| {entry['name']} | {row['timesteps']} | {row['samples']} | "
                f"{row['cycles_per_inference']:.1f} | {row['cycle_floor']:.1f} | "
                f"{row['cycles_over_floor']:.3f} | {row['event_floor_over_floor']:.3f} | "
                f"{row['cycles_over_event_floor']:.3f} | {row['overhead_per_step']:.1f} | "
                f"{row['mismatches']} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5, help="input images per run (plus the zero image)")
    parser.add_argument("--only", nargs="+", help="run only these networks (names as in the table)")
    parser.add_argument("--timesteps", type=int, nargs="+", help="run only these T of each series")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--build-dir", type=Path, help="folder for the runs (default: temporary)")
    args = parser.parse_args()
    cases = [case for case in CASES if not args.only or case.name in args.only]
    load = os.getloadavg()
    networks = []
    with tempfile.TemporaryDirectory(prefix="esl-fixed-") as temporary:
        build_dir = args.build_dir or Path(temporary)
        for case in cases:
            runs = []
            for timesteps in [t for t in case.timesteps if not args.timesteps or t in args.timesteps]:
                started = time.perf_counter()
                runs.append(measure(case, timesteps, args.samples, build_dir))
                print(case.name, json.dumps(runs[-1]), f"({time.perf_counter() - started:.0f} s)", flush=True)
            networks.append({"name": case.name, "sizes": list(case.sizes), "lanes": case.lanes,
                             "runs": runs, "fit": fit(runs)})  # fmt: skip
    report = {
        "command": " ".join(["python bench/fixed_costs.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": " / ".join(f"{value:.2f}" for value in load),
        "networks": networks,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fixed_costs.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "fixed_costs.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
