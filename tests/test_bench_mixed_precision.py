"""bench/mixed_precision.py: the two runs of a seed differ only in the weight gradient; the page reports
what the runs measured, seed by seed (the training itself is the bench)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parent.parent / "bench" / "mixed_precision.py"
_SPEC = importlib.util.spec_from_file_location("bench_mixed_precision", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = bench
_SPEC.loader.exec_module(bench)


def test_each_seed_has_a_float32_and_a_bfloat16_run_that_differ_only_there() -> None:
    jobs = bench.plan("mnist_multispike_d0.1.yaml", "/data/mnist", 3, (0, 4))
    assert [job.name for job in jobs] == [
        "float32_e3_s0",
        "bfloat16_e3_s0",
        "float32_e3_s4",
        "bfloat16_e3_s4",
    ]
    for exact, mixed in (jobs[:2], jobs[2:]):
        assert (exact.config.train.weight_grad, mixed.config.train.weight_grad) == ("float32", "bfloat16")
        assert exact.seed == mixed.seed == exact.config.seed
        assert exact.config.data.path == "/data/mnist" and exact.config.train.epochs == 3
        same = dataclasses.replace(
            mixed.config, train=dataclasses.replace(mixed.config.train, weight_grad="float32")
        )
        assert same == exact.config


def test_epoch_seconds_is_the_mean_of_the_metrics_log(tmp_path: Path) -> None:
    assert bench.epoch_seconds(tmp_path) is None
    lines = [json.dumps({"epoch": epoch, "seconds": seconds}) for epoch, seconds in ((1, 10.0), (2, 13.0))]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert bench.epoch_seconds(tmp_path) == 11.5


def test_the_page_gives_each_run_and_the_difference_per_seed() -> None:
    def row(seed: int, precision: str, accuracy: float) -> dict:
        return {
            "seed": seed, "weight_grad": precision, "test_accuracy_integer": accuracy,
            "test_accuracy_float": accuracy, "best_epoch": 3, "epoch_seconds": 9.5,
        }  # fmt: skip

    results = {
        "command": "python bench/mixed_precision.py --epochs 3", "date": "2026-12-05",
        "config": "mnist_multispike_d0.1.yaml", "epochs": 3, "data": "MNIST", "load_average": [0.1, 0.2, 0.3],
        "runs": [row(0, "bfloat16", 0.9790), row(0, "float32", 0.9801), row(1, "float32", 0.9750)],
    }  # fmt: skip
    text = bench.markdown(results)
    assert "| 0 | float32 | 98.01% |" in text and "| 0 | bfloat16 | 97.90% |" in text
    assert text.index("| 0 | float32") < text.index("| 0 | bfloat16") < text.index("| 1 | float32")
    assert "seed by seed: -0.11." in text  # seed 1 has one run only: no difference for it
