"""Integer reference model: the executable form of docs/semantics.md.

Per step ``t`` and LIF layer (``k`` = leak shift, θ = threshold)::

    I = Σ_j w[j→i]·s_j[t]                     exact
    u = clamp_vbits(v − (v >> k) + I)          (v + I without leak)
    spike = u ≥ θ ;  v = 0 where spike else u

The output layer accumulates ``acc += I`` every step; the prediction is the argmax of ``acc``
(ties to the lowest index). Currents are computed with a float64 matrix product, which is exact
here: every partial sum is an integer far below 2^53 (checked).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from esl_hw.artifact import Layer, Model, signed_range
from esl_hw.encoding import encode

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


def leak(potential: np.ndarray, leak_shift: int | None) -> np.ndarray:
    """``v − (v >> k)`` with an arithmetic shift; ``v`` unchanged when there is no leak."""
    if leak_shift is None:
        return potential
    return potential - (potential >> leak_shift)


def lif_step(potential: np.ndarray, current: np.ndarray, layer: Layer) -> tuple[np.ndarray, np.ndarray]:
    """One LIF update: return ``(spikes, potential after reset)`` for ``[B, n_out]`` int64 arrays."""
    low, high = signed_range(layer.v_bits)
    updated = np.clip(leak(potential, layer.leak_shift) + current, low, high)
    fired = updated >= layer.threshold
    return fired, np.where(fired, 0, updated)


def argmax_lowest(values: np.ndarray) -> np.ndarray:
    """Argmax over the last axis with ties to the lowest index (numpy's argmax already does so)."""
    return np.argmax(values, axis=-1)


def _dense_float(layer: Layer) -> np.ndarray:
    low, high = layer.current_range()
    if max(-low, high) >= _EXACT_FLOAT_LIMIT:
        raise ValueError("currents exceed the exact float64 range")
    return layer.dense_weight().astype(np.float64)


def run(model: Model, input_spikes: np.ndarray, record_potentials: bool = True) -> Trace:
    """Run ``model`` on input spikes ``[T, B, n_in]`` (bool) and return the full :class:`Trace`."""
    spikes_in = np.asarray(input_spikes, dtype=bool)
    steps, batch, n_in = spikes_in.shape
    if steps != model.timesteps or n_in != model.n_inputs:
        raise ValueError(
            f"input spikes {spikes_in.shape} do not match T={model.timesteps}, n_in={model.n_inputs}"
        )
    weights = [_dense_float(layer) for layer in model.layers]
    hidden = model.hidden_layers
    potentials = [np.zeros((batch, layer.n_out), dtype=np.int64) for layer in hidden]
    spike_record = [np.zeros((steps, batch, layer.n_out), dtype=bool) for layer in hidden]
    potential_record = [
        np.zeros((steps, batch, layer.n_out) if record_potentials else (0,), dtype=np.int64)
        for layer in hidden
    ]
    outputs = np.zeros((batch, model.n_outputs), dtype=np.int64)
    for t in range(steps):
        spikes = spikes_in[t]
        for index, layer in enumerate(hidden):
            current = np.rint(spikes.astype(np.float64) @ weights[index]).astype(np.int64)
            spikes, potentials[index] = lif_step(potentials[index], current, layer)
            spike_record[index][t] = spikes
            if record_potentials:
                potential_record[index][t] = potentials[index]
        outputs += np.rint(spikes.astype(np.float64) @ weights[-1]).astype(np.int64)
    return Trace(spike_record, potential_record, outputs, argmax_lowest(outputs))


def predict(model: Model, images: np.ndarray, batch_size: int = 2000) -> np.ndarray:
    """Predicted class per image (``[N, n_in]`` uint8), processed in batches."""
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
