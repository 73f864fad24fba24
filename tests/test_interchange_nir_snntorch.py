"""A graph esl-hw wrote, run by snnTorch's own importer (:mod:`esl_hw.interchange.nir_snntorch`):
the trained MNIST model comes back within 0.5 points of the integer reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("snntorch", reason="the nir extra is not installed (pip install 'esl-hw[nir]')")

from esl_hw.artifact_io import load_model  # noqa: E402
from esl_hw.datasets import load_embedded  # noqa: E402
from esl_hw.errors import EslError  # noqa: E402
from esl_hw.interchange.nir_snntorch import load_snntorch, snntorch_outputs, snntorch_predictions  # noqa: E402
from esl_hw.interchange.nir_write import model_to_graph, write_nir  # noqa: E402
from esl_hw.reference import predict  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def test_a_trained_model_runs_in_snntorch_within_half_a_point(tmp_path: Path, capsys) -> None:
    """bench/models/mnist_d0.05 (784-800-10, leak shift 1, zero reset) on the 1,000 embedded test
    images: snnTorch's float run of the exported graph against the integer reference."""
    model = load_model(ROOT / "bench" / "models" / "mnist_d0.05")
    path = write_nir(model_to_graph(model), tmp_path / "mnist.nir")
    test = load_embedded().test
    reference = predict(model, test.images)
    imported = snntorch_predictions(path, test.images, model.timesteps, model.encoder)
    int_accuracy = np.mean(reference == test.labels)
    snntorch_accuracy = np.mean(imported == test.labels)
    assert abs(snntorch_accuracy - int_accuracy) <= 0.005, (snntorch_accuracy, int_accuracy)
    assert np.mean(imported == reference) > 0.99
    assert capsys.readouterr().out == ""  # snnTorch's importer prints; esl-hw keeps stdout clean


def test_outputs_sum_the_steps(tmp_path: Path) -> None:
    """A graph whose output layer is a plain Linear: snnTorch's output summed over T steps equals the
    integer reference's accumulator (no neuron in between: the input spikes go straight through)."""
    from esl_hw.artifact import Model, layer_from_dense
    from esl_hw.encoding import encode
    from esl_hw.reference import run

    rng = np.random.default_rng(0)
    layer = layer_from_dense(rng.integers(-50, 50, (12, 4)), "output", 8, bias=rng.integers(-5, 5, 4))
    model = Model((layer,), timesteps=5)
    path = write_nir(model_to_graph(model), tmp_path / "linear.nir")
    images = rng.integers(0, 256, (30, 12), dtype=np.uint8)
    outputs = snntorch_outputs(path, images, 5)
    assert np.array_equal(outputs, run(model, encode(images, 5)).outputs)


def test_a_graph_snntorch_cannot_map_or_run_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.nir"
    bad.write_text("nothing")
    with pytest.raises(EslError, match="snnTorch cannot import this graph"):
        load_snntorch(bad)
    from test_interchange_nir_write import small_model  # a CubaLIF layer: snnTorch 0.9.1 fails on it

    model = small_model(np.random.default_rng(1))
    path = write_nir(model_to_graph(model), tmp_path / "cuba.nir")
    with pytest.raises(EslError, match="snnTorch cannot run this graph"):
        snntorch_predictions(path, np.full((2, 9), 200, dtype=np.uint8), model.timesteps)
