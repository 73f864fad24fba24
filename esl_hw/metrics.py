"""Cost metrics per inference: the cycle floor and an energy estimate.

Cycle floor of an event-driven core with ``L`` lanes (docs/semantics.md, DESIGN.md)::

    floor = SOPs / L + T · N / L

with SOPs the synaptic operations of the inference and ``N`` the LIF neurons swept every step.

Energy estimate (constants in :class:`EnergyConstants`, sources in docs/metrics.md)::

    E = SOPs · e_sop + (memory reads + memory writes) · e_mem_access
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from esl_hw.artifact import Model


def swept_neurons(model: Model) -> int:
    """LIF neurons updated in every step's sweep (the output layer integrates without a sweep)."""
    return sum(layer.n_out for layer in model.hidden_layers)


def cycle_floor(model: Model, sops: float, lanes: int = 1) -> float:
    """``SOPs / L + T · N / L``: the fewest cycles an inference with ``sops`` synaptic ops can take."""
    if lanes < 1:
        raise ValueError(f"lanes must be at least 1, got {lanes}")
    return sops / lanes + model.timesteps * swept_neurons(model) / lanes


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
