"""Training throughput of the ESL trainer against snnTorch, and the cost of ESL updates.

Same network (784-800-10, LIF with β = 0.5, hard reset, no bias), T = 8, batch 128, Adam, the same
rate-encoded MNIST spikes (``esl_hw.encoding``, what the hardware receives), one torch thread, in the
same process. Variants are measured in interleaved rounds (the median is reported) so that a busy
machine slows all of them alike:

- ``snntorch``: ``nn.Linear`` → ``snn.Leaky(reset_mechanism="zero")`` → ``nn.Linear`` per step,
  the loop of the snnTorch tutorials, float32;
- ``esl-qat``: :class:`esl_hw.train.LIFNet` in QAT mode (what ``esl-hw train`` runs) with the ESL
  engine at density 0.1 (``engine.step()`` every iteration). Its step: the first layer as one
  event-driven product over all ``T`` steps, each input spike train coded by its changes
  (:mod:`esl_hw.train.events`), the LIF recurrence as one autograd function with a hand-written
  reverse-time backward (:mod:`esl_hw.train.neurons`), the output layer on the spike counts;
- ``esl-float``: the same in float mode.

ESL overhead: the wall-clock cost of prune-and-regrow against a fixed mask, measured directly as
``t(update) / (ΔT · t(iteration))`` with ΔT = 100 (the config's), since one update every 100
iterations is below the timing noise of a short run; also for the ``hardware-random`` rule.

Usage::

    python bench/throughput.py [--iterations 20] [--rounds 5] [--out docs/benchmarks]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from esl_hw.datasets import load_mnist
from esl_hw.train.model import LIFNet, encode_batch
from esl_hw.train.sparse import SparseEngine
from esl_hw.train.sparse_rules import scaled_densities

BATCH, STEPS, HIDDEN, DELTA_T = 128, 8, 800, 100


def snntorch_step_fn(spikes: torch.Tensor, labels: torch.Tensor) -> Callable[[], None]:
    import snntorch
    from snntorch import surrogate

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = torch.nn.Linear(784, HIDDEN, bias=False)
            self.lif = snntorch.Leaky(
                beta=0.5, threshold=1.0, reset_mechanism="zero", spike_grad=surrogate.fast_sigmoid(slope=5)
            )
            self.fc2 = torch.nn.Linear(HIDDEN, 10, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mem = self.lif.init_leaky()
            out = 0
            for step in range(x.shape[0]):
                fired, mem = self.lif(self.fc1(x[step]), mem)
                out = out + self.fc2(fired)
            return out / x.shape[0]

    net = Net()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    inputs = spikes.float()

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(net(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def esl_setup(
    mode: str, alpha: float = 0.3, grow: str = "random"
) -> tuple[LIFNet, torch.optim.Optimizer, SparseEngine]:
    net = LIFNet([HIDDEN], timesteps=STEPS, leak_shift=1, threshold=0.5)
    densities = scaled_densities([tuple(w.shape) for w in net.weights], 0.1, dense=[1])
    net.reset_parameters(densities)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    rule = {"prune": "magnitude", "integer_weights": net.integer_weights} if grow == "hardware-random" else {}
    engine = SparseEngine(
        net.named_weights(), optimizer, densities, 10**6, alpha=alpha, delta_t=DELTA_T, masks=net.masks(),
        grow=grow, **rule,
    )  # fmt: skip
    return net, optimizer, engine


def esl_step_fn(spikes: torch.Tensor, labels: torch.Tensor, mode: str) -> Callable[[], None]:
    net, optimizer, engine = esl_setup(mode)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(net(spikes, mode=mode), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        engine.step()

    return step


def update_seconds(
    spikes: torch.Tensor, labels: torch.Tensor, grow: str = "random", repeats: int = 10
) -> float:
    """Median wall-clock time of one prune-and-regrow update (at α = 0.3) of the 784-800-10 network."""
    net, optimizer, engine = esl_setup("qat", grow=grow)
    loss = torch.nn.functional.cross_entropy(net(spikes), labels)
    loss.backward()
    optimizer.step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        engine.update()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(steps: dict[str, Callable[[], None]], iterations: int, rounds: int) -> dict[str, list[float]]:
    """Seconds per iteration of each variant, ``rounds`` interleaved rounds of ``iterations``."""
    for step in steps.values():
        step()  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(iterations):
                step()
            seconds[name].append((time.perf_counter() - start) / iterations)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    torch.set_num_threads(1)
    torch.manual_seed(0)
    train = load_mnist(None).train
    spikes = encode_batch(train.images[:BATCH], STEPS)
    labels = torch.from_numpy(train.labels[:BATCH]).long()
    steps = {
        "snntorch": snntorch_step_fn(spikes, labels),
        "esl-qat": esl_step_fn(spikes, labels, "qat"),
        "esl-float": esl_step_fn(spikes, labels, "float"),
    }
    seconds = measure(steps, args.iterations, args.rounds)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    images = {name: BATCH / value for name, value in median.items()}
    update = update_seconds(spikes, labels)
    hardware_update = update_seconds(spikes, labels, "hardware-random")
    load_after = os.getloadavg()[0]
    overhead = update / (DELTA_T * median["esl-qat"])
    result = {
        "network": f"784-{HIDDEN}-10 LIF, beta 0.5, hard reset, T={STEPS}, batch {BATCH}, Adam",
        "input_spike_rate": float(spikes.float().mean()),
        "threads": 1,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_1min": [load_before, load_after],
        "iterations_per_round": args.iterations,
        "rounds": args.rounds,
        "seconds_per_iteration": seconds,
        "images_per_second": images,
        "speedup_vs_snntorch": {name: images[name] / images["snntorch"] for name in images},
        "esl_update_seconds": update,
        "esl_update_overhead": overhead,
        "esl_update_seconds_hardware_random": hardware_update,
        "delta_t": DELTA_T,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Training throughput: ESL trainer vs snnTorch",
        "",
        f"{result['network']}; same rate-encoded MNIST spikes (rate {result['input_spike_rate']:.3f}); "
        f"1 torch thread, torch {torch.__version__}; median of {args.rounds} interleaved rounds of "
        f"{args.iterations} iterations, on a {os.cpu_count()}-CPU machine with 1-minute load average "
        f"{load_before:.1f} before and {load_after:.1f} after (other jobs slow every variant alike, "
        "but add noise). Reproduce: `python bench/throughput.py`.",
        "",
        "| variant | images/s | vs snnTorch |",
        "| --- | ---: | ---: |",
        *[f"| {name} | {images[name]:.0f} | {result['speedup_vs_snntorch'][name]:.2f}× |" for name in images],
        "",
        f"ESL update (prune + regrow, density 0.1): {update * 1e3:.1f} ms, once every {DELTA_T} "
        f"iterations: overhead {100 * overhead:.2f}% of training time against a fixed mask. With "
        f"`grow: hardware-random` (the chip's rewiring, numpy reference, one LFSR draw at a time): "
        f"{hardware_update * 1e3:.1f} ms, overhead "
        f"{100 * hardware_update / (DELTA_T * median['esl-qat']):.2f}%.",
        "",
    ]
    (args.out / "throughput.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
