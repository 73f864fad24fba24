"""bench/train_runs.py: a bench's options applied to a config, the machine and load records, and a job
(training and scoring are exercised by the benches' own tests)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import pytest

from esl_hw.train.config import load_config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import train_runs as bench  # noqa: E402  (bench/ is not a package; the benches import it by this name)


def _options(**changes) -> argparse.Namespace:
    values = {"data": None, "train_samples": None, "device": "cpu", "delta_t": None} | changes
    return argparse.Namespace(**values)


def test_override_applies_the_options_and_keeps_the_rest() -> None:
    base = load_config(bench.CONFIGS / "mnist_multispike_d0.1.yaml")
    same = bench._override(base, _options(), 0, None)
    assert same == base  # no option given: the config's own data, device, epochs and sparsity
    options = _options(data="/data/mnist", train_samples=500, device="cuda", delta_t=7)
    config = bench._override(base, options, 3, 2, grow="momentum")
    assert (config.seed, config.data.path, config.data.train_samples) == (3, "/data/mnist", 500)
    assert (config.train.device, config.train.epochs) == ("cuda", 2)
    assert (config.sparsity.delta_t, config.sparsity.grow) == (7, "momentum")
    assert config.sparsity.density == base.sparsity.density and config.model == base.model


def test_job_is_a_frozen_record_of_one_run() -> None:
    config = load_config(bench.CONFIGS / "mnist_multispike_d0.1.yaml")
    job = bench.Job("multi_d0.1", "multi", 0, config, 0.1, "random")
    assert (job.density, job.grow) == (0.1, "random")
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.seed = 1  # type: ignore[misc]
    assert bench.Job("single", "single", 0, config).density is None


def test_machine_and_load_records() -> None:
    machine = bench._machine()
    assert set(machine) == {"cpu", "cores", "python", "torch"} and machine["cores"] >= 1
    load = bench._load()
    assert len(load) == 3 and all(value == round(value, 2) >= 0 for value in load)
    assert bench.E_MAC == 4.6e-12 and bench.E_AC == 0.9e-12
