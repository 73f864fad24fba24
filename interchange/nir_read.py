"""Read a NIR graph file into checked plain parameters, refusing what esl-hw cannot import by name.

A NIR file is HDF5 (``nir.write``): a group ``node`` with ``type = "NIRGraph"``, the group ``nodes``
(one group per node: a ``type`` string and one dataset per parameter) and ``edges`` (pairs of node
names), plus a ``version`` string. This module reads that layout with h5py the way ``nir.read``
does, but checks before it reads: only hard links inside the file (no soft or external links), every
node's ``type`` among :data:`SUPPORTED` (anything else is refused naming the node and its type), every
parameter a real-valued dataset of the expected rank whose size, from the dataset's header, is within
:mod:`esl_hw.limits` before a byte of it is read, then every value finite (a time constant may be
``+inf``: no decay). h5py runs no code and reads no pickles.

The graph must be one feed-forward chain::

    Input [Flatten] (Affine|Linear  LIF|IF|CubaLIF)* Affine|Linear [LIF|IF|CubaLIF] Output

A node with two inputs or two outputs, a loop (a recurrent layer such as snnTorch's ``RSynaptic``,
which NIR writes as a subgraph or a cycle) or a node off the path from Input to Output is refused.
``Flatten`` is accepted directly after ``Input`` only: esl-hw feeds flattened pixels anyway.

Files of newer nir versions (1.0.5+) also carry ``v_reset`` on ``LIF``, ``IF`` and ``CubaLIF`` (reset
to that potential instead of subtracting the threshold) and a string-typed ``version``; both are read
(:attr:`NirNeurons.v_reset` is ``None`` in older files). Every problem is one :class:`EslError` line.
"""

from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from esl_hw import limits
from esl_hw.errors import EslError
from esl_hw.interchange.extra import require
from esl_hw.limits import shown

SYNAPSE_TYPES = ("Affine", "Linear")
NEURON_TYPES = ("LIF", "IF", "CubaLIF")
#: the node types esl-hw imports
SUPPORTED = ("Input", "Flatten", *SYNAPSE_TYPES, *NEURON_TYPES, "Output")
#: parameter datasets per node type: (required, optional); ``metadata``, ``input_type`` and
#: ``output_type`` (shape information some writers add) are ignored
PARAMETERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Input": (("shape",), ()),
    "Output": (("shape",), ()),
    "Flatten": ((), ("start_dim", "end_dim")),
    "Affine": (("weight", "bias"), ()),
    "Linear": (("weight",), ()),
    "LIF": (("tau", "r", "v_leak", "v_threshold"), ("v_reset",)),
    "IF": (("r", "v_threshold"), ("v_reset",)),
    "CubaLIF": (("tau_syn", "tau_mem", "r", "v_leak", "v_threshold"), ("w_in", "v_reset")),
}
IGNORED_KEYS = ("type", "metadata", "input_type", "output_type")
#: time constants, which may be +inf (no decay); every other value must be finite
TIME_CONSTANTS = ("tau", "tau_syn", "tau_mem")
#: nodes of a graph: every layer is an Affine and a neuron node, plus Input, Flatten and Output
MAX_NODES = 2 * limits.MAX_LAYERS + 3
MAX_NAME_CHARS = 256
MAX_SHAPE_DIMS = 8
#: the graph metadata entry esl-hw writes (a JSON string, :mod:`esl_hw.interchange.nir_write`)
ESL_HW_METADATA = "esl_hw"
MAX_METADATA_CHARS = 1 << 16
NIR_MAX_BYTES = limits.DATA_MAX_BYTES
#: weight values of all layers together (1 GiB as float64): no model holds more synapses
MAX_WEIGHT_CELLS = limits.MAX_SYNAPSES


@dataclass(frozen=True, eq=False)
class NirSynapses:
    """An ``Affine`` or ``Linear`` node: ``y = W x (+ b)``, ``weight`` ``[n_out, n_in]`` float64."""

    name: str
    weight: np.ndarray
    bias: np.ndarray | None

    @property
    def n_in(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weight.shape[0])


@dataclass(frozen=True, eq=False)
class NirNeurons:
    """A ``LIF``, ``IF`` or ``CubaLIF`` node; every parameter broadcast to ``[n]`` float64.

    ``v_reset`` is ``None`` when the file has none (nir 1.0.4 and older: the equations subtract the
    threshold on a spike); ``params`` holds the node's other parameters by their NIR names.
    """

    name: str
    kind: str
    params: dict[str, np.ndarray]
    v_reset: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class NirStage:
    """One layer: synapses, then neurons (``None``: the synapses feed the graph's Output)."""

    synapses: NirSynapses
    neurons: NirNeurons | None


@dataclass(frozen=True, eq=False)
class NirNetwork:
    """A feed-forward NIR graph as esl-hw reads it: ``n_inputs`` inputs, then the stages in order."""

    n_inputs: int
    stages: tuple[NirStage, ...]
    version: str | None = None
    esl_hw: dict[str, Any] = field(default_factory=dict)

    @property
    def sizes(self) -> list[int]:
        return [self.n_inputs, *(stage.synapses.n_out for stage in self.stages)]


# ---------------------------------------------------------------- HDF5 access, checked


def hard_child(group: Any, key: str, where: str, h5py: Any) -> Any:
    """``group[key]`` after checking it is a hard link (no soft or external link is followed)."""
    link = group.get(key, getlink=True)
    if link is None:
        raise EslError(f"{where}: missing {key!r}")
    if not isinstance(link, h5py.HardLink):
        raise EslError(
            f"{where}: {key!r} is a {type(link).__name__}; only plain datasets and groups are read"
        )
    return group[key]


def _keys(group: Any, where: str, limit: int) -> list[str]:
    count = len(group)
    if count > limit:
        raise EslError(f"{where}: {count} entries exceed the limit {limit}")
    keys = list(group.keys())
    for key in keys:
        if len(key) > MAX_NAME_CHARS:
            raise EslError(f"{where}: a name of {len(key)} characters exceeds {MAX_NAME_CHARS}")
    return keys


def _text(value: Any, where: str) -> str:
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, bytes | np.bytes_):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise EslError(f"{where}: not UTF-8 text") from None
    if isinstance(value, str):
        return value
    raise EslError(f"{where}: expected a string, got {shown(value)}")


def read_string(group: Any, key: str, where: str, h5py: Any, max_chars: int = MAX_NAME_CHARS) -> str:
    dataset = hard_child(group, key, where, h5py)
    if not isinstance(dataset, h5py.Dataset) or dataset.shape != ():
        raise EslError(f"{where}: {key!r} must be a scalar string")
    info = h5py.check_string_dtype(dataset.dtype)
    if info is None and dataset.dtype.kind != "S":
        raise EslError(f"{where}: {key!r} must be a string, got {dataset.dtype}")
    if info is not None and info.length is not None and info.length > max_chars:
        raise EslError(f"{where}: {key!r} of {info.length} bytes exceeds {max_chars}")
    text = _text(dataset[()], f"{where}: {key}")
    if len(text) > max_chars:
        raise EslError(f"{where}: {key!r} of {len(text)} characters exceeds {max_chars}")
    return text


def _values(
    dataset: Any, name: str, where: str, h5py: Any, ranks: tuple[int, ...], max_size: int
) -> np.ndarray:
    """The real-valued dataset as float64, its rank and size checked from the header before reading."""
    if not isinstance(dataset, h5py.Dataset):
        raise EslError(f"{where}: {name!r} must be a dataset, got a group")
    if dataset.dtype.kind not in "fiu":
        raise EslError(f"{where}: {name!r} must be real numbers, got {dataset.dtype}")
    shape = tuple(int(size) for size in dataset.shape)
    if len(shape) not in ranks:
        wanted = " or ".join(str(rank) for rank in ranks)
        raise EslError(f"{where}: {name!r} has shape {shape}, expected {wanted} dimensions")
    size = math.prod(shape)
    if size > max_size:
        raise EslError(f"{where}: {name!r} of shape {shape} ({size} values) exceeds the limit {max_size}")
    if size == 0:
        raise EslError(f"{where}: {name!r} is empty (shape {shape})")
    values = np.asarray(dataset[()], dtype=np.float64).reshape(shape)
    allowed = np.isfinite(values) | ((values == np.inf) if name in TIME_CONSTANTS else False)
    if not allowed.all():
        bad = values[~allowed].flat[0]
        raise EslError(f"{where}: {name!r} holds {bad} (NaN or infinite values are refused)")
    return values


# ---------------------------------------------------------------- nodes


@dataclass(frozen=True)
class _Node:
    name: str
    type: str
    group: Any


def _node_types(nodes: Any, where: str, h5py: Any) -> list[_Node]:
    """Every node with its type, refusing unsupported types by name before any parameter is read."""
    found = []
    for name in _keys(nodes, where, MAX_NODES):
        group = hard_child(nodes, name, where, h5py)
        here = f"{where}: node {name!r}"
        if not isinstance(group, h5py.Group):
            raise EslError(f"{here} is not a group")
        kind = read_string(group, "type", here, h5py)
        if kind == "NIRGraph":
            raise EslError(
                f"{here} is a NIRGraph (a subgraph, as NIR writes recurrent layers such as snnTorch's "
                "RSynaptic); esl-hw imports feed-forward graphs only"
            )
        if kind not in SUPPORTED:
            raise EslError(
                f"{here} is a {kind}, which esl-hw does not import (it imports {', '.join(SUPPORTED)})"
            )
        found.append(_Node(name, kind, group))
    return found


def _check_keys(node: _Node, where: str) -> None:
    required, optional = PARAMETERS[node.type]
    for key in node.group:
        if key not in (*required, *optional, *IGNORED_KEYS):
            raise EslError(
                f"{where}: {node.type} parameter {key!r} is not one esl-hw knows; refusing to ignore it"
            )
    for key in required:
        if key not in node.group:
            raise EslError(f"{where}: the {node.type} node lacks its parameter {key!r}")


def _shape(node: _Node, where: str, h5py: Any) -> int:
    """Number of values of an Input or Output node's ``shape`` (a product over its dimensions)."""
    dataset = hard_child(node.group, "shape", where, h5py)
    values = _values(dataset, "shape", where, h5py, (0, 1), MAX_SHAPE_DIMS)
    if (values < 1).any() or (values != np.round(values)).any():
        raise EslError(f"{where}: shape {values.tolist()} must hold positive integers")
    size = math.prod(int(value) for value in values.reshape(-1))
    if size > limits.MAX_INPUTS_PER_LAYER:
        raise EslError(
            f"{where}: shape {values.tolist()} of {size} values exceeds {limits.MAX_INPUTS_PER_LAYER}"
        )
    return size


def _synapses(node: _Node, where: str, h5py: Any, cells_before: int) -> NirSynapses:
    """An Affine or Linear node; ``cells_before``: weight values of the layers read before it, which
    with this one's must stay within :data:`MAX_WEIGHT_CELLS`."""
    dataset = hard_child(node.group, "weight", where, h5py)
    shape = tuple(int(size) for size in dataset.shape) if isinstance(dataset, h5py.Dataset) else ()
    if len(shape) == 2 and (
        shape[0] > limits.MAX_NEURONS_PER_LAYER or shape[1] > limits.MAX_INPUTS_PER_LAYER
    ):
        raise EslError(
            f"{where}: weight of shape {shape} exceeds {limits.MAX_NEURONS_PER_LAYER} outputs or "
            f"{limits.MAX_INPUTS_PER_LAYER} inputs"
        )
    if len(shape) == 2 and cells_before + math.prod(shape) > MAX_WEIGHT_CELLS:
        raise EslError(
            f"{where}: weight of shape {shape} takes the graph's weights beyond {MAX_WEIGHT_CELLS} values "
            "(esl_hw.limits.MAX_SYNAPSES)"
        )
    weight = _values(dataset, "weight", where, h5py, (2,), limits.MAX_DENSE_CELLS)
    bias = None
    if node.type == "Affine":
        bias = _values(hard_child(node.group, "bias", where, h5py), "bias", where, h5py, (0, 1), shape[0])
        if bias.size not in (1, shape[0]):
            raise EslError(f"{where}: bias of {bias.size} values for {shape[0]} outputs")
        bias = np.broadcast_to(bias.reshape(-1), (shape[0],)).copy()
    return NirSynapses(node.name, weight, bias)


def _neurons(node: _Node, n_out: int, where: str, h5py: Any) -> NirNeurons:
    required, optional = PARAMETERS[node.type]
    params: dict[str, np.ndarray] = {}
    for key in (*required, *optional):
        if key not in node.group:
            continue
        values = _values(hard_child(node.group, key, where, h5py), key, where, h5py, (0, 1, 2), n_out)
        if values.size not in (1, n_out):
            raise EslError(f"{where}: {key!r} has {values.size} values for {n_out} neurons")
        params[key] = np.broadcast_to(values.reshape(-1), (n_out,)).copy()
    v_reset = params.pop("v_reset", None)
    if node.type == "CubaLIF":
        params.setdefault("w_in", np.ones(n_out))
    return NirNeurons(node.name, node.type, params, v_reset)


# ---------------------------------------------------------------- the chain


def _edges(root: Any, names: set[str], where: str, h5py: Any) -> list[tuple[str, str]]:
    dataset = hard_child(root, "edges", where, h5py)
    if not isinstance(dataset, h5py.Dataset) or dataset.dtype.kind not in "OS":
        raise EslError(f"{where}: 'edges' must be a dataset of node-name pairs")
    shape = tuple(dataset.shape)
    if len(shape) != 2 or shape[1] != 2 or shape[0] > MAX_NODES * MAX_NODES:
        raise EslError(f"{where}: 'edges' of shape {shape}, expected (edges, 2)")
    pairs = [(_text(src, where), _text(dst, where)) for src, dst in dataset[()]]
    for src, dst in pairs:
        for end in (src, dst):
            if end not in names:
                raise EslError(f"{where}: edge {src!r} -> {dst!r} names no node {end!r}")
    if len(set(pairs)) != len(pairs):
        raise EslError(f"{where}: an edge is listed twice")
    return pairs


def _chain(nodes: list[_Node], edges: list[tuple[str, str]], where: str) -> list[_Node]:
    """The nodes from Input to Output in order; refuse anything but a single chain."""
    by_name = {node.name: node for node in nodes}
    inputs = [node for node in nodes if node.type == "Input"]
    outputs = [node for node in nodes if node.type == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise EslError(
            f"{where}: {len(inputs)} Input and {len(outputs)} Output nodes; esl-hw needs one of each"
        )
    successor: dict[str, str] = {}
    predecessors: dict[str, int] = {}
    for src, dst in edges:
        if src in successor:
            raise EslError(
                f"{where}: node {src!r} feeds two nodes (a recurrent or branching graph); esl-hw imports "
                "a feed-forward chain"
            )
        successor[src] = dst
        predecessors[dst] = predecessors.get(dst, 0) + 1
        if predecessors[dst] > 1:
            raise EslError(
                f"{where}: node {dst!r} has two inputs (a recurrent or branching graph); esl-hw imports "
                "a feed-forward chain"
            )
    order = [inputs[0]]
    seen = {inputs[0].name}
    while order[-1].type != "Output":
        following = successor.get(order[-1].name)
        if following is None:
            raise EslError(f"{where}: the path from Input ends at {order[-1].name!r} before the Output")
        if following in seen:
            raise EslError(
                f"{where}: a loop through {following!r} (a recurrent graph); esl-hw imports feed-forward "
                "graphs"
            )
        seen.add(following)
        order.append(by_name[following])
    missing = sorted(set(by_name) - seen)
    if missing:
        raise EslError(
            f"{where}: node {missing[0]!r} is not on the path from Input to Output (a recurrent loop?)"
        )
    return order


def _stages(order: list[_Node], where: str, h5py: Any) -> tuple[int, list[NirStage]]:
    """The input size and the stages of the chain, checking the pattern and every size."""
    first = f"{where}: node {order[0].name!r}"
    _check_keys(order[0], first)
    n_inputs = size = _shape(order[0], first, h5py)
    body = order[1:-1]
    if body and body[0].type == "Flatten":
        _check_keys(body[0], f"{where}: node {body[0].name!r}")
        body = body[1:]
    stages: list[NirStage] = []
    index = 0
    while index < len(body):
        node = body[index]
        here = f"{where}: node {node.name!r}"
        _check_keys(node, here)
        if node.type not in SYNAPSE_TYPES:
            before = body[index - 1].name if index else order[0].name
            raise EslError(
                f"{here} ({node.type}) follows {before!r}; esl-hw needs Affine or Linear weights before each "
                "neuron layer (and Flatten directly after Input only)"
            )
        synapses = _synapses(node, here, h5py, sum(stage.synapses.weight.size for stage in stages))
        if synapses.n_in != size:
            raise EslError(
                f"{here}: weight of shape {synapses.weight.shape} takes {synapses.n_in} inputs, gets {size}"
            )
        neurons = None
        if index + 1 < len(body) and body[index + 1].type in NEURON_TYPES:
            follower = body[index + 1]
            there = f"{where}: node {follower.name!r}"
            _check_keys(follower, there)
            neurons = _neurons(follower, synapses.n_out, there, h5py)
            index += 1
        elif index + 1 < len(body):
            raise EslError(
                f"{here} is followed by {body[index + 1].name!r} ({body[index + 1].type}), not a neuron layer"
            )
        stages.append(NirStage(synapses, neurons))
        size = synapses.n_out
        index += 1
    if not stages:
        raise EslError(f"{where}: the graph has no Affine or Linear node")
    if not 1 <= len(stages) + (stages[-1].neurons is not None) <= limits.MAX_LAYERS:
        raise EslError(f"{where}: {len(stages)} layers exceed the limit {limits.MAX_LAYERS}")
    output = order[-1]
    here = f"{where}: node {output.name!r}"
    _check_keys(output, here)
    if _shape(output, here, h5py) != size:
        raise EslError(f"{here}: Output shape does not match the {size} values of the last layer")
    return n_inputs, stages


def _esl_hw_metadata(root: Any, where: str, h5py: Any) -> dict[str, Any]:
    """The graph's ``metadata/esl_hw`` JSON mapping (what esl-hw's export wrote), else ``{}``."""
    if "metadata" not in root:
        return {}
    metadata = hard_child(root, "metadata", where, h5py)
    if not isinstance(metadata, h5py.Group) or ESL_HW_METADATA not in metadata:
        return {}
    text = read_string(metadata, ESL_HW_METADATA, f"{where}: metadata", h5py, MAX_METADATA_CHARS)
    try:
        value = json.loads(text)
    except ValueError:
        raise EslError(f"{where}: metadata {ESL_HW_METADATA!r} is not JSON") from None
    if not isinstance(value, dict):
        raise EslError(f"{where}: metadata {ESL_HW_METADATA!r} must be a JSON object")
    return value


def _check_file(path: Path) -> None:
    try:
        status = path.stat()
    except FileNotFoundError:
        raise EslError(f"NIR graph {path} does not exist") from None
    except OSError as error:
        raise EslError(f"{path}: cannot read ({error.strerror})") from None
    if not stat.S_ISREG(status.st_mode):
        raise EslError(f"{path}: is not a regular file")
    if status.st_size > NIR_MAX_BYTES:
        raise EslError(f"{path}: {status.st_size} bytes exceed the limit {NIR_MAX_BYTES}")


def read_nir(path: str | os.PathLike[str]) -> NirNetwork:
    """Read the NIR graph file ``path`` into a :class:`NirNetwork`; :class:`EslError` on any problem."""
    h5py = require("h5py", "reading a NIR graph")
    path = Path(path)
    _check_file(path)
    where = str(path)
    if not h5py.is_hdf5(path):
        raise EslError(f"{path}: not an HDF5 file (a NIR graph is written by nir.write)")
    try:
        with h5py.File(path, "r") as handle:
            root = hard_child(handle, "node", f"{where} (not a NIR graph?)", h5py)
            if not isinstance(root, h5py.Group) or read_string(root, "type", where, h5py) != "NIRGraph":
                raise EslError(f"{where}: the root node is not a NIRGraph")
            version = read_string(handle, "version", where, h5py) if "version" in handle else None
            nodes = _node_types(hard_child(root, "nodes", where, h5py), where, h5py)
            edges = _edges(root, {node.name for node in nodes}, where, h5py)
            n_inputs, stages = _stages(_chain(nodes, edges, where), where, h5py)
            metadata = _esl_hw_metadata(root, where, h5py)
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as error:
        # h5py's errors on a damaged file (truncated, bad checksums, unknown filters)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise EslError(f"{where}: cannot read the HDF5 file ({reason})") from None
    return NirNetwork(n_inputs, tuple(stages), version, metadata)
