"""Single-spike MNIST experiments of the ESL-SNN paper (Shen et al., AAAI 2023): Fig. 2 and Table 1.

Mostafa's single-spike 784-800-10 network (``configs/mnist_singlespike_eps60.yaml``, kind
``single_spike``) trained with ESL, sparse only between the input and the hidden layer
(``dense_layers: [1]``):

- Fig. 2: the Erdős–Rényi factor ε = 10, 20, …, 90; the sparse layer keeps
  ``min(1, ε (n_in + n_out) / (n_in n_out))`` of its 627,200 weights, i.e. ``1,584 ε`` connections;
- Table 1: the dense 784-800-10 network, a dense 784-H-10 network with as many parameters as the
  ESL network at ε = 60 has connections (``H = round(connections / (784 + 10))``, computed), and the
  ESL network at ε = 60 (the sweep's run).

Every run goes to ``--runs/<name>`` (the name carries the epoch count); a finished run is skipped and an
interrupted one resumed, so the sweep can be carried out in pieces (``--stop-after`` starts no run after
that many minutes; ``--report-only`` trains nothing). Each finished run is scored once on the test set
(``score.json`` in its folder): accuracy by ``train_runs._score_single`` (the exported network's
first output spike), spikes counted layer by layer. After every run, and at the end, the figure and
tables are rewritten from all the finished runs, saying how many of the planned ones they are:
``<out>/fig2_epsilon.png``, ``fig2_epsilon.md``/``.json``, ``table1.md``/``.json``.

Operation counts per test image (the network has no time steps to multiply by):

- MACs: one multiply-accumulate per connection, what an ANN of the same (sparse) topology computes;
  FLOPs = 2 · MACs (multiply and add), as ``bench/accuracy_density.py`` counts them;
- SOPs: one accumulate per spike and outgoing connection, counted from the spikes on the test set;
  every input pixel spikes once (black pixels last, at ``t_max``), a hidden neuron at most once.
  ``SOPs before firing`` counts only those that reach a neuron before its own spike (or a neuron that
  never fires): an event-driven core can drop the others, since a neuron fires at most once;
- energy ANN-style ``MACs · E_MAC`` and SNN-style ``SOPs · E_AC``, with the 45 nm constants of
  M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014: 4.6 pJ per
  32-bit float MAC, 0.9 pJ per 32-bit float add (the constants of the ESL-SNN paper, docs/metrics.md).

Usage (hours on a CPU: about 1 to 2 min per epoch of a 784-800-10 run on one core)::

    python bench/single_spike_paper.py --data ../shared/data/mnist --epochs 7
    python bench/single_spike_paper.py --data ../shared/data/mnist --epochs 7 --seeds 0 1 --stop-after 60
    python bench/single_spike_paper.py --data ../shared/data/mnist --epochs 7 --seeds 0 1 --report-only
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
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from single_spike_report import TABLE_EPSILON, write_report  # noqa: E402
from train_runs import CONFIGS, E_AC, E_MAC, _load, _machine, _run, _score_single  # noqa: E402

from esl_hw.app.cli import _non_negative_int, _positive_int  # the CLI's argument checks: one line, exit 2
from esl_hw.datasets import Split, load_dataset  # noqa: E402
from esl_hw.train.checkpoint import work_folder  # noqa: E402
from esl_hw.train.config import Config, load_config  # noqa: E402
from esl_hw.train.export import load_checkpoint  # noqa: E402
from esl_hw.train.single_spike import (  # noqa: E402
    SingleSpikeNet,
    encode_levels,
    first_spike_z,
    first_spike_z_slots,
    slot_z,
)
from esl_hw.train.sparse_rules import er_densities_from_epsilon  # noqa: E402

EPSILONS = tuple(range(10, 100, 10))
BASE_CONFIG = CONFIGS / "mnist_singlespike_eps60.yaml"
SPARSE_ONLY_INPUT = (1,)  # dense_layers: the hidden-to-output layer stays dense
SCORE_FILE = "score.json"
log = logging.getLogger("single_spike_paper")


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run: its folder name, its role (``sweep``, ``dense``, ``equal``), ε and config."""

    name: str
    role: str
    seed: int
    epsilon: int | None
    config: Config


def layer_shapes(sizes: list[int]) -> list[tuple[int, int]]:
    """``(n_in, n_out)`` of each layer of a network ``sizes[0]-…-sizes[-1]``."""
    return list(zip(sizes[:-1], sizes[1:], strict=True))


def sweep_densities(epsilon: float, sizes: list[int]) -> list[float]:
    """Per-layer densities at ER factor ``epsilon`` with only the input layer sparse."""
    return er_densities_from_epsilon(layer_shapes(sizes), epsilon, SPARSE_ONLY_INPUT)


def planned_connections(densities: list[float], sizes: list[int]) -> list[int]:
    """Connections each layer keeps at ``densities`` (the engine rounds ``density · n_in · n_out``)."""
    return [round(d * n_in * n_out) for d, (n_in, n_out) in zip(densities, layer_shapes(sizes), strict=True)]


def equal_parameter_hidden(parameters: int, n_in: int, n_out: int) -> int:
    """Hidden width ``H`` of the dense ``n_in-H-n_out`` network closest to ``parameters`` weights (the
    network has no biases)."""
    return max(1, round(parameters / (n_in + n_out)))


def run_name(role: str, epochs: int, seed: int, epsilon: int | None = None, hidden: int = 0) -> str:
    """``eps60_e5``, ``dense_e5``, ``equal_h130_e5``; ``_s<seed>`` for seeds other than 0."""
    stem = {"sweep": f"eps{epsilon}", "dense": "dense", "equal": f"equal_h{hidden}"}[role]
    return f"{stem}_e{epochs}" + ("" if seed == 0 else f"_s{seed}")


def spread_order(epsilons: list[int], first: int = TABLE_EPSILON) -> list[int]:
    """``epsilons`` with ``first`` (when present) leading, then each next the farthest from those
    already taken (ties: the smaller), so that a sweep stopped early still spans the range."""
    left = sorted(set(epsilons))
    order = [left.pop(left.index(first))] if first in left else [left.pop(0)] if left else []
    while left:
        chosen = max(left, key=lambda value: (min(abs(value - taken) for taken in order), -value))
        order.append(left.pop(left.index(chosen)))
    return order


def _configure(base: Config, args: argparse.Namespace, seed: int, **sparsity: Any) -> Config:
    data = dataclasses.replace(base.data, path=args.data, train_samples=args.train_samples)
    train = dataclasses.replace(base.train, epochs=args.epochs, device=args.device, threads=1)
    return dataclasses.replace(
        base,
        seed=seed,
        data=data,
        train=train,
        sparsity=dataclasses.replace(base.sparsity, **sparsity),
    )


def plan_runs(
    args: argparse.Namespace, base: Config | None = None, n_in: int = 784, n_out: int = 10
) -> list[Run]:
    """Per seed: ESL at ε = 60, the two dense baselines, then the rest of the ε sweep in
    :func:`spread_order`."""
    base = base if base is not None else load_config(BASE_CONFIG)
    sizes = [n_in, *base.model.hidden, n_out]
    esl_connections = sum(planned_connections(sweep_densities(TABLE_EPSILON, sizes), sizes))
    hidden = equal_parameter_hidden(esl_connections, n_in, n_out)
    epsilons = spread_order(args.epsilons)
    runs: list[Run] = []
    dense = {"density": 1.0, "epsilon": None, "dense_layers": SPARSE_ONLY_INPUT}
    for seed in args.seeds:
        for epsilon in epsilons:
            config = _configure(
                base, args, seed, density=None, epsilon=epsilon, dense_layers=SPARSE_ONLY_INPUT
            )
            runs.append(Run(run_name("sweep", args.epochs, seed, epsilon), "sweep", seed, epsilon, config))
            if epsilon != TABLE_EPSILON or args.skip_dense:
                continue
            config = _configure(base, args, seed, **dense)
            runs.append(Run(run_name("dense", args.epochs, seed), "dense", seed, None, config))
            equal = dataclasses.replace(config, model=dataclasses.replace(config.model, hidden=(hidden,)))
            runs.append(Run(run_name("equal", args.epochs, seed, hidden=hidden), "equal", seed, None, equal))
    return runs


def run_state(folder: Path) -> str:
    """``finished`` (a checkpoint), ``interrupted`` (a work folder with resume state) or ``new``."""
    if (folder / "checkpoint.pt").is_file():
        return "finished"
    return "interrupted" if work_folder(folder).joinpath("state.pt").is_file() else "new"


@torch.no_grad()
def spike_operations(net: SingleSpikeNet, images: np.ndarray, batch: int = 500) -> dict[str, list[float]]:
    """Per layer, summed over ``images``: spikes in, SOPs (spikes × outgoing connections) and SOPs
    before firing (those arriving no later than the target neuron's spike, or at a silent neuron)."""
    masks = [mask.to(torch.float32) for mask in net.masks()]
    weights = [weight * mask for weight, mask in zip(net.weights, masks, strict=True)]
    z_slots = slot_z(net.levels, net.t_max)
    totals = {key: [0.0] * net.n_layers for key in ("spikes", "sops", "sops_before_firing")}
    for start in range(0, len(images), batch):
        pixels = torch.from_numpy(images[start : start + batch])
        slots = encode_levels(pixels, net.levels)
        z_out = first_spike_z_slots(slots, z_slots, weights[0])
        before = sum(
            (((slots == k).to(torch.float32) @ masks[0]) * (z_slots[k] <= z_out)).sum()
            for k in range(net.levels)
        )
        totals["spikes"][0] += slots.numel()
        totals["sops"][0] += float(masks[0].sum()) * len(pixels)  # every pixel spikes once
        totals["sops_before_firing"][0] += float(before)
        for index in range(1, net.n_layers):
            z_in, z_out = z_out, first_spike_z(z_out, weights[index])
            fired = torch.isfinite(z_in).to(torch.float32)
            arrives = (z_in.unsqueeze(2) <= z_out.unsqueeze(1)) & torch.isfinite(z_in).unsqueeze(2)
            totals["spikes"][index] += float(fired.sum())
            totals["sops"][index] += float((fired @ masks[index]).sum())
            totals["sops_before_firing"][index] += float((arrives * masks[index]).sum())
    return totals


def score_run(run: Path, test: Split) -> dict[str, Any]:
    """Test accuracy, connections and spike counts of the finished run ``run``, cached in its
    ``score.json`` (recomputed when the number of test images differs)."""
    cache = run / SCORE_FILE
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached["test_images"] == len(test.labels):
            return cached
    score = _score_single(run, test.images, test.labels)
    checkpoint = load_checkpoint(run)
    model = checkpoint["config"]["model"]
    net = SingleSpikeNet(model["hidden"], levels=model["levels"], t_max=model["t_max"])
    net.load_state_dict(checkpoint["model"])
    counts = spike_operations(net, test.images)
    images = len(test.labels)
    layer_connections = [int(mask.sum()) for mask in net.masks()]
    macs = sum(layer_connections)
    sops = sum(counts["sops"]) / images
    score |= {
        "test_images": images,
        "layer_sizes": list(net.sizes),
        "layer_connections": layer_connections,
        "layer_density": [float(mask.float().mean()) for mask in net.masks()],
        "epochs": checkpoint["config"]["train"]["epochs"],
        "macs": macs,
        "flops": 2 * macs,
        "ann_energy_uj": macs * E_MAC * 1e6,
        "spikes_per_image": [value / images for value in counts["spikes"]],
        "sops_per_image": sops,
        "layer_sops_per_image": [value / images for value in counts["sops"]],
        "sops_before_firing_per_image": sum(counts["sops_before_firing"]) / images,
        "snn_energy_uj": sops * E_AC * 1e6,
    }
    cache.write_text(json.dumps(score, indent=2) + "\n")
    return score


def collect(runs: list[Run], folder: Path, test: Split) -> list[dict[str, Any]]:
    """Scores of the planned runs that have finished (each scored once, then read from its cache)."""
    rows = []
    for run in runs:
        if run_state(folder / run.name) == "finished":
            rows.append(
                {"name": run.name, "role": run.role, "seed": run.seed, "epsilon": run.epsilon}
                | score_run(folder / run.name, test)
            )
    return rows


def _report(runs: list[Run], args: argparse.Namespace, test: Split, results: dict[str, Any]) -> None:
    try:
        results["runs"] = collect(runs, args.runs, test)
        done = {row["name"] for row in results["runs"]}
        results["missing"] = [run.name for run in runs if run.name not in done]
        results["load_average"]["end"] = _load()
        write_report(results, args.out)
    except Exception:  # a report that fails must not stop the sweep
        log.exception("writing the report failed")


def command(argv: list[str]) -> str:
    """The command line that reproduces the results: ``argv`` without the options that only say when
    to stop (``--stop-after``, ``--report-only``)."""
    kept, skip = [], False
    for part in argv:
        if skip or part == "--report-only":
            skip = False
            continue
        skip = part == "--stop-after"
        if not skip:
            kept.append(part)
    return " ".join(["python bench/single_spike_paper.py", *kept])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="MNIST IDX folder (default: the embedded subset)")
    parser.add_argument("--runs", type=Path, default=Path("runs/single_spike_paper"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--epochs", type=_positive_int, required=True, help="epochs per run (in its name)")
    parser.add_argument("--seeds", type=_non_negative_int, nargs="+", default=[0])
    parser.add_argument("--epsilons", type=_positive_int, nargs="+", default=list(EPSILONS))
    parser.add_argument("--skip-dense", action="store_true", help="leave the two dense baselines out")
    parser.add_argument("--train-samples", type=_positive_int, help="use only the first N training images")
    parser.add_argument("--test-samples", type=_positive_int, help="score on the first N test images only")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu")
    parser.add_argument("--stop-after", type=float, help="start no run after this many minutes")
    parser.add_argument("--report-only", action="store_true", help="train nothing, report finished runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(1)
    started = time.monotonic()
    runs = plan_runs(args)
    dataset = load_dataset(args.data)
    test = dataset.test.head(args.test_samples)
    images = f"{len(dataset.train.labels):,} training and {len(dataset.test.labels):,} test images"
    results: dict[str, Any] = {
        "command": command(sys.argv[1:]),
        "data": f"{args.data or 'the embedded MNIST subset'} ({images})",
        "epochs": args.epochs,
        "epsilons": args.epsilons,
        "report_only": args.report_only,
        "planned": [run.name for run in runs],
        "machine": _machine(),
        "load_average": {"start": _load(), "end": None},
        "runs": [],
    }
    for run in [] if args.report_only else runs:
        folder = args.runs / run.name
        state = run_state(folder)
        if state == "finished":
            continue
        if args.stop_after is not None and time.monotonic() - started > 60 * args.stop_after:
            log.info("--stop-after %s min reached: no more runs started", args.stop_after)
            break
        log.info("%s: %s", run.name, "resuming" if state == "interrupted" else "training")
        try:
            _run(run.config, folder)
        except Exception:  # one failed run must not lose the others
            log.exception("run %s failed", run.name)
            continue
        _report(runs, args, test, results)
    _report(runs, args, test, results)


if __name__ == "__main__":
    main()
