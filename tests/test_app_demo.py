"""``esl-hw demo`` (:mod:`esl_hw.app.demo`): train, export, check against torch, generate and
co-simulate in one folder, run as ``python -m esl_hw`` from another working directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from esl_hw.app.plots import CONFUSION_FILE, CYCLES_FILE, TRAINING_FILES
from esl_hw.app.report_schema import undocumented
from esl_hw.artifact_io import load_model

TINY_CONFIG = """\
seed: 3
data: {train_samples: 600, val_fraction: 0.2}
model: {hidden: [24], timesteps: 4}
sparsity: {density: 0.2, delta_t: 5}
train: {epochs: 2, batch_size: 50}
"""

SUMMARY_KEYS = {
    "float_accuracy",
    "int_accuracy",
    "rtl_accuracy",
    "rtl_samples",
    "rtl_mismatches",
    "density",
    "synapses",
    "cycles_per_inference",
    "cycle_floor",
    "memory_bits",
    "energy_per_inference_j",
    "simulator",
}


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(TINY_CONFIG)
    return path


def test_demo_runs_from_any_folder_and_writes_the_summary(tmp_path: Path, tiny_config: Path) -> None:
    out = tmp_path / "demo-out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "esl_hw",
            "demo",
            "--out",
            "demo-out",
            "--config",
            str(tiny_config),
            "--samples",
            "3",
            "--hidden",
            "20",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary.keys() >= SUMMARY_KEYS
    assert summary["rtl_samples"] == 3 and summary["rtl_mismatches"] == 0
    assert summary["torch_reference_mismatches"] == 0 and summary["test_samples"] == 1000
    assert summary["simulator"] == "verilator"
    assert summary["seed"] == summary["config"]["seed"] and summary["config"]["model"]["hidden"] == [20]
    assert summary["provenance"]["command_line"][:2] == ["esl-hw", "demo"]
    assert undocumented("demo", summary) == [] and summary["figures"] == [
        f"cosim/{CYCLES_FILE}",
        f"cosim/{CONFUSION_FILE}",
    ]
    assert "## Provenance" in (out / "summary.md").read_text()
    # the folder holds what the stage commands write: rtl's memory bits and report, sim's report
    assert json.loads((out / "rtl" / "memory_bits.json").read_text()) == summary["memory_bits"]
    assert json.loads((out / "rtl" / "rtl.json").read_text())["memory_bits"] == summary["memory_bits"]
    sim = json.loads((out / "cosim" / "sim.json").read_text())
    assert sim["cycles_per_inference"] == summary["cycles_per_inference"] and sim["rtl_mismatches"] == 0
    assert sum(map(sum, summary["confusion_rtl"])) == 3 and summary["classes"] == 10
    for name in (*summary["figures"], *(f"run/{file}" for file in TRAINING_FILES)):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    assert json.loads((out / "run" / "train.json").read_text())["config"] == summary["config"]
    model = load_model(out / "model")
    assert model.layers[0].n_out == 20 and summary["synapses"] == model.synapses
    rtl, reference = summary["rtl_accuracy"], summary["reference_accuracy_rtl_samples"]
    assert f"accuracy on the 3 RTL images  RTL {rtl:.4f}, reference {reference:.4f}" in done.stdout
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    # progress on stderr (plain lines: not a terminal), the same lines in the folder's log
    for stage in ("demo: train done in", "train epoch 1/", "build: verilator", "cosim: verilator 3/3 images"):
        assert stage in done.stderr, done.stderr
    log = (out / "esl-hw.log").read_text()
    command_line = f"esl-hw demo --out demo-out --config {tiny_config} --samples 3 --hidden 20"
    assert log.splitlines()[0].endswith(command_line)
    assert "demo: cosim done in" in log and "train epoch 1/" in log
    # the simulator build is in the build cache, so the folder stays small
    size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    assert size < 10_000_000, f"demo folder holds {size} bytes"
