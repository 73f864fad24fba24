"""``esl-hw import-nir`` and ``esl-hw export-nir`` (:mod:`esl_hw.app.nir_commands`).

End to end: a small network is trained here with snnTorch (default ``nn.Linear`` with bias,
``snn.Leaky`` with its subtracting reset), exported with snnTorch's own ``export_to_nir``, imported by
the command, run through the integer reference and co-simulated bit for bit; then written back as
NIR and run by snnTorch. Bad input: one line, exit status 2, nothing left behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

snntorch = pytest.importorskip(
    "snntorch", reason="the nir extra is not installed (pip install 'esl-hw[nir]')"
)

import nir  # noqa: E402
import torch  # noqa: E402
from nir_support import T, chain, snntorch_accuracy, train_snntorch, write_dataset, write_graph  # noqa: E402
from sim_support import needs_icarus  # noqa: E402

from esl_hw.app.cli import main  # noqa: E402
from esl_hw.app.report_schema import undocumented  # noqa: E402
from esl_hw.artifact_io import load_model  # noqa: E402
from esl_hw.datasets import load_dataset  # noqa: E402
from esl_hw.interchange import extra  # noqa: E402
from esl_hw.reference import predict  # noqa: E402

HIDDEN, CLASSES = 10, 3


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A trained snnTorch network exported by snnTorch, its data folder and its own accuracy."""
    folder = tmp_path_factory.mktemp("snntorch")
    data_dir = write_dataset(folder / "data", classes=CLASSES)
    data = load_dataset(data_dir)
    network = train_snntorch(data.train.images, data.train.labels, HIDDEN, CLASSES)
    graph = snntorch.export_to_nir(network, torch.zeros(1, data.n_inputs))
    nir.write(folder / "snn.nir", graph)
    accuracy = snntorch_accuracy(network, data.test.images, data.test.labels)
    return {"graph": folder / "snn.nir", "data": data_dir, "dataset": data, "snntorch_accuracy": accuracy}


def _error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("esl-hw: error: "), lines
    return lines[0]


@needs_icarus
def test_snntorch_to_nir_to_artifact_to_bit_exact_rtl(tmp_path: Path, exported: dict, capsys) -> None:
    from esl_hw.sim import run_cosim

    out = tmp_path / "model"
    argv = ["import-nir", str(exported["graph"]), "--out", str(out), "--data", str(exported["data"])]
    assert main([*argv, "--timesteps", str(T), "--calibration-images", "300"]) == 0
    printed = capsys.readouterr().out
    assert "float_accuracy (NIR graph)" in printed and "int_accuracy (reference)" in printed
    report = json.loads((out / "import_nir.json").read_text())
    assert undocumented("import-nir", report) == [] and report["nir_version"] == "1.0.4"
    assert report["sizes"] == [16, HIDDEN, CLASSES, CLASSES] and report["readout"] == "spikes"
    assert report["calibration_images"] == 300 and report["timesteps"] == T
    # the float NIR graph is snnTorch's network (up to its delayed reset); the integer model tracks it
    assert abs(report["float_accuracy"] - exported["snntorch_accuracy"]) <= 0.05
    assert report["agreement"] >= 0.9 and abs(report["int_accuracy"] - report["float_accuracy"]) <= 0.05
    model = load_model(out)
    hidden = model.hidden_layers
    assert [layer.kind for layer in hidden] == ["lif", "lif"] and all(
        layer.bias is not None for layer in hidden
    )
    assert all(layer.reset == "subtract" and layer.leak_shift == 3 for layer in hidden)  # β = 0.875
    test = exported["dataset"].test
    assert np.mean(predict(model, test.images) == test.labels) == report["int_accuracy"]
    result = run_cosim(model, test.images[:4], simulator="icarus", build_dir=tmp_path / "cosim")
    assert result.ok and result.mismatches == 0 and result.samples == 4


def test_export_nir_runs_in_snntorch_and_keeps_the_output_rule(
    tmp_path: Path, exported: dict, capsys
) -> None:
    model_dir, graph = tmp_path / "model", tmp_path / "back.nir"
    argv = ["import-nir", str(exported["graph"]), "--out", str(model_dir), "--reset", "zero"]
    assert main([*argv, "--timesteps", str(T)]) == 0  # no --data: no calibration, no accuracy
    report = json.loads((model_dir / "import_nir.json").read_text())
    assert report["calibration_images"] == 0 and "float_accuracy" not in report
    capsys.readouterr()
    assert main(["export-nir", str(model_dir), "--out", str(graph), "--data", str(exported["data"])]) == 0
    printed = capsys.readouterr().out
    assert "snntorch_accuracy (import_from_nir)" in printed and "agreement snnTorch vs integer" in printed
    agreement = float(printed.split("agreement snnTorch vs integer")[1].split()[0])
    assert agreement >= 0.95  # zero reset: what snnTorch's importer does too
    assert main(["export-nir", str(model_dir), "--out", str(graph)]) == 2
    assert "exists; pass --force" in _error(capsys)
    assert main(["export-nir", str(model_dir), "--out", str(graph), "--force"]) == 0
    foreign = write_graph(tmp_path / "foreign.nir", *chain(np.random.default_rng(0), [3, 2]))
    assert main(["export-nir", str(model_dir), "--out", str(foreign), "--force"]) == 2
    assert "not a NIR file esl-hw wrote" in _error(capsys)
    link = tmp_path / "link.nir"
    os.symlink(graph, link)
    assert main(["export-nir", str(model_dir), "--out", str(link), "--force"]) == 2
    assert "not a regular file" in _error(capsys)
    assert main(["export-nir", str(model_dir), "--out", str(tmp_path / "no" / "g.nir")]) == 2
    assert "does not exist" in _error(capsys)
    # the graph esl-hw wrote imports back with its own time steps, dt and resets
    again = tmp_path / "again"
    assert main(["import-nir", str(graph), "--out", str(again)]) == 0
    assert load_model(again).timesteps == T and load_model(again).hidden_layers[0].reset == "zero"


def test_bad_graphs_are_one_line_and_leave_nothing(tmp_path: Path, capsys) -> None:
    nodes, edges = chain(np.random.default_rng(1), [4, 3, 2])
    nodes["lif0"] = {"type": "Conv2d", "weight": np.ones((1, 1, 3, 3))}
    cases = [
        (write_graph(tmp_path / "conv.nir", nodes, edges), "node 'lif0' is a Conv2d"),
        (tmp_path / "absent.nir", "does not exist"),
        (tmp_path / "text.nir", "not an HDF5 file"),
    ]
    (tmp_path / "text.nir").write_text("text")
    for graph, fragment in cases:
        assert main(["import-nir", str(graph), "--out", str(tmp_path / "out")]) == 2
        assert fragment in _error(capsys)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_import_refuses_an_existing_out_and_a_leak_far_from_a_shift(tmp_path: Path, capsys) -> None:
    from nir_support import lif

    nodes, edges = chain(np.random.default_rng(2), [4, 3, 2])
    nodes["lif0"] = lif(3, beta=0.1)
    graph = write_graph(tmp_path / "g.nir", nodes, edges)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep")
    assert main(["import-nir", str(graph), "--out", str(tmp_path / "taken")]) == 2
    assert "exists; pass --force" in _error(capsys)
    assert main(["import-nir", str(graph), "--out", str(tmp_path / "m")]) == 2
    assert "β = 0.1 is not near 1 − 2^−k" in _error(capsys)
    assert main(["import-nir", str(graph), "--out", str(tmp_path / "m"), "--v-bits", "99"]) == 2
    _error(capsys)


def test_a_missing_extra_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    real = extra.importlib.import_module

    def without_nir(name, *args):
        if name in ("h5py", "nir"):
            raise ModuleNotFoundError(f"No module named '{name}'")
        return real(name, *args)

    monkeypatch.setattr(extra.importlib, "import_module", without_nir)
    graph = tmp_path / "g.nir"
    graph.write_bytes(b"")
    assert main(["import-nir", str(graph), "--out", str(tmp_path / "m")]) == 2
    assert "needs the 'nir' extra" in _error(capsys)
    model = tmp_path / "model"
    from conftest import random_model

    from esl_hw.artifact_io import save_model

    save_model(random_model(np.random.default_rng(0), (6, 4, 2), timesteps=2), model)
    assert main(["export-nir", str(model), "--out", str(tmp_path / "m.nir")]) == 2
    assert "pip install 'esl-hw[nir]'" in _error(capsys)


def test_export_warns_that_snntorch_resets_to_zero(tmp_path: Path, capsys) -> None:
    from conftest import random_model

    from esl_hw.artifact_io import save_model

    model = tmp_path / "model"
    save_model(random_model(np.random.default_rng(1), (6, 4, 2), timesteps=2, reset="subtract"), model)
    assert main(["export-nir", str(model), "--out", str(tmp_path / "m.nir")]) == 0
    assert "resets by subtraction" in capsys.readouterr().err
    assert main(["import-nir", str(tmp_path / "m.nir"), "--out", str(tmp_path / "back")]) == 0
    assert load_model(tmp_path / "back").hidden_layers[0].reset == "subtract"  # the recorded reset
