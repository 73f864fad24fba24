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
from esl_hw.app.plots import CONFUSION_FILE, CYCLES_FILE, TRAINING_FILES
from esl_hw.app.report_schema import undocumented
from esl_hw.artifact_io import load_model, save_model
from esl_hw.datasets import load_mnist
from esl_hw.reference import predict

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
    exported = json.loads((model / "export.json").read_text())
    assert undocumented("export", exported) == [] and exported["synapses"] == artifact.synapses
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
    assert undocumented("sim", report) == [] and report["figures"] == [CYCLES_FILE, CONFUSION_FILE]
    assert all((sim / name).read_bytes()[:4] == b"\x89PNG" for name in report["figures"])
    captured = capsys.readouterr()
    assert "mismatching samples" in captured.out
    # the build lives in the session's build cache, not in --out; a second sim reuses it
    assert "build: icarus done in" in captured.err and "cosim: icarus 4/4 images" in captured.err
    assert not [path for path in sim.rglob("*") if path.suffix in (".vvp", ".v")]
    command_line = " ".join(["esl-hw", *argv, "--e-sop", "2.5", "--e-mem", "0"])
    assert (sim / "esl-hw.log").read_text().splitlines()[0].endswith(command_line)
    assert main([*argv[:-1], str(tmp_path / "sim2")]) == 0
    assert "build: reused cached build icarus-" in capsys.readouterr().err
    assert "train epoch 2/2" in (run / "esl-hw.log").read_text()
    compared = tmp_path / "compare"
    argv = ["compare", str(model), "--out", str(compared), "--samples", "3", "--simulator", "icarus"]
    assert main(argv) == 0
    comparison = json.loads((compared / "compare.json").read_text())
    assert comparison["float_source"] == str(run.resolve()) and 0 <= comparison["float_accuracy"] <= 1
    assert comparison["int_samples"] == 1000 and comparison["rtl_samples"] == 3
    assert comparison["rtl_mismatches"] == 0 and comparison["potentials_checked"]
    assert undocumented("compare", comparison) == []
    markdown = (compared / "compare.md").read_text()
    assert "| RTL |" in markdown and "## Provenance" in markdown
    assert comparison["neurobench"]["samples"] == 3 and "NeuroBench 2.3.0 metrics over 3 images" in markdown
    assert f"![confusion]({CONFUSION_FILE})" in markdown
    # the confusion counts are those of the predictions on the 3 co-simulated images
    test = load_mnist(None).test
    expected = np.zeros((10, 10), dtype=int)
    for label, prediction in zip(test.labels[:3], predict(artifact, test.images[:3]), strict=True):
        expected[label, prediction] += 1
    assert comparison["classes"] == 10
    assert comparison["confusion_reference"] == comparison["confusion_rtl"] == expected.tolist()
    assert (compared / CONFUSION_FILE).read_bytes()[:4] == b"\x89PNG"
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

    from esl_hw.artifact import Model
    from esl_hw.artifact_io import save_model
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
    # streaming is on by default; --no-streaming builds one set of counters (same memories)
    assert main(["rtl", str(model_dir), "--out", str(tmp_path / "plain"), "--no-streaming"]) == 0
    assert json.loads((tmp_path / "plain" / "memory_bits.json").read_text()) == own
    reports = {name: json.loads((tmp_path / name / "rtl.json").read_text()) for name in ("own", "plain")}
    assert reports["own"]["streaming"] is True and reports["plain"]["streaming"] is False
    verilog = {name: (tmp_path / name / reports[name]["verilog"]).read_text() for name in ("own", "plain")}
    assert "run_sops_1" in verilog["own"] and "run_sops_1" not in verilog["plain"]


def test_training_writes_its_curves_and_report_also_when_resumed(tmp_path: Path, tiny_config: Path) -> None:
    from esl_hw.app.stages import training_config
    from esl_hw.train.loop import train

    run = tmp_path / "run"

    def killed(folder: Path) -> None:  # the process dies after the last epoch, before publishing
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(training_config(tiny_config, None), run, progress=False, on_complete=killed)
    assert not run.exists()
    assert main(["train", str(tiny_config), "--out", str(run), "--resume"]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    report = json.loads((run / "train.json").read_text())
    assert undocumented("train", report) == [] and report["figures"] == list(TRAINING_FILES)
    assert report["epochs"] == len(records) == 2 and report["seed"] == 3 == report["config"]["seed"]
    assert report["final_loss"] == records[-1]["loss"]
    updates = [update for record in records for update in record["esl_updates"]]
    assert report["esl_updates"] == len(updates) > 0
    assert report["connections_rewired"] == sum(layer["pruned"] for u in updates for layer in u["layers"]) > 0
    assert report["provenance"]["command_line"][-1] == "--resume"
    marker = json.loads((run / ".esl-hw-output.json").read_text())
    for name in (*TRAINING_FILES, "train.json", "train.md"):
        data = (run / name).read_bytes()
        assert len(data) > 1000 and name in marker["entries"]
        assert data[:4] == b"\x89PNG" or name.startswith("train.")


# ---------------------------------------------------------------- datasets of any size: IDX and NPZ

SMALL_DATA_CONFIG = """\
seed: 1
data: {val_fraction: 0.2}
model: {hidden: [16, 8], timesteps: 4}
sparsity: {density: 0.5, delta_t: 3}
train: {epochs: 3, batch_size: 30, lr: 0.01}
"""


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An 8x8-pixel, 3-class dataset as NPZ and as IDX files, and a config for a tiny network."""
    from data_support import tiny_splits, write_idx_dataset, write_npz_dataset

    root = tmp_path_factory.mktemp("small-data")
    splits = tiny_splits(np.random.default_rng(6), shape=(8, 8), classes=3, train=300, test=60)
    (root / "small.yaml").write_text(SMALL_DATA_CONFIG)
    return {
        "npz": write_npz_dataset(root / "npz", splits),
        "idx": write_idx_dataset(root / "idx", splits, compress=True),
        "config": root / "small.yaml",
    }


@pytest.fixture(scope="module")
def small_model(small_data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 64-16-8-3 model trained and exported through the command line on the NPZ dataset."""
    root = tmp_path_factory.mktemp("small-model")
    argv = ["train", str(small_data["config"]), "--data", str(small_data["npz"]), "--out", str(root / "run")]
    assert main(argv) == 0
    assert main(["export", str(root / "run"), "--out", str(root / "model")]) == 0
    return root / "model"


@pytest.mark.parametrize("kind", ["npz", "idx"])
def test_train_export_eval_on_a_dataset_of_64_pixels_and_3_classes(
    small_data: dict[str, Path], tmp_path: Path, kind: str, capsys
) -> None:
    data = str(small_data[kind])
    assert main(["train", str(small_data["config"]), "--data", data, "--out", str(tmp_path / "run")]) == 0
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "model")]) == 0
    model = load_model(tmp_path / "model")
    assert model.n_inputs == 64 and [layer.n_out for layer in model.layers] == [16, 8, 3]
    assert main(["eval", str(tmp_path / "model"), "--data", data, "--out", str(tmp_path / "eval")]) == 0
    report = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert report["dataset"] == data and report["test_images"] == 60
    assert report["int_accuracy"] > 0.6  # chance is 1/3
    assert f"integer reference on {data}" in capsys.readouterr().out


def test_a_model_and_data_of_other_sizes_are_one_error_naming_both(
    small_model: Path, small_data: dict[str, Path], tmp_path: Path, capsys
) -> None:
    from test_app_cli import fails_cleanly

    message = "images have 784 pixels (28x28), the model has 64 inputs"
    fails_cleanly(capsys, ["eval", str(small_model)], message)
    fails_cleanly(capsys, ["sim", str(small_model), "--out", str(tmp_path / "sim")], message)
    fails_cleanly(capsys, ["compare", str(small_model), "--out", str(tmp_path / "compare")], message)
    mnist_model = save_model(random_model(np.random.default_rng(1), (784, 7, 10)), tmp_path / "mnist")
    fails_cleanly(
        capsys,
        ["eval", str(mnist_model), "--data", str(small_data["npz"])],
        "images have 64 pixels (8x8), the model has 784 inputs",
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mnist"]


def test_a_bad_npz_dataset_is_exit_status_2_and_one_line(
    small_model: Path, small_data: dict[str, Path], tmp_path: Path, capsys
) -> None:
    from test_app_cli import fails_cleanly

    bad = tmp_path / "bad"
    shutil.copytree(small_data["npz"], bad)
    np.savez(bad / "test.npz", x=np.zeros((2, 8, 8), np.float32), y=np.array([0, 1]))
    train = ["train", str(small_data["config"]), "--data", str(bad), "--out", str(tmp_path / "run")]
    fails_cleanly(capsys, train, "test.npz array x: images must be uint8 (values 0..255), got dtype float32")
    np.savez(bad / "test.npz", x=np.zeros((2, 8, 8), np.uint8), y=np.array([0, 1, 2]))
    fails_cleanly(capsys, ["eval", str(small_model), "--data", str(bad)], "x has 2 images but y has 3 labels")
    np.savez(bad / "test.npz", x=np.zeros((2, 8, 8), np.uint8), y=np.array([None, 1]))  # pickled
    eval_bad = ["eval", str(small_model), "--data", str(bad)]
    fails_cleanly(capsys, eval_bad, "labels must be integers, got dtype object")
    (bad / "test.npz").unlink()
    fails_cleanly(capsys, ["eval", str(small_model), "--data", str(bad)], "has train.npz but lacks test.npz")
    assert not (tmp_path / "run").exists()


def test_sim_of_a_64_input_model_on_its_data_is_bit_exact(
    small_model: Path, small_data: dict[str, Path], tmp_path: Path
) -> None:
    data = str(small_data["npz"])
    argv = ["sim", str(small_model), "--data", data, "--samples", "6", "--out", str(tmp_path / "sim")]
    assert main(argv) == 0
    report = json.loads((tmp_path / "sim" / "sim.json").read_text())
    assert report["rtl_samples"] == 6 and report["rtl_mismatches"] == 0 and not report["rtl_problems"]
    assert report["potentials_checked"] and report["sops_counter_matches_reference"]
    neurobench = report["neurobench"]  # over the same images; synapses of weight 0 cost NeuroBench nothing
    assert neurobench["samples"] == 6 and neurobench["SynapticOperations"]["Effective_MACs"] == 0
    assert 0 < neurobench["SynapticOperations"]["Effective_ACs"] <= report["sops_per_inference"]
    assert "| SynapticOperations Effective_ACs |" in (tmp_path / "sim" / "sim.md").read_text()
