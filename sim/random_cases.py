"""Constrained-random co-simulation: random networks, inputs, lane counts, idle gaps, backpressure.

A *network* is drawn by :func:`random_network` from a seed: 1-3 hidden layers and an output layer
of random sizes (1-24 neurons), densities from empty to full (with forced empty and full rows),
weight widths 2-9 bits, potential widths 3-14 bits, thresholds from 1 to the top of the range,
with or without leak (any shift), T of 1-6, and a lane count from 1, 2, 4, 8, 16. A hidden layer
is ``lif`` or ``cubalif`` (with or without synaptic decay, any shift), resets to zero or by
subtraction, and any layer (the output layer too) may have a bias, from a few units to beyond
the potential range. Small potential widths, large weights and large biases make the membrane
(and ``c``) saturate both ways.

A *case* is one inference of a network: an input drawn by :func:`random_images` (activity from
silent to every input on every step, i.e. bursts) under its own share of idle cycles on the input
stream and of backpressure on the output stream (the harness draws them per image). Every case is
checked bit for bit (spikes, potentials, outputs, prediction, no event lost or repeated) and its
counters against the reference (every counter but ``cycles``). The networks of odd seed stream
their cases back to back, so consecutive inferences overlap in the core; the others wait for
each ``done``, and of those every other one (seed ``2 mod 4``) is built without streaming
(``HardwareConfig.streaming``: one inference at a time, one running total per counter).

All cases of one network share one build, so ``networks x cases_per_network`` cases cost
``networks`` builds. Nightly use::

    python -m esl_hw.sim.random_cases --cases 2000 --simulator icarus --build-dir /tmp/esl-random
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from esl_hw.artifact import Layer, Model, layer_from_dense, signed_range
from esl_hw.encoding import encode
from esl_hw.metrics import synaptic_ops
from esl_hw.reference import run
from esl_hw.sim.build import SIMULATORS

LANE_CHOICES = (1, 2, 4, 8, 16)


@dataclass(frozen=True)
class Network:
    """A drawn network: the model, its lane count and the seed it came from."""

    seed: int
    model: Model
    lanes: int

    def describe(self) -> str:
        sizes = "-".join(str(size) for size in [self.model.n_inputs, *(x.n_out for x in self.model.layers)])
        widths = ",".join(_describe_layer(layer) for layer in self.model.hidden_layers)
        bias = " output bias" if self.model.output_layer.bias is not None else ""
        return f"seed {self.seed}: {sizes} T={self.model.timesteps} L={self.lanes} {widths}{bias}"


def _describe_layer(layer: Layer) -> str:
    """``w<bits>v<bits>``, then ``c<ks>`` (cubalif, ``c-`` without decay), ``b`` (bias), ``s``
    (subtractive reset)."""
    text = f"w{layer.w_bits}v{layer.v_bits}"
    if layer.kind == "cubalif":
        text += f"c{'-' if layer.syn_shift is None else layer.syn_shift}"
    return text + ("b" if layer.bias is not None else "") + ("s" if layer.reset == "subtract" else "")


def _random_bias(rng: np.random.Generator, n_out: int, scale: int) -> np.ndarray | None:
    """No bias (half the layers), or per neuron a bias of a few units, up to ``scale`` or up to
    twice ``scale`` (beyond the potential range: saturation), some zero."""
    if rng.random() < 0.5:
        return None
    bound = int(rng.choice([3, scale, 2 * scale]))
    bias = rng.integers(-bound, bound + 1, n_out)
    bias[rng.random(n_out) < 0.2] = 0
    return bias


def _random_layer(rng: np.random.Generator, n_in: int, n_out: int, kind: str) -> Layer:
    density = float(rng.choice([0.0, 0.05, 0.3, 0.6, 1.0, rng.uniform(0, 1)]))
    mask = rng.random((n_in, n_out)) < density
    if n_in > 2:
        mask[rng.integers(n_in)] = False  # an empty row
        mask[rng.integers(n_in)] = True  # a full row
    w_bits = int(rng.integers(2, 10))
    low, high = signed_range(w_bits)
    dense = rng.integers(low, high + 1, (n_in, n_out))
    if kind == "output":
        bias = _random_bias(rng, n_out, high * max(1, n_in // 2))
        return layer_from_dense(dense * mask, "output", w_bits, mask=mask, bias=bias)
    v_bits = int(rng.integers(3, 15))
    _, v_high = signed_range(v_bits)
    threshold = int(rng.choice([1, v_high, rng.integers(1, v_high + 1)]))
    leak_shift = None if rng.random() < 0.3 else int(rng.integers(1, v_bits))
    options = {
        "kind": "cubalif" if rng.random() < 0.4 else "lif",
        "reset": "subtract" if rng.random() < 0.4 else "zero",
        "bias": _random_bias(rng, n_out, v_high),
    }
    if options["kind"] == "cubalif":
        options["syn_shift"] = None if rng.random() < 0.3 else int(rng.integers(1, v_bits))
    return layer_from_dense(
        dense * mask,
        w_bits=w_bits,
        v_bits=v_bits,
        threshold=threshold,
        leak_shift=leak_shift,
        mask=mask,
        **options,
    )


def random_network(seed: int, max_neurons: int = 24) -> Network:
    """Draw a network (model and lane count) from ``seed``."""
    rng = np.random.default_rng(seed)
    sizes = [int(size) for size in rng.integers(1, max_neurons + 1, int(rng.integers(3, 6)))]
    layers = [
        _random_layer(rng, n_in, n_out, "output" if index == len(sizes) - 2 else "hidden")
        for index, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False))
    ]
    model = Model(tuple(layers), timesteps=int(rng.integers(1, 7)), metadata={"seed": seed})
    return Network(seed, model, int(rng.choice(LANE_CHOICES)))


def random_images(rng: np.random.Generator, model: Model, count: int) -> np.ndarray:
    """``count`` random inputs: per image a random activity, some silent, some bursts (all 255)."""
    images = np.zeros((count, model.n_inputs), dtype=np.uint8)
    for image in range(count):
        kind = rng.random()
        if kind < 0.1:
            continue  # silent
        if kind < 0.25:
            images[image] = 255  # burst: every input spikes on (almost) every step
            continue
        pixels = rng.integers(0, 256, model.n_inputs)
        pixels[rng.random(model.n_inputs) < rng.uniform(0, 1)] = 0
        images[image] = pixels
    return images


def check_counters(model: Model, images: np.ndarray, result) -> list[str]:
    """Differences between the core's counters and the reference (SOPs, spikes per layer)."""
    spikes = encode(images, model.timesteps, model.encoder)
    trace = run(model, spikes, record_potentials=False)
    sops = synaptic_ops(model, spikes, trace).sum(axis=1)
    problems = []
    if result.sops != sops.tolist():
        problems.append(f"sops {result.sops} != reference {sops.tolist()}")
    expected = np.stack([layer.sum(axis=(0, 2)) for layer in trace.spikes], axis=-1).tolist()
    if [list(counts) for counts in result.spikes] != expected:
        problems.append(f"spikes {result.spikes} != reference {expected}")
    if result.memory_reads["syn"] != result.sops:
        problems.append("synapse reads differ from synaptic operations")
    return problems


def run_network(
    network: Network, cases: int, simulator: str, build_dir: str | os.PathLike[str], seed: int = 0
) -> dict:
    """Run ``cases`` random inferences of ``network`` in one build; return a JSON-able summary.

    The networks of odd seed stream their inferences back to back (``stream=True``: consecutive
    inferences overlap in the core), the others wait for each ``done``; those of seed ``2 mod 4``
    on a core built without streaming."""
    from esl_hw.sim.runner import run_cosim

    stream = network.seed % 2 == 1
    streaming = network.seed % 4 != 2
    rng = np.random.default_rng([network.seed, seed])
    images = random_images(rng, network.model, cases)
    result = run_cosim(
        network.model,
        images,
        simulator,
        build_dir,
        lanes=network.lanes,
        gap_percent=int(rng.integers(0, 60)),
        backpressure_percent=int(rng.integers(0, 60)),
        random_gaps=int(rng.integers(1, 80)),
        seed=int(rng.integers(1, 1 << 30)),
        stream=stream,
        streaming=streaming,
    )
    problems = list(result.problems) + check_counters(network.model, images, result)
    mode = ", streamed" if stream else ("" if streaming else ", core without streaming")
    return {
        "network": network.describe() + mode,
        "cases": cases,
        "mismatches": result.mismatches,
        "problems": problems,
        "details": result.details[:3],
        "ok": result.mismatches == 0 and not problems,
        "cycles": result.cycles,
    }


def run_random_cases(
    cases: int, simulator: str, build_dir: str | os.PathLike[str], cases_per_network: int = 10, seed: int = 0
) -> list[dict]:
    """Run ``cases`` random cases on ``simulator``, ``cases_per_network`` per drawn network."""
    summaries = []
    network_seed = seed
    remaining = cases
    while remaining > 0:
        count = min(cases_per_network, remaining)
        summaries.append(run_network(random_network(network_seed), count, simulator, build_dir, seed))
        remaining -= count
        network_seed += 1
    return summaries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="constrained-random co-simulation against the reference")
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--simulator", choices=SIMULATORS, default="icarus")
    parser.add_argument("--per-network", type=int, default=10, help="cases per drawn network (one build)")
    parser.add_argument("--seed", type=int, default=0, help="first network seed")
    parser.add_argument("--build-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    failures = 0
    for summary in run_random_cases(args.cases, args.simulator, args.build_dir, args.per_network, args.seed):
        failures += not summary["ok"]
        status = "ok" if summary["ok"] else f"FAIL {summary['details']} {summary['problems']}"
        print(f"{summary['network']}: {summary['cases']} cases {status}", flush=True)
    print(json.dumps({"cases": args.cases, "failed_networks": failures}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
