"""bench/throughput.py: its peers train, its background load starts and stops, its report is honest
(the timing itself is the bench)."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest
import torch

_PATH = Path(__file__).resolve().parent.parent / "bench" / "throughput.py"
_SPEC = importlib.util.spec_from_file_location("bench_throughput", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = bench
_SPEC.loader.exec_module(bench)


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    spikes = torch.rand(bench.STEPS, 16, 784, generator=generator) < 0.15
    return spikes, torch.randint(0, 10, (16,), generator=generator)


def _first_weight(step: object) -> torch.Tensor:
    """The first weight tensor a variant's step closure trains."""
    for cell in step.__closure__:
        value = cell.cell_contents
        if isinstance(value, torch.optim.Optimizer):
            return value.param_groups[0]["params"][0]
    raise AssertionError("no optimizer in the step")


@pytest.mark.parametrize(
    "variant",
    [
        "snntorch",
        "spikingjelly",
        "snntorch-bf16",
        "spikingjelly-bf16",
        "esl-qat",
        "esl-qat-bf16",
        "esl-float",
    ],
)
def test_every_variant_trains_the_first_layer(variant: str) -> None:
    spikes, labels = _batch()
    if variant.startswith("snntorch"):
        pytest.importorskip("snntorch")
        step = bench.snntorch_step_fn(spikes, labels)
    elif variant.startswith("spikingjelly"):
        if not bench.spikingjelly_available():
            pytest.skip("spikingjelly is not installed (pip install --no-deps spikingjelly==2.0.0 loguru)")
        step = bench.spikingjelly_step_fn(spikes, labels)
    else:
        mode = variant.removeprefix("esl-").removesuffix("-bf16")
        step = bench.esl_step_fn(spikes, labels, mode, torch.bfloat16 if variant.endswith("-bf16") else None)
    weight = _first_weight(step)
    if variant.endswith("-bf16") and not variant.startswith("esl"):
        step = bench.bfloat16_autocast(step)
    assert weight.shape in {(784, bench.HIDDEN), (bench.HIDDEN, 784)}
    before = weight.detach().clone()
    step()
    assert not torch.equal(before, weight.detach())


def test_the_mixed_precision_variants_differ_from_their_float32_forms_only_in_the_gradient() -> None:
    spikes, labels = _batch()
    seen = []
    bench.bfloat16_autocast(
        lambda: seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
    )()
    assert seen == [torch.bfloat16] and not torch.is_autocast_enabled("cpu")
    grads = []
    for precision in (None, torch.bfloat16):
        torch.manual_seed(0)
        step = bench.esl_step_fn(spikes, labels, "qat", precision)
        step()
        grads.append(_first_weight(step).grad.clone())  # the step's gradient (kept after the update)
    exact, mixed = grads
    assert exact.abs().sum() > 0 and not torch.equal(exact, mixed)  # another computation ...
    torch.testing.assert_close(mixed, exact, rtol=0.02, atol=0.02 * float(exact.abs().max()))  # ... of it


def test_background_load_runs_busy_processes_and_stops_them() -> None:
    start = time.monotonic()
    with bench.background_load(2, seconds=60) as workers:
        assert len(workers) == 2 and all(worker.poll() is None for worker in workers)
    assert all(worker.poll() is not None for worker in workers)  # stopped at the end of the block
    assert time.monotonic() - start < 30  # not left to run to their deadline


def test_background_load_stops_by_itself_at_its_deadline() -> None:
    with bench.background_load(1, seconds=1.5) as workers:
        workers[0].wait(timeout=30)
        assert workers[0].returncode == 0  # the busy loop ended on its own, before terminate


def test_speedups_are_ratios_against_each_measured_peer() -> None:
    ratios = bench.speedups({"snntorch": 100.0, "spikingjelly": 125.0, "esl-qat": 250.0})
    assert ratios["snntorch"]["esl-qat"] == 2.5 and ratios["spikingjelly"]["esl-qat"] == 2.0
    assert ratios["snntorch"]["snntorch"] == 1.0
    assert list(bench.speedups({"snntorch": 1.0, "esl-qat": 3.0})) == ["snntorch"]


def _result(idle_load: float, spikingjelly: str) -> dict:
    images = {"snntorch": 1000.0, "esl-qat": 2100.0}
    if spikingjelly != "not installed":
        images["spikingjelly"] = 1200.0
    conditions = {
        name: {
            "load_processes": processes,
            "load_average_1min": [load, load],
            "images_per_second": images,
            "speedup": bench.speedups(images),
        }
        for name, processes, load in (("idle", 0, idle_load), ("load", 2, 3.0))
    }
    return {
        "network": "net",
        "input_spike_rate": 0.13,
        "torch": "2.13.0",
        "versions": {"snntorch": "0.9.1", "spikingjelly": spikingjelly},
        "rounds": 5,
        "iterations_per_round": 20,
        "cpus": 2,
        "machine": "x86_64",
        "conditions": conditions,
        "esl_update_seconds": 0.02,
        "esl_update_overhead": 0.01,
        "esl_update_overhead_bf16": 0.015,
        "esl_update_seconds_hardware_random": 0.04,
        "esl_update_overhead_hardware_random": 0.02,
    }


def test_markdown_says_when_the_idle_condition_was_not_idle() -> None:
    quiet = bench.markdown(_result(0.1, "2.0.0"))
    busy = bench.markdown(_result(2.4, "2.0.0"))
    assert "NOT idle" not in quiet and "NOT idle (load average 2.4" in busy
    assert "| esl-qat | 2100 | 2.10× | 1.75× |" in quiet
    assert "2 busy processes beside it" in quiet


def test_markdown_says_when_spikingjelly_is_missing() -> None:
    text = bench.markdown(_result(0.1, "not installed"))
    assert "SpikingJelly was not installed" in text and "vs spikingjelly" not in text


@pytest.mark.parametrize("argv", [["--iterations", "0"], ["--rounds", "x"], ["--load-processes", "-1"]])
def test_bad_arguments_are_refused_in_one_line(argv: list[str], monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["throughput.py", *argv])
    with pytest.raises(SystemExit) as stopped:
        bench.main()
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("throughput.py: error: argument")
