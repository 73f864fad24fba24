"""The stages through the command line (:mod:`esl_hw.app.stages`): each on its own, files in between.

The integration test of the whole path: a tiny network is trained, exported, evaluated, turned into
Verilog, co-simulated bit for bit and compared (``esl-hw demo``, all in one: tests/test_app_demo.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import random_model

from esl_hw.app.cli import main
from esl_hw.artifact import load_model, save_model

TINY_CONFIG = """\
seed: 3
data: {train_samples: 600, val_fraction: 0.2}
model: {hidden: [24], timesteps: 4}
sparsity: {density: 0.2, delta_t: 5}
train: {epochs: 2, batch_size: 50}
"""


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(TINY_CONFIG)
    return path


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog (iverilog) is not installed")
def test_stages_one_by_one_with_files_in_between(tmp_path: Path, tiny_config: Path, capsys) -> None:
    run, model, rtl, sim = (tmp_path / name for name in ("run", "model", "rtl", "sim"))
    assert main(["train", str(tiny_config), "--out", str(run)]) == 0
    assert (run / "checkpoint.pt").is_file() and (run / "metrics.jsonl").is_file()
    assert main(["export", str(run), "--out", str(model)]) == 0
    artifact = load_model(model)
    assert [layer.n_out for layer in artifact.layers] == [24, 10] and artifact.timesteps == 4
    assert main(["eval", str(model)]) == 0
    assert main(["rtl", str(model), "--out", str(rtl)]) == 0
    verilog = list(rtl.glob("*.v"))
    assert len(verilog) == 1 and "module" in verilog[0].read_text()
    capsys.readouterr()
    argv = ["sim", str(model), "--samples", "4", "--simulator", "icarus", "--out", str(sim)]
    assert main([*argv, "--e-sop", "2.5", "--e-mem", "0"]) == 0
    report = json.loads((sim / "sim.json").read_text())
    energy = report["energy_breakdown"]
    assert energy["constant_e_sop"] == 2.5e-12 and energy["memory_j"] == 0
    assert report["energy_per_inference_j"] == report["sops_per_inference"] * 2.5e-12
    assert report["rtl_samples"] == 4 and report["rtl_mismatches"] == 0 and not report["rtl_problems"]
    assert report["simulator"] == "icarus" and report["sops_counter_matches_reference"]
    assert report["cycles_per_inference"] >= report["cycle_floor"] > 0
    assert "mismatching samples" in capsys.readouterr().out
    compared = tmp_path / "compare"
    argv = ["compare", str(model), "--out", str(compared), "--samples", "3", "--simulator", "icarus"]
    assert main(argv) == 0
    comparison = json.loads((compared / "compare.json").read_text())
    assert comparison["float_source"] == str(run.resolve()) and 0 <= comparison["float_accuracy"] <= 1
    assert comparison["int_samples"] == 1000 and comparison["rtl_samples"] == 3
    assert comparison["rtl_mismatches"] == 0 and comparison["potentials_checked"]
    assert "| RTL |" in (compared / "compare.md").read_text()
    # the float model of another network, or a run that is not there, is refused, not shown
    other = save_model(random_model(np.random.default_rng(1), (784, 7, 10), timesteps=4), tmp_path / "other")
    for argv in (
        ["compare", str(other), "--out", str(tmp_path / "c2"), "--run", str(run)],
        ["compare", str(model), "--out", str(tmp_path / "c3"), "--run", str(tmp_path / "absent")],
    ):
        assert main([*argv, "--samples", "1", "--simulator", "icarus"]) == 2
        assert not (tmp_path / "c2").exists() and not (tmp_path / "c3").exists()
    assert "784-24-10 network, the model is 784-7-10" in capsys.readouterr().err
    # a second export onto the same folder needs --force and keeps the first one intact
    assert main(["export", str(run), "--out", str(model)]) == 2
    assert load_model(model).synapses == artifact.synapses


def test_lanes_default_to_the_lanes_the_model_was_trained_for(tmp_path: Path) -> None:
    import numpy as np
    from conftest import random_model

    from esl_hw.artifact import Model, save_model
    from esl_hw.rtl_gen import memory_bits

    base = random_model(np.random.default_rng(4), (30, 16, 5), timesteps=2)
    rewiring = {"lanes": 2, "lfsr_states": [0xACE1] * len(base.layers)}
    model = Model(base.layers, base.timesteps, metadata={"rewiring": rewiring})
    model_dir = save_model(model, tmp_path / "model")
    assert main(["rtl", str(model_dir), "--out", str(tmp_path / "own")]) == 0
    assert main(["rtl", str(model_dir), "--out", str(tmp_path / "one"), "--lanes", "1"]) == 0
    own = json.loads((tmp_path / "own" / "memory_bits.json").read_text())
    one = json.loads((tmp_path / "one" / "memory_bits.json").read_text())
    assert own == json.loads(json.dumps(memory_bits(model, lanes=2))) != one
