"""Integer reference model: the executable form of docs/semantics.md.

Per step ``t`` and layer, the exact current ``I = Σ_j w[j→i]·s_j[t] + bias[i]`` (bias 0 when the
layer has none) drives a hidden layer's neuron kind, looked up by the layer's ``kind`` in
:mod:`esl_hw.neuron_kinds` (an unknown kind is an :class:`EslError`). For ``lif`` (``k`` = leak
shift, θ = threshold, reset to 0 or by subtracting θ)::

    u = clamp_vbits(v − (v >> k) + I)          (v + I without leak)
    spike = u ≥ θ ;  v = reset(u) where spike else u

``cubalif`` first decays and clamps its synaptic current ``c = clamp_vbits(c − (c >> ks) + I)`` and
feeds ``c`` to the membrane in place of ``I``. The output layer accumulates ``acc += I`` every step;
the prediction is the argmax of ``acc`` (ties to the lowest index). Synaptic sums are computed with a
float64 matrix product, which is exact here: every partial sum is an integer far below 2^53
(checked); the bias is added in int64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from esl_hw.artifact import Layer, Model
from esl_hw.encoding import encode
from esl_hw.errors import EslError
from esl_hw.limits import REFERENCE_MEMORY_BYTES
from esl_hw.neuron_kinds import leak, lif_step, neuron_kind

__all__ = [
    "Trace",
    "accuracy",
    "argmax_lowest",
    "batch_for",
    "leak",
    "lif_step",
    "predict",
    "run",
    "sample_bytes",
    "sample_mismatches",
    "weight_bytes",
]

_EXACT_FLOAT_LIMIT = 1 << 53


@dataclass(frozen=True)
class Trace:
    """Everything one batch of inferences computes.

    ``spikes[l]`` and ``potentials[l]`` are ``[T, B, n_out]`` for LIF layer ``l`` (potential after
    the reset of each step); ``outputs`` is ``[B, n_outputs]``; ``predictions`` is ``[B]``.
    """

    spikes: list[np.ndarray]
    potentials: list[np.ndarray]
    outputs: np.ndarray
    predictions: np.ndarray


def argmax_lowest(values: np.ndarray) -> np.ndarray:
    """Argmax over the last axis with ties to the lowest index (numpy's argmax already does so)."""
    return np.argmax(values, axis=-1)


def _dense_float(layer: Layer) -> np.ndarray:
    low, high = layer.synaptic_range()
    if max(-low, high) >= _EXACT_FLOAT_LIMIT:
        raise EslError(f"currents of up to {max(-low, high)} exceed the exact float64 range (2^53)")
    return layer.dense_weight().astype(np.float64)


def weight_bytes(model: Model) -> int:
    """Bytes of the dense float64 weights :func:`run` builds (plus one int64 copy while building)."""
    return sum(16 * layer.n_in * layer.n_out for layer in model.layers)


def sample_bytes(model: Model, record_potentials: bool = True) -> int:
    """Bytes :func:`run` needs per sample: input spikes, records, potentials, float currents."""
    per_step = model.n_inputs * 9 + sum(layer.n_in * 8 + layer.n_out * 16 for layer in model.layers)
    records = sum(layer.n_out * (9 if record_potentials else 1) for layer in model.hidden_layers)
    return model.timesteps * (model.n_inputs + records) + per_step + model.n_outputs * 8


def batch_for(model: Model, wanted: int, record_potentials: bool = False) -> int:
    """The largest batch up to ``wanted`` that keeps :func:`run` within ``REFERENCE_MEMORY_BYTES``.

    Raises :class:`EslError` when the weights and a single sample alone do not fit.
    """
    room = REFERENCE_MEMORY_BYTES - weight_bytes(model)
    per_sample = sample_bytes(model, record_potentials)
    if room < per_sample:
        need = (weight_bytes(model) + per_sample) / 2**30
        raise EslError(
            f"the reference model needs {need:.1f} GiB for this model, more than its "
            f"{REFERENCE_MEMORY_BYTES / 2**30:.0f} GiB budget (esl_hw.limits.REFERENCE_MEMORY_BYTES)"
        )
    return max(1, min(wanted, room // per_sample))


def run(model: Model, input_spikes: np.ndarray, record_potentials: bool = True) -> Trace:
    """Run ``model`` on input spikes ``[T, B, n_in]`` (bool) and return the full :class:`Trace`."""
    spikes_in = np.asarray(input_spikes, dtype=bool)
    steps, batch, n_in = spikes_in.shape
    if steps != model.timesteps or n_in != model.n_inputs:
        raise ValueError(
            f"input spikes {spikes_in.shape} do not match T={model.timesteps}, n_in={model.n_inputs}"
        )
    if batch > batch_for(model, batch, record_potentials):
        raise EslError(f"a batch of {batch} samples exceeds the reference's memory budget; use fewer")
    hidden = model.hidden_layers
    kinds = [neuron_kind(layer.kind) for layer in hidden]
    weights = [_dense_float(layer) for layer in model.layers]
    biases = [np.zeros(layer.n_out, np.int64) if layer.bias is None else layer.bias for layer in model.layers]
    states = [kind.initial_state(layer, batch) for kind, layer in zip(kinds, hidden, strict=True)]
    spike_record = [np.zeros((steps, batch, layer.n_out), dtype=bool) for layer in hidden]
    potential_record = [
        np.zeros((steps, batch, layer.n_out) if record_potentials else (0,), dtype=np.int64)
        for layer in hidden
    ]
    outputs = np.zeros((batch, model.n_outputs), dtype=np.int64)
    for t in range(steps):
        spikes = spikes_in[t]
        for index, layer in enumerate(hidden):
            current = np.rint(spikes.astype(np.float64) @ weights[index]).astype(np.int64) + biases[index]
            spikes, states[index] = kinds[index].step(states[index], current, layer)
            spike_record[index][t] = spikes
            if record_potentials:
                potential_record[index][t] = kinds[index].potential(states[index])
        outputs += np.rint(spikes.astype(np.float64) @ weights[-1]).astype(np.int64) + biases[-1]
    return Trace(spike_record, potential_record, outputs, argmax_lowest(outputs))


def predict(model: Model, images: np.ndarray, batch_size: int = 2000) -> np.ndarray:
    """Predicted class per image (``[N, n_in]`` uint8), in batches of at most ``batch_size`` that
    stay within the memory budget (:func:`batch_for`)."""
    batch_size = batch_for(model, batch_size)
    predictions = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        spikes = encode(chunk, model.timesteps, model.encoder)
        predictions.append(run(model, spikes, record_potentials=False).predictions)
    return np.concatenate(predictions) if predictions else np.zeros(0, dtype=np.int64)


def accuracy(model: Model, images: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of ``images`` whose prediction equals ``labels``."""
    return float(np.mean(predict(model, images) == labels)) if len(labels) else 0.0


def sample_mismatches(expected: Trace, actual: Trace) -> np.ndarray:
    """Per sample, whether any spike, potential, output or prediction of ``actual`` differs."""
    differs = np.any(expected.outputs != actual.outputs, axis=1) | (
        expected.predictions != actual.predictions
    )
    for want, got in zip(expected.spikes, actual.spikes, strict=True):
        differs |= np.any(want != got, axis=(0, 2))
    for want, got in zip(expected.potentials, actual.potentials, strict=True):
        differs |= np.any(want != got, axis=(0, 2))
    return differs
