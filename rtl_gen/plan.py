"""Hardware plan of a model: widths, memory images, memory sizes and limits, before any gateware.

Everything the generated core stores is derived here from the artifact (``esl_hw.artifact``), so
the gateware, :func:`memory_bits` and the tests agree on one set of numbers:

- row pointers ``row_ptr[0 .. n_in]``, ``ptr_bits = bits(nnz)`` wide;
- synapse words ``{col, weight}``, ``col`` in the low ``out_index_bits`` bits, ``weight``
  (two's complement, ``w_bits``) above it;
- LIF layers: potentials (``v_bits``) and currents (``current_bits()``), one word per neuron;
- the output layer: accumulators (``Model.acc_bits()``), one word per output;
- spike FIFOs between layers: ``fifo_depth`` words of ``{index, end-of-step}``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from esl_hw.artifact import Layer, Model
from esl_hw.errors import EslError

#: Limits a generated core accepts; a model beyond them is refused with :class:`EslError`.
LIMITS = {
    "neurons per layer": 1 << 20,
    "inputs per layer": 1 << 20,
    "synapses per layer": 1 << 24,
    "current bits": 64,
    "potential bits": 48,
    "accumulator bits": 64,
    "timesteps": 4096,
}

#: Width of the performance counters.
COUNTER_BITS = 32

#: Default depth of the spike FIFOs between layers.
DEFAULT_FIFO_DEPTH = 16


def unsigned_bits(value: int) -> int:
    """Bits of an unsigned number holding ``0 .. value`` (at least 1)."""
    return max(1, int(value).bit_length())


def _check_limit(what: str, where: str, value: int) -> None:
    limit = LIMITS[what]
    if value > limit:
        raise EslError(f"{where}: {what} = {value} exceeds the hardware limit {limit} by {value - limit}")


@dataclass(frozen=True)
class LayerPlan:
    """Widths and memory contents of one layer core.

    ``acc_bits`` is the width of the per-neuron integration memory: the current width for a LIF
    layer, the output accumulator width for the output layer.
    """

    index: int
    layer: Layer
    in_index_bits: int
    out_index_bits: int
    ptr_bits: int
    acc_bits: int
    timesteps: int

    @property
    def kind(self) -> str:
        return self.layer.kind

    @property
    def is_lif(self) -> bool:
        return self.layer.kind == "lif"

    @property
    def n_in(self) -> int:
        return self.layer.n_in

    @property
    def n_out(self) -> int:
        return self.layer.n_out

    @property
    def w_bits(self) -> int:
        return self.layer.w_bits

    @property
    def syn_bits(self) -> int:
        """Width of one synapse word ``{col, weight}``."""
        return self.out_index_bits + self.w_bits

    @property
    def syn_depth(self) -> int:
        """Depth of the synapse memory (one dummy word when the layer has no synapse)."""
        return max(1, self.layer.nnz)

    def ptr_init(self) -> list[int]:
        """Row pointer memory image."""
        return [int(value) for value in self.layer.row_ptr]

    def syn_init(self) -> list[int]:
        """Synapse memory image: ``col | (weight mod 2^w_bits) << out_index_bits``."""
        if self.layer.nnz == 0:
            return [0]
        col = self.layer.col.astype(np.int64)
        weight = self.layer.weight.astype(np.int64) & ((1 << self.w_bits) - 1)
        return [int(word) for word in col | (weight << self.out_index_bits)]

    def memory_bits(self) -> dict[str, int]:
        """Bits per memory kind held by this layer core."""
        bits = {
            "row_pointers": (self.n_in + 1) * self.ptr_bits,
            "synapses": self.syn_depth * self.syn_bits,
        }
        if self.is_lif:
            bits["potentials"] = self.n_out * self.layer.v_bits
            bits["currents"] = self.n_out * self.acc_bits
        else:
            bits["accumulators"] = self.n_out * self.acc_bits
        return bits


def plan_layer(model: Model, index: int) -> LayerPlan:
    """Plan layer ``index`` of ``model``; raise :class:`EslError` when it exceeds :data:`LIMITS`."""
    layer = model.layers[index]
    where = f"layer {index}"
    _check_limit("neurons per layer", where, layer.n_out)
    _check_limit("inputs per layer", where, layer.n_in)
    _check_limit("synapses per layer", where, layer.nnz)
    if layer.kind == "lif":
        acc_bits = layer.current_bits()
        _check_limit("current bits", where, acc_bits)
        _check_limit("potential bits", where, layer.v_bits)
    else:
        acc_bits = model.acc_bits()
        _check_limit("accumulator bits", where, acc_bits)
    return LayerPlan(
        index=index,
        layer=layer,
        in_index_bits=unsigned_bits(layer.n_in - 1),
        out_index_bits=unsigned_bits(layer.n_out - 1),
        ptr_bits=unsigned_bits(layer.nnz),
        acc_bits=acc_bits,
        timesteps=model.timesteps,
    )


def plan_model(model: Model) -> list[LayerPlan]:
    """Plan every layer of ``model`` (see :func:`plan_layer`)."""
    _check_limit("timesteps", "model", model.timesteps)
    return [plan_layer(model, index) for index in range(len(model.layers))]


def check_fifo_depth(fifo_depth: int) -> int:
    """Return ``fifo_depth`` if it is a usable spike FIFO depth, else raise :class:`EslError`."""
    if isinstance(fifo_depth, bool) or not isinstance(fifo_depth, int) or fifo_depth < 2:
        raise EslError(f"fifo_depth must be an integer >= 2, got {fifo_depth!r}")
    return fifo_depth


def memory_bits(model: Model, fifo_depth: int = DEFAULT_FIFO_DEPTH) -> dict[str, int]:
    """Bits of on-chip memory per kind in the core :class:`~esl_hw.rtl_gen.SNNCore` generates.

    Keys: ``row_pointers``, ``synapses``, ``potentials``, ``currents``, ``accumulators``,
    ``fifos`` and ``total``. The figures are depth times width of the memories actually generated
    (a layer without synapses still has a one-word synapse memory).
    """
    check_fifo_depth(fifo_depth)
    totals = dict.fromkeys(("row_pointers", "synapses", "potentials", "currents", "accumulators"), 0)
    plans = plan_model(model)
    for plan in plans:
        for kind, bits in plan.memory_bits().items():
            totals[kind] += bits
    totals["fifos"] = sum(fifo_depth * (plan.out_index_bits + 1) for plan in plans[:-1])
    totals["total"] = sum(totals.values())
    return totals
