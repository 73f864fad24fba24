"""Cost metrics per inference: synaptic operations, the cycle floor and an energy estimate.

Cycle floor of an event-driven layer core with ``L`` lanes (docs/metrics.md)::

    floor_l = SOPs_l / L + T · N_l / L

with ``L`` a lane count the core accepts (:func:`esl_hw.limits.check_lanes`), ``SOPs_l`` the
synaptic operations of layer ``l`` in the inference and ``N_l`` the LIF neurons
its sweep visits every step (0 for the output layer, which has no sweep). The layer cores work
concurrently, so the floor of the chain is ``max_l floor_l``; ``serial_cycle_floor`` is the same
formula over the whole network, the floor of one core that runs the layers one after the other.

A layer core whose sweep of step ``t`` overlaps the integration of step ``t+1`` (double-buffered
currents, docs/hardware.md) can go below that floor; it still needs at least

    overlap_floor_l = max(SOPs_l, T · N_l) / L

cycles, and ``overlapped_cycle_floor`` is ``max_l overlap_floor_l``.

Energy estimate (constants in :class:`EnergyConstants`, sources in docs/metrics.md)::

    E = SOPs · e_sop + (memory reads + memory writes) · e_mem_access
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from esl_hw.artifact import Model
from esl_hw.limits import check_lanes
from esl_hw.reference import Trace


def swept_neurons(model: Model) -> list[int]:
    """Neurons each layer's sweep visits every step: ``n_out`` for hidden layers, 0 for the output."""
    return [layer.n_out if layer.is_hidden else 0 for layer in model.layers]


def synaptic_ops(model: Model, input_spikes: np.ndarray, trace: Trace) -> np.ndarray:
    """Synaptic operations ``[B, n_layers]``: per layer, the fan-out of every spike it received."""
    layer_inputs = [np.asarray(input_spikes, dtype=bool), *trace.spikes]
    ops = [
        spikes.sum(axis=0) @ np.diff(layer.row_ptr)
        for spikes, layer in zip(layer_inputs, model.layers, strict=True)
    ]
    return np.stack(ops, axis=-1).astype(np.int64)


def lane_busy_cycles(model: Model, input_spikes: np.ndarray, trace: Trace, lanes: int = 1) -> np.ndarray:
    """Busy cycles of every lane of every layer core in every step, ``[B, n_layers, T, L]``.

    Lane ``b`` of a layer owns the post-synaptic neurons ``i`` with ``i mod L = b``
    (docs/hardware.md), streams one synapse per cycle and sweeps its own neurons once per step::

        busy[l, t, b] = Σ_j s_j[t] · |{k in row j of layer l : col[k] mod L = b}| + |{i < N_l : i mod L = b}|

    (the sweep term only for LIF layers, :func:`swept_neurons`). This is the work the events give
    each lane, derived from the reference's spikes; the core's counters measure only totals per
    inference. Summed over lanes and steps it is ``SOPs_l + T · N_l``, the cycle floor's numerator.
    """
    check_lanes(lanes)
    layer_inputs = [np.asarray(input_spikes, dtype=bool), *trace.spikes]
    busy = []
    for spikes, layer, swept in zip(layer_inputs, model.layers, swept_neurons(model), strict=True):
        rows = np.repeat(np.arange(layer.n_in), np.diff(layer.row_ptr))
        fanout = np.zeros((layer.n_in, lanes), dtype=np.int64)
        np.add.at(fanout, (rows, np.asarray(layer.col, dtype=np.int64) % lanes), 1)
        sweep = np.bincount(np.arange(swept) % lanes, minlength=lanes)
        busy.append(spikes.astype(np.int64) @ fanout + sweep)  # [T, B, L]
    return np.stack(busy, axis=0).transpose(2, 0, 1, 3)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, classes: int) -> np.ndarray:
    """``[classes, classes]`` counts: row = true label, column = predicted class.

    A prediction outside ``0 .. classes-1`` (``-1``: an inference the RTL never completed) is left
    out, so its row sums to less than the label's count; a label outside that range is an error.
    """
    labels, predictions = np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)
    if labels.shape != predictions.shape or labels.ndim != 1:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} differ in shape")
    if labels.size and not 0 <= labels.min() <= labels.max() < classes:
        raise ValueError(f"labels must lie in 0..{classes - 1}, got {labels.min()}..{labels.max()}")
    valid = (predictions >= 0) & (predictions < classes)
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (labels[valid], predictions[valid]), 1)
    return counts


def cycle_floor(model: Model, layer_sops: Sequence[float], lanes: int = 1) -> float:
    """``max_l (SOPs_l + T · N_l) / L``: the fewest cycles concurrent layer cores can take."""
    check_lanes(lanes)
    sweeps = swept_neurons(model)
    return max((sops + model.timesteps * n) / lanes for sops, n in zip(layer_sops, sweeps, strict=True))


def overlapped_cycle_floor(model: Model, layer_sops: Sequence[float], lanes: int = 1) -> float:
    """``max_l max(SOPs_l, T · N_l) / L``: the fewest cycles when each layer's sweep overlaps its
    next step's integration."""
    check_lanes(lanes)
    sweeps = swept_neurons(model)
    return max(max(sops, model.timesteps * n) / lanes for sops, n in zip(layer_sops, sweeps, strict=True))


def serial_cycle_floor(model: Model, sops: float, lanes: int = 1) -> float:
    """``SOPs / L + T · N / L`` over the whole network: the floor of one core running every layer."""
    check_lanes(lanes)
    return (sops + model.timesteps * sum(swept_neurons(model))) / lanes


@dataclass(frozen=True)
class EnergyConstants:
    """Energy per event in joules.

    ``e_sop``: one synaptic accumulate, 0.9 pJ (a 32-bit add in 45 nm, Horowitz, ISSCC 2014; the
    constant the ESL-SNN paper and most SNN energy tables use). ``e_mem_access``: one word read or
    written in an 8 KB SRAM, 10 pJ (64-bit access, same source), an upper bound for our narrower words.
    """

    e_sop: float = 0.9e-12
    e_mem_access: float = 10e-12


def energy_per_inference(
    sops: float, memory_accesses: float, constants: EnergyConstants | None = None
) -> dict[str, float]:
    """Energy of one inference in joules, total and by part."""
    constants = constants or EnergyConstants()
    synaptic = sops * constants.e_sop
    memory = memory_accesses * constants.e_mem_access
    return {
        "total_j": synaptic + memory,
        "synaptic_j": synaptic,
        "memory_j": memory,
        **{f"constant_{name}": value for name, value in asdict(constants).items()},
    }
