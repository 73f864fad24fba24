"""The NIR reader (:mod:`esl_hw.interchange.nir_read`): the layouts of nir 1.0.4 and 1.0.8, and every
refusal, each one line naming what is wrong, before anything big is read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("h5py", reason="the nir extra is not installed (pip install 'esl-hw[nir]')")

import h5py  # noqa: E402
from nir_support import affine, chain, lif, write_graph  # noqa: E402

from esl_hw.errors import EslError  # noqa: E402
from esl_hw.interchange.nir_read import SUPPORTED, read_nir  # noqa: E402


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_reads_a_snntorch_style_graph(tmp_path: Path, rng) -> None:
    nodes, edges = chain(rng, [6, 5, 3])
    network = read_nir(write_graph(tmp_path / "g.nir", nodes, edges))
    assert network.sizes == [6, 5, 3] and network.version == "1.0.4" and network.esl_hw == {}
    first, last = network.stages
    assert np.array_equal(first.synapses.weight, nodes["fc0"]["weight"].astype(np.float64))
    assert np.array_equal(first.synapses.bias, nodes["fc0"]["bias"].astype(np.float64))
    neurons = first.neurons
    assert neurons.kind == "LIF" and neurons.v_reset is None
    assert all(values.shape == (5,) for values in neurons.params.values())  # scalars broadcast
    assert np.allclose(neurons.params["tau"], 8e-4) and last.neurons.name == "lif1"


def test_reads_the_layout_of_newer_nir_versions(tmp_path: Path, rng) -> None:
    """nir 1.0.8 writes v_reset, gzip-compressed arrays and a string-typed version; nir 1.0.4's own
    nir.read fails on such a file (LIF() got an unexpected keyword argument 'v_reset')."""
    nodes, edges = chain(rng, [4, 3, 2], last_neurons=False, vector=True, v_reset=np.zeros(3))
    path = write_graph(tmp_path / "new.nir", nodes, edges, version="1.0.8", compression="gzip")
    with h5py.File(path) as handle:
        assert handle["node/nodes/fc0/weight"].compression == "gzip"
    network = read_nir(path)
    assert network.version == "1.0.8" and np.array_equal(network.stages[0].neurons.v_reset, np.zeros(3))
    assert network.stages[-1].neurons is None and network.sizes == [4, 3, 2]


def test_flatten_after_input_linear_if_cubalif_and_metadata(tmp_path: Path, rng) -> None:
    nodes = {
        "in": {"type": "Input", "shape": np.array([2, 3])},
        "flat": {"type": "Flatten", "start_dim": 0, "end_dim": -1},
        "w": affine(rng, 6, 4, bias=False),
        "if": {"type": "IF", "r": np.ones(4), "v_threshold": np.full(4, 2.0)},
        "w2": affine(rng, 4, 2),
        "cuba": {
            "type": "CubaLIF",
            **{key: np.full(2, value) for key, value in (("tau_syn", 2e-4), ("tau_mem", 4e-4), ("r", 4.0))},
            "v_leak": np.zeros(2),
            "v_threshold": np.ones(2),
        },
        "out": {"type": "Output", "shape": np.array([2])},
    }
    order = list(nodes)
    metadata = {"esl_hw": json.dumps({"timesteps": 5})}
    network = read_nir(
        write_graph(tmp_path / "g.nir", nodes, list(zip(order, order[1:], strict=False)), metadata=metadata)
    )
    assert network.sizes == [6, 4, 2] and network.esl_hw == {"timesteps": 5}
    assert network.stages[0].synapses.bias is None and network.stages[0].neurons.kind == "IF"
    assert network.stages[1].neurons.kind == "CubaLIF"
    assert np.array_equal(network.stages[1].neurons.params["w_in"], np.ones(2))  # absent: 1


def _written(tmp_path: Path, rng, change) -> Path:
    nodes, edges = chain(rng, [4, 3, 2])
    edges = change(nodes, edges) or edges
    return write_graph(tmp_path / "bad.nir", nodes, edges)


def _refused(path: Path, *fragments: str) -> str:
    with pytest.raises(EslError) as caught:
        read_nir(path)
    message = str(caught.value)
    assert "\n" not in message and all(fragment in message for fragment in fragments), message
    return message


def test_an_unsupported_node_is_refused_by_name(tmp_path: Path, rng) -> None:
    def conv(nodes, edges):
        nodes["lif0"] = {"type": "Conv2d", "weight": np.ones((1, 1, 3, 3))}

    message = _refused(_written(tmp_path, rng, conv), "node 'lif0' is a Conv2d", "does not import")
    assert all(name in message for name in SUPPORTED)


def test_a_subgraph_is_refused(tmp_path: Path, rng) -> None:
    path = tmp_path / "sub.nir"
    nodes, edges = chain(rng, [4, 3, 2])
    write_graph(path, nodes, edges)
    with h5py.File(path, "a") as handle:
        del handle["node/nodes/lif0/type"]
        handle["node/nodes/lif0"].create_dataset("type", data="NIRGraph", dtype=h5py.string_dtype())
    _refused(path, "'lif0' is a NIRGraph", "recurrent")


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda nodes, edges: [*edges, ("lif0", "fc0")], "recurrent or branching"),  # LIF -> fc0 -> LIF
        (lambda nodes, edges: [*edges, ("input", "fc1")], "feeds two nodes"),
        (lambda nodes, edges: [*edges, ("fc0", "fc1")], "feeds two nodes"),
        (lambda nodes, edges: [*edges, ("lif0", "output")], "feeds two nodes"),
        (lambda nodes, edges: [edge for edge in edges if edge != ("lif1", "output")], "ends at 'lif1'"),
        (lambda nodes, edges: [*edges, ("nowhere", "fc0")], "names no node 'nowhere'"),
        (lambda nodes, edges: [*edges, edges[0]], "listed twice"),
    ],
)
def test_graphs_that_are_not_one_chain_are_refused(tmp_path: Path, rng, change, fragment: str) -> None:
    _refused(_written(tmp_path, rng, change), fragment)


def test_a_recurrent_loop_off_the_chain_is_refused(tmp_path: Path, rng) -> None:
    def loop(nodes, edges):
        nodes["rec"] = affine(rng, 3, 3, bias=False)
        nodes["lif9"] = lif(3)
        return [*edges, ("rec", "lif9"), ("lif9", "rec")]

    _refused(_written(tmp_path, rng, loop), "is not on the path from Input to Output")


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (lambda nodes: nodes["fc0"].update(weight=np.full((3, 4), np.nan)), ("'weight' holds nan",)),
        (lambda nodes: nodes["lif0"].update(v_threshold=np.float32(np.inf)), ("'v_threshold' holds inf",)),
        (lambda nodes: nodes["fc0"].update(weight=np.ones((3, 5))), ("takes 5 inputs, gets 4",)),
        (lambda nodes: nodes["fc0"].update(weight=np.ones(12)), ("expected 2 dimensions",)),
        (lambda nodes: nodes["fc0"].update(bias=np.ones(2)), ("bias of 2 values for 3 outputs",)),
        (lambda nodes: nodes["lif0"].update(tau=np.ones(2)), ("'tau' has 2 values for 3 neurons",)),
        (lambda nodes: nodes["fc0"].update(weight=np.array([["a"] * 4] * 3, dtype="S1")), ("real numbers",)),
        (
            lambda nodes: nodes["lif0"].update(delay=np.float32(1)),
            ("parameter 'delay' is not one esl-hw knows",),
        ),
        (lambda nodes: nodes["lif0"].pop("tau"), ("lacks its parameter 'tau'",)),
        (lambda nodes: nodes["output"].update(shape=np.array([7])), ("Output shape does not match",)),
        (lambda nodes: nodes["input"].update(shape=np.array([0, 4])), ("positive integers",)),
        (
            lambda nodes: nodes.update(in2={"type": "Input", "shape": np.array([4])}),
            ("2 Input and 1 Output",),
        ),
        (lambda nodes: nodes["lif0"].update(type="LI"), ("'lif0' is a LI",)),
    ],
)
def test_bad_parameters_are_refused_in_one_line(tmp_path: Path, rng, change, fragments) -> None:
    _refused(_written(tmp_path, rng, lambda nodes, edges: [change(nodes), None][1]), *fragments)


def test_a_neuron_without_weights_before_it_is_refused(tmp_path: Path, rng) -> None:
    nodes = {
        "in": {"type": "Input", "shape": np.array([3])},
        "lif": lif(3),
        "out": {"type": "Output", "shape": [3]},
    }
    _refused(
        write_graph(tmp_path / "g.nir", nodes, [("in", "lif"), ("lif", "out")]), "needs Affine or Linear"
    )


def test_sizes_are_checked_from_the_header_before_reading(tmp_path: Path, rng) -> None:
    path = _written(tmp_path, rng, lambda nodes, edges: None)
    with h5py.File(path, "a") as handle:  # 2^21 x 4 float64: 64 MiB declared, nothing stored
        del handle["node/nodes/fc0/weight"]
        handle["node/nodes/fc0"].create_dataset("weight", shape=(1 << 21, 4), dtype="f8", chunks=(1024, 4))
    _refused(path, "weight of shape (2097152, 4) exceeds")


def test_the_weights_of_all_layers_together_are_limited(tmp_path: Path, rng, monkeypatch) -> None:
    from esl_hw.interchange import nir_read

    monkeypatch.setattr(nir_read, "MAX_WEIGHT_CELLS", 4 * 3 + 3 * 2 - 1)
    _refused(_written(tmp_path, rng, lambda nodes, edges: None), "node 'fc1'", "beyond 17 values")


def test_links_are_not_followed(tmp_path: Path, rng) -> None:
    path = _written(tmp_path, rng, lambda nodes, edges: None)
    with h5py.File(path, "a") as handle:
        del handle["node/nodes/fc0/weight"]
        handle["node/nodes/fc0/weight"] = h5py.ExternalLink("/etc/other.h5", "/weight")
    _refused(path, "'weight' is a ExternalLink")


def test_missing_file_folder_and_not_hdf5(tmp_path: Path) -> None:
    _refused(tmp_path / "absent.nir", "does not exist")
    _refused(tmp_path, "is not a regular file")
    text = tmp_path / "text.nir"
    text.write_text("not hdf5\n")
    _refused(text, "not an HDF5 file")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as handle:
        handle.create_dataset("x", data=1)
    _refused(other, "missing 'node'")


def test_a_truncated_file_is_refused(tmp_path: Path, rng) -> None:
    path = _written(tmp_path, rng, lambda nodes, edges: None)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(EslError) as caught:
        read_nir(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_damaged_files_are_read_or_refused_in_one_line(tmp_path: Path, rng) -> None:
    """Random bytes overwritten or the file cut short: a graph or one EslError line, nothing else."""
    base = _written(tmp_path, rng, lambda nodes, edges: None).read_bytes()
    damaged = tmp_path / "damaged.nir"
    for case in range(120):
        data = bytearray(base)
        if case % 4 == 0:
            data = data[: int(rng.integers(0, len(data)))]
        for _ in range(int(rng.integers(1, 8))):
            if data:
                data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
        damaged.write_bytes(bytes(data))
        try:
            read_nir(damaged)
        except EslError as error:
            assert "\n" not in str(error)
