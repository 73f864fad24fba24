"""An integer model artifact as a NIR graph file (the inverse of :mod:`esl_hw.interchange.nir_float`).

The graph is written in integer potential units (scale 1: a weight of 3 is ``3.0``), for the Euler
step ``dt`` (default snnTorch's 1e-4 s), so that snnTorch's ``import_from_nir`` rebuilds the same
network (docs/nir.md)::

    Input(n_inputs) -> [Affine|Linear -> LIF|CubaLIF] per hidden layer -> Affine|Linear -> Output

    weights      W[i, j] = weight of the synapse j -> i (0.0 where there is none), float32 when
                 exact (|w| < 2^24), else float64; Affine with the layer's bias, Linear without
    LIF          τ = dt·2^k, R = τ/dt (so R·dt/τ = 1 and β = 1 − dt/τ = 1 − 2^−k), v_leak = 0,
                 v_threshold = θ − 0.5 (an integer u is ≥ θ exactly when u > θ − 0.5);
                 no leak: τ = dt·2^60 (β = 1 − 2^−60, which is 1.0 in float64), because snnTorch
                 0.9.1 reads an IF node as a leaky neuron with β = 0.9
    CubaLIF      τ_syn = dt·2^ks, τ_mem = dt·2^k, R = τ_mem/dt, w_in = τ_syn/dt, v_leak = 0,
                 v_threshold = θ − 0.5
    output       the last Affine feeds the Output: the prediction is the argmax of its output summed
                 over the T steps (ties to the lowest index)

The graph's metadata ``esl_hw`` (a JSON string) records what NIR cannot: the time steps, the rate
encoder, the step ``dt``, the readout, each layer's reset and what NIR cannot express
(:data:`NOT_EXPRESSED`). :func:`write_nir` writes the file atomically (a temporary file beside it,
renamed into place).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from esl_hw.artifact import Layer, Model
from esl_hw.errors import EslError
from esl_hw.interchange.extra import require
from esl_hw.interchange.nir_float import SNNTORCH_DT
from esl_hw.interchange.nir_read import ESL_HW_METADATA, MAX_METADATA_CHARS, hard_child, read_string

WRITER = "esl-hw export-nir"
#: the time constant, in steps, written for "no leak" (see the module docstring)
NO_LEAK_STEPS = 2.0**60
#: v_threshold = θ − THRESHOLD_OFFSET
THRESHOLD_OFFSET = 0.5
FLOAT32_EXACT = 1 << 24
NOT_EXPRESSED = (
    "saturation of the potential to v_bits (clamp_vbits)",
    "the floor of the leak (v - (v >> k) instead of beta*v)",
    "the integer threshold test u >= theta (written as v > theta - 0.5)",
    "reset by subtraction in nir >= 1.0.5 files (LIF resets to v_reset there; nir 1.0.4 subtracts)",
    "the rate encoder (NIR graphs take spikes)",
    "the readout: the argmax of the output summed over T steps",
)


def _floats(values: np.ndarray) -> np.ndarray:
    """``values`` as float32 when every value is exact in it, else float64."""
    exact = not values.size or int(np.abs(values).max()) < FLOAT32_EXACT
    return values.astype(np.float32 if exact else np.float64)


def _synapses(nir: Any, layer: Layer) -> Any:
    weight = _floats(layer.dense_weight().T)
    if layer.bias is None:
        return nir.Linear(weight=weight)
    return nir.Affine(weight=weight, bias=_floats(layer.bias))


def _time_constant(shift: int | None, dt: float, n: int) -> np.ndarray:
    steps = NO_LEAK_STEPS if shift is None else 2.0**shift
    return np.full(n, dt * steps)


def _neurons(nir: Any, layer: Layer, dt: float) -> Any:
    n = layer.n_out
    threshold = np.full(n, layer.threshold - THRESHOLD_OFFSET)
    tau_mem = _time_constant(layer.leak_shift, dt, n)
    common = {"r": tau_mem / dt, "v_leak": np.zeros(n), "v_threshold": threshold}
    if layer.kind == "lif":
        return nir.LIF(tau=tau_mem, **common)
    tau_syn = _time_constant(layer.syn_shift, dt, n)
    return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, w_in=tau_syn / dt, **common)


def export_metadata(model: Model, dt: float) -> dict[str, Any]:
    """The ``esl_hw`` metadata entry: what a reader needs besides the graph."""
    return {
        "writer": WRITER,
        "timesteps": int(model.timesteps),
        "encoder": model.encoder.to_dict(),
        "dt": dt,
        "units": "integer potential units (scale 1)",
        "threshold_offset": THRESHOLD_OFFSET,
        "readout": "argmax over classes of the output summed over the time steps, ties to the lowest index",
        "resets": [layer.reset for layer in model.hidden_layers],
        "not_expressed": list(NOT_EXPRESSED),
    }


def model_to_graph(model: Model, dt: float = SNNTORCH_DT) -> Any:
    """``model`` as a ``nir.NIRGraph`` (module docstring)."""
    nir = require("nir", "export-nir")
    if not 0 < dt < float("inf"):
        raise EslError(f"dt must be a finite positive number of seconds, got {dt!r}")
    nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array([model.n_inputs]))}
    edges = []
    previous = "input"
    for index, layer in enumerate(model.layers):
        name = f"fc{index}"
        nodes[name] = _synapses(nir, layer)
        edges.append((previous, name))
        previous = name
        if layer.is_hidden:
            neuron = f"{layer.kind}{index}"
            nodes[neuron] = _neurons(nir, layer, dt)
            edges.append((previous, neuron))
            previous = neuron
    nodes["output"] = nir.Output(output_type=np.array([model.n_outputs]))
    edges.append((previous, "output"))
    metadata = {ESL_HW_METADATA: json.dumps(export_metadata(model, dt))}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def write_nir(graph: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``graph`` to ``path`` atomically (a temporary file in the same folder, then renamed)."""
    nir = require("nir", "export-nir")
    target = Path(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(descriptor)
    try:
        nir.write(temporary, graph)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target


def written_by_esl_hw(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a regular NIR file whose metadata names esl-hw as its writer."""
    h5py = require("h5py", "export-nir")
    path = Path(path)
    if path.is_symlink() or not path.is_file() or not h5py.is_hdf5(path):
        return False
    try:
        with h5py.File(path, "r") as handle:
            metadata = hard_child(hard_child(handle, "node", str(path), h5py), "metadata", str(path), h5py)
            text = read_string(metadata, ESL_HW_METADATA, str(path), h5py, MAX_METADATA_CHARS)
            return json.loads(text).get("writer") == WRITER
    except (EslError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
