"""An integer model as a NIR graph (:mod:`esl_hw.interchange.nir_write`): the nodes and parameters of
the mapping, the metadata, the round trip through esl-hw's own import, and the atomic write."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

nir = pytest.importorskip("nir", reason="the nir extra is not installed (pip install 'esl-hw[nir]')")

from nir_support import chain, write_graph  # noqa: E402

from esl_hw.artifact import Model, layer_from_dense  # noqa: E402
from esl_hw.interchange import nir_write  # noqa: E402
from esl_hw.interchange.nir_float import discretise  # noqa: E402
from esl_hw.interchange.nir_quantise import quantise  # noqa: E402
from esl_hw.interchange.nir_read import read_nir  # noqa: E402
from esl_hw.interchange.nir_write import model_to_graph, write_nir, written_by_esl_hw  # noqa: E402


def full_range(rng: np.random.Generator, n_in: int, n_out: int, w_bits: int) -> np.ndarray:
    """Random weights within ±(2^(w_bits−1) − 1) that reach the top: the import's scale then
    reproduces them exactly."""
    top = (1 << (w_bits - 1)) - 1
    dense = rng.integers(-top, top + 1, (n_in, n_out)) * (rng.random((n_in, n_out)) < 0.6)
    dense[0, 0] = top
    return dense


def small_model(rng: np.random.Generator) -> Model:
    """lif (bias, subtract, leak 2) -> cubalif (no bias, zero reset, no leak, syn 1) -> output (bias)."""
    layers = (
        layer_from_dense(
            full_range(rng, 9, 7, 6), "lif", 6, 12, 20, 2, bias=rng.integers(-40, 40, 7), reset="subtract"
        ),
        layer_from_dense(full_range(rng, 7, 5, 6), "cubalif", 6, 12, 17, None, reset="zero", syn_shift=1),
        layer_from_dense(full_range(rng, 5, 3, 6), "output", 6, bias=rng.integers(-9, 9, 3)),
    )
    return Model(layers, timesteps=7)


def test_the_graph_has_the_documented_nodes_and_parameters() -> None:
    model = small_model(np.random.default_rng(1))
    graph = model_to_graph(model, dt=1e-3)
    kinds = {name: type(node).__name__ for name, node in graph.nodes.items()}
    assert kinds == {
        "input": "Input", "fc0": "Affine", "lif0": "LIF", "fc1": "Linear", "cubalif1": "CubaLIF",
        "fc2": "Affine", "output": "Output",
    }  # fmt: skip
    order = ["input", "fc0", "lif0", "fc1", "cubalif1", "fc2", "output"]
    assert graph.edges == list(zip(order, order[1:], strict=False))
    lif = graph.nodes["lif0"]
    assert np.allclose(lif.tau, 1e-3 * 4) and np.allclose(lif.r, 4) and np.allclose(lif.v_threshold, 19.5)
    cuba = graph.nodes["cubalif1"]
    assert np.allclose(cuba.tau_mem, 1e-3 * 2.0**60) and np.allclose(cuba.tau_syn, 2e-3)
    assert np.allclose(cuba.w_in, 2.0) and np.allclose(cuba.r, 2.0**60)
    assert np.array_equal(graph.nodes["fc0"].weight, model.layers[0].dense_weight().T)
    assert graph.nodes["fc0"].weight.dtype == np.float32
    metadata = json.loads(graph.metadata["esl_hw"])
    assert metadata["timesteps"] == 7 and metadata["resets"] == ["subtract", "zero"]
    assert metadata["encoder"] == {"kind": "rate", "phase0": 128} and metadata["dt"] == 1e-3


def test_export_then_import_gives_the_same_model(tmp_path: Path) -> None:
    """The writer's mapping inverted by the reader: same weights, biases, thresholds, shifts, resets."""
    model = small_model(np.random.default_rng(2))
    path = write_nir(model_to_graph(model), tmp_path / "model.nir")
    network = read_nir(path)
    assert network.version == nir.version and network.esl_hw["writer"] == nir_write.WRITER
    back = quantise(discretise(network, network.esl_hw["dt"]), 6, 12, network.esl_hw["timesteps"]).model
    assert back.timesteps == 7
    for before, after in zip(model.layers, back.layers, strict=True):
        assert repr(before) == repr(after)
        for name in ("row_ptr", "col", "weight"):  # layer_from_dense keeps the non-zero weights
            assert np.array_equal(getattr(before, name), getattr(after, name))
        assert (before.bias is None) == (after.bias is None)
        assert before.bias is None or np.array_equal(before.bias, after.bias)


def test_wide_weights_are_written_as_float64() -> None:
    dense = np.array([[1 << 25], [3]])
    model = Model((layer_from_dense(dense, "output", 28),), timesteps=1)
    assert model_to_graph(model).nodes["fc0"].weight.dtype == np.float64


def test_the_write_is_atomic_and_marked(tmp_path: Path, monkeypatch) -> None:
    model = small_model(np.random.default_rng(3))
    target = tmp_path / "g.nir"
    write_nir(model_to_graph(model), target)
    assert written_by_esl_hw(target)
    before = target.read_bytes()

    def broken(filename, graph):
        Path(filename).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(nir, "write", broken)
    with pytest.raises(OSError, match="disk full"):
        write_nir(model_to_graph(model), target)
    assert target.read_bytes() == before and sorted(tmp_path.iterdir()) == [target]


def test_only_esl_hw_files_are_recognised_as_its_own(tmp_path: Path) -> None:
    nodes, edges = chain(np.random.default_rng(4), [3, 2])
    foreign = write_graph(tmp_path / "other.nir", nodes, edges)
    text = tmp_path / "notes.nir"
    text.write_text("hello")
    assert not written_by_esl_hw(foreign) and not written_by_esl_hw(text)
    assert not written_by_esl_hw(tmp_path) and not written_by_esl_hw(tmp_path / "absent.nir")
