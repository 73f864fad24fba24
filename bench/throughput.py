"""Training throughput of the ESL trainer against snnTorch and SpikingJelly, idle and under load.

Same network (784-800-10, LIF with β = 0.5, hard reset, no bias), T = 8, batch 128, Adam, the same
rate-encoded MNIST spikes (``esl_hw.encoding``, what the hardware receives), one torch thread, in the
same process. Variants are measured in interleaved rounds (the median is reported) so that a busy
machine slows all of them alike:

- ``snntorch``: ``nn.Linear`` → ``snn.Leaky(reset_mechanism="zero")`` → ``nn.Linear`` per step,
  the loop of the snnTorch tutorials, float32;
- ``spikingjelly``: SpikingJelly's multi-step mode (``step_mode="m"``: one ``layer.Linear`` call over
  all ``T`` steps, ``neuron.LIFNode`` with τ = 2, no input decay, hard reset to 0, its torch
  implementation on CPU), float32;
- ``esl-qat``: :class:`esl_hw.train.LIFNet` in QAT mode (what ``esl-hw train`` runs) with the ESL
  engine at density 0.1 (``engine.step()`` every iteration) and the trainer's optimizer. Its step:
  the first layer's forward as one exact int8 product (binary spikes times integer weights,
  :func:`esl_hw.train.events.int8_product`), its weight gradient as a sum over the changes of the
  input spike trains (:mod:`esl_hw.train.events`), the LIF recurrence as one autograd function with
  a hand-written reverse-time backward (:mod:`esl_hw.train.neurons`), the output layer on the spike
  counts;
- ``esl-qat-bf16``: ``esl-qat`` with ``train.weight_grad: bfloat16`` (mixed precision): the first
  layer's weight gradient as one dense bfloat16 product with float32 accumulation on the CPU's AMX
  units; the forward, and so the integer contract, unchanged (its accuracy against the exact
  gradient: ``bench/mixed_precision.py``);
- ``esl-float``: the same in float mode (first layer forward on the changes too);
- ``snntorch-bf16``, ``spikingjelly-bf16``: the peers under ``torch.autocast("cpu", bfloat16)``
  (their ``Linear`` layers in bfloat16 on the same AMX units), the mixed precision a peer's user can
  turn on, so that ``esl-qat-bf16`` is also compared with its like.

Two conditions, each its own set of rounds: ``idle`` (whatever else runs on the machine: the 1-minute
load average before and after is recorded, and the Markdown says when it was not idle), and ``load``
(``--load-processes`` busy-looping Python processes, by default one per CPU, run beside the
measurement; each has a deadline and is stopped when the measurement ends).

ESL overhead: the wall-clock cost of prune-and-regrow against a fixed mask, measured directly as
``t(update) / (ΔT · t(iteration))`` with ΔT = 100 (the config's), since one update every 100
iterations is below the timing noise of a short run; also for the ``hardware-random`` rule.

SpikingJelly: ``pip install --no-deps spikingjelly==2.0.0 loguru`` (its declared torchvision and
torchaudio would replace the CPU torch with another build; the modules used here need only torch,
numpy and loguru). Without it the ``spikingjelly`` variant is left out and the Markdown says so.

Usage::

    python bench/throughput.py [--iterations 20] [--rounds 5] [--load-processes N] [--out docs/benchmarks]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from esl_hw.app.cli import _non_negative_int, _positive_int  # the CLI's argument checks: one line, exit 2
from esl_hw.datasets import load_mnist
from esl_hw.train.loop import adam
from esl_hw.train.model import LIFNet, encode_batch
from esl_hw.train.sparse import SparseEngine
from esl_hw.train.sparse_rules import scaled_densities

BATCH, STEPS, HIDDEN, DELTA_T = 128, 8, 800, 100
#: The peers every variant is compared with (those measured).
PEERS = ("snntorch", "spikingjelly", "snntorch-bf16", "spikingjelly-bf16")


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


def spikingjelly_step_fn(spikes: torch.Tensor, labels: torch.Tensor) -> Callable[[], None]:
    from spikingjelly.activation_based import functional, layer, neuron

    net = torch.nn.Sequential(
        layer.Linear(784, HIDDEN, bias=False, step_mode="m"),
        neuron.LIFNode(tau=2.0, decay_input=False, v_threshold=1.0, v_reset=0.0, step_mode="m"),
        layer.Linear(HIDDEN, 10, bias=False, step_mode="m"),
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    inputs = spikes.float()

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(net(inputs).mean(0), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        functional.reset_net(net)

    return step


def spikingjelly_available() -> bool:
    try:
        from spikingjelly.activation_based import functional, layer, neuron  # noqa: F401
    except ImportError:
        return False
    return True


def esl_setup(
    mode: str, alpha: float = 0.3, grow: str = "random"
) -> tuple[LIFNet, torch.optim.Optimizer, SparseEngine]:
    net = LIFNet([HIDDEN], timesteps=STEPS, leak_shift=1, threshold=0.5)
    densities = scaled_densities([tuple(w.shape) for w in net.weights], 0.1, dense=[1])
    net.reset_parameters(densities)
    optimizer = adam(net.parameters(), 1e-3)  # the trainer's optimizer
    rule = {"prune": "magnitude", "integer_weights": net.integer_weights} if grow == "hardware-random" else {}
    engine = SparseEngine(
        net.named_weights(), optimizer, densities, 10**6, alpha=alpha, delta_t=DELTA_T, masks=net.masks(),
        grow=grow, **rule,
    )  # fmt: skip
    return net, optimizer, engine


def esl_step_fn(
    spikes: torch.Tensor, labels: torch.Tensor, mode: str, weight_grad: torch.dtype | None = None
) -> Callable[[], None]:
    net, optimizer, engine = esl_setup(mode)
    net.weight_grad_dtype = weight_grad  # what train.weight_grad sets (None: float32, exact)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(net(spikes, mode=mode), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        engine.step()

    return step


def bfloat16_autocast(step: Callable[[], None]) -> Callable[[], None]:
    """``step`` under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (a peer in mixed precision)."""

    def mixed() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            step()

    return mixed


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


#: A busy loop with a deadline: the ``load`` condition's background processes.
_BUSY = "import sys, time\nend = float(sys.argv[1])\nwhile time.time() < end:\n    pass\n"


@contextmanager
def background_load(processes: int, seconds: float) -> Iterator[list[subprocess.Popen]]:
    """``processes`` busy-looping Python processes (yielded) for the duration of the block; each
    stops by itself after ``seconds`` at the latest."""
    deadline = time.time() + seconds
    workers = [subprocess.Popen([sys.executable, "-c", _BUSY, repr(deadline)]) for _ in range(processes)]
    try:
        time.sleep(1.0)  # let them start
        yield workers
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(timeout=10)


def condition(
    steps: dict[str, Callable[[], None]], iterations: int, rounds: int, load_processes: int
) -> dict[str, Any]:
    """One condition's measurement: seconds per iteration, images/s, load averages."""
    load_before = os.getloadavg()[0]
    seconds = measure(steps, iterations, rounds)
    load_after = os.getloadavg()[0]
    median = {name: statistics.median(values) for name, values in seconds.items()}
    return {
        "load_processes": load_processes,
        "load_average_1min": [load_before, load_after],
        "seconds_per_iteration": seconds,
        "images_per_second": {name: BATCH / value for name, value in median.items()},
    }


def speedups(images: dict[str, float]) -> dict[str, dict[str, float]]:
    """Each variant's images/s over each peer's (``snntorch``, ``spikingjelly`` and their ``-bf16``
    forms, where measured)."""
    peers = [name for name in PEERS if name in images]
    return {peer: {name: images[name] / images[peer] for name in images} for peer in peers}


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Training throughput: ESL trainer vs snnTorch and SpikingJelly",
        "",
        f"{result['network']}; same rate-encoded MNIST spikes (rate {result['input_spike_rate']:.3f}); "
        f"1 torch thread, torch {result['torch']}, snnTorch {result['versions']['snntorch']}, "
        f"SpikingJelly {result['versions']['spikingjelly']}; median of {result['rounds']} interleaved "
        f"rounds of {result['iterations_per_round']} iterations per condition, on a {result['cpus']}-CPU "
        f"machine ({result['machine']}). Reproduce: `python bench/throughput.py`.",
        "",
        "Variants: `esl-qat` is what `esl-hw train` runs (exact weight gradient); `esl-qat-bf16` the "
        "same with `train.weight_grad: bfloat16` (the first layer's weight gradient as one bfloat16 "
        "product, forward unchanged; accuracy: docs/benchmarks/mixed_precision.md); `-bf16` peers run "
        'under `torch.autocast("cpu", dtype=torch.bfloat16)`, the mixed precision their users can '
        "turn on. Compare like with like: float32 with float32, bf16 with bf16.",
        "",
    ]
    if result["versions"]["spikingjelly"] == "not installed":
        lines += [
            "SpikingJelly was not installed (`pip install --no-deps spikingjelly==2.0.0 loguru`): "
            "its column is missing.",
            "",
        ]
    for name, measured in result["conditions"].items():
        before, after = measured["load_average_1min"]
        if name == "idle":
            state = "idle" if before < 0.5 else f"NOT idle (load average {before:.1f} before it started)"
            title = f"## Idle machine: 1-minute load average {before:.2f} before, {after:.2f} after ({state})"
        else:
            title = (
                f"## Under load: {measured['load_processes']} busy processes beside it, 1-minute load "
                f"average {before:.2f} before, {after:.2f} after"
            )
        peers = list(measured["speedup"])
        lines += [
            title,
            "",
            "| variant | images/s | " + " | ".join(f"vs {peer}" for peer in peers) + " |",
            "| --- | ---: |" + " ---: |" * len(peers),
        ]
        for variant, images in measured["images_per_second"].items():
            ratios = " | ".join(f"{measured['speedup'][peer][variant]:.2f}×" for peer in peers)
            lines.append(f"| {variant} | {images:.0f} | {ratios} |")
        lines.append("")
    update, overhead = result["esl_update_seconds"], result["esl_update_overhead"]
    hardware = result["esl_update_seconds_hardware_random"]
    lines += [
        f"ESL update (prune + regrow, density 0.1): {update * 1e3:.1f} ms, once every {DELTA_T} "
        f"iterations: overhead {100 * overhead:.2f}% of training time against a fixed mask (idle; "
        f"{100 * result['esl_update_overhead_bf16']:.2f}% of esl-qat-bf16's shorter iterations). With "
        f"`grow: hardware-random` (the chip's rewiring, numpy reference, one LFSR draw at a time): "
        f"{hardware * 1e3:.1f} ms, overhead {100 * result['esl_update_overhead_hardware_random']:.2f}%.",
        "",
    ]
    return "\n".join(lines)


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "not installed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=_positive_int, default=20)
    parser.add_argument("--rounds", type=_positive_int, default=5)
    parser.add_argument(
        "--load-processes", type=_non_negative_int, default=os.cpu_count() or 1,
        help="busy processes beside the 'load' condition (default: one per CPU; 0 skips it)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    train = load_mnist(None).train
    spikes = encode_batch(train.images[:BATCH], STEPS)
    labels = torch.from_numpy(train.labels[:BATCH]).long()
    jelly = spikingjelly_available()
    steps = {"snntorch": snntorch_step_fn(spikes, labels)}
    if jelly:
        steps["spikingjelly"] = spikingjelly_step_fn(spikes, labels)
    steps["snntorch-bf16"] = bfloat16_autocast(snntorch_step_fn(spikes, labels))
    if jelly:
        steps["spikingjelly-bf16"] = bfloat16_autocast(spikingjelly_step_fn(spikes, labels))
    steps["esl-qat"] = esl_step_fn(spikes, labels, "qat")
    steps["esl-qat-bf16"] = esl_step_fn(spikes, labels, "qat", torch.bfloat16)
    steps["esl-float"] = esl_step_fn(spikes, labels, "float")
    conditions = {"idle": condition(steps, args.iterations, args.rounds, 0)}
    update = update_seconds(spikes, labels)
    hardware_update = update_seconds(spikes, labels, "hardware-random")
    if args.load_processes > 0:
        with background_load(args.load_processes, seconds=3600):
            conditions["load"] = condition(steps, args.iterations, args.rounds, args.load_processes)
    for measured in conditions.values():
        measured["speedup"] = speedups(measured["images_per_second"])
    idle_iteration = BATCH / conditions["idle"]["images_per_second"]["esl-qat"]
    idle_mixed = BATCH / conditions["idle"]["images_per_second"]["esl-qat-bf16"]
    result = {
        "network": f"784-{HIDDEN}-10 LIF, beta 0.5, hard reset, T={STEPS}, batch {BATCH}, Adam",
        "input_spike_rate": float(spikes.float().mean()),
        "threads": 1,
        "torch": torch.__version__,
        "versions": {name: _version(name) for name in ("snntorch", "spikingjelly")},
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "iterations_per_round": args.iterations,
        "rounds": args.rounds,
        "conditions": conditions,
        "esl_update_seconds": update,
        "esl_update_overhead": update / (DELTA_T * idle_iteration),
        "esl_update_overhead_bf16": update / (DELTA_T * idle_mixed),
        "esl_update_seconds_hardware_random": hardware_update,
        "esl_update_overhead_hardware_random": hardware_update / (DELTA_T * idle_iteration),
        "delta_t": DELTA_T,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (args.out / "throughput.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
