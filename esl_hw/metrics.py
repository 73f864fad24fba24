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
    """Neurons each layer's sweep visits every step: ``n_out`` for LIF layers, 0 for the output."""
    return [layer.n_out if layer.kind == "lif" else 0 for layer in model.layers]


def synaptic_ops(model: Model, input_spikes: np.ndarray, trace: Trace) -> np.ndarray:
    """Synaptic operations ``[B, n_layers]``: per layer, the fan-out of every spike it received."""
    layer_inputs = [np.asarray(input_spikes, dtype=bool), *trace.spikes]
    ops = [
        spikes.sum(axis=0) @ np.diff(layer.row_ptr)
        for spikes, layer in zip(layer_inputs, model.layers, strict=True)
    ]
    return np.stack(ops, axis=-1).astype(np.int64)


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
