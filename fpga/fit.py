"""Block-memory estimate of a core, and what to change when a model does not fit a device.

The estimate maps each memory of the generated core (per layer and lane: row pointers, synapses,
potentials, currents, accumulators; see :mod:`esl_hw.rtl_gen.plan`; and the rewiring unit's
histogram of :mod:`esl_hw.rtl_gen.rewire`) onto the device's block RAM
shapes and takes the cheapest shape, as Yosys' memory mapper does:

- ECP5 ``DP16KD`` (18 kbit): 16384x1, 8192x2, 4096x4, 2048x9, 1024x18, and 512x36 for a memory
  with one read port;
- iCE40 ``SB_RAM40_4K`` (4 kbit): 256x16, 512x8, 1024x4, 2048x2, one read port per block (a
  memory with two read ports is duplicated);
- iCE40 ``SB_SPRAM256KA`` (256 kbit, 16384x16, single port, *not initialisable* from the
  bitstream): only for memories the host loads at start-up.

Memories of at most :data:`SMALL_DEPTH` words go to LUT RAM or flip-flops and are not counted (on
the iCE40, which has no LUT RAM, the synthesis flow asks Yosys for flip-flops); so do the event
FIFOs (at most 32 words); the spike-mask FIFO of a LIF layer (``groups + 2`` words) is counted.
The estimate is checked against real synthesis in the tests and in the benchmark table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from esl_hw.artifact import Model
from esl_hw.fpga.targets import Target
from esl_hw.rtl_gen.plan import MAX_REWIRE_W_BITS, plan_model, unsigned_bits

#: Memories this shallow are left to LUT RAM / flip-flops by Yosys.
SMALL_DEPTH = 32

_SHAPES = {
    "ecp5": ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)),
    "ice40": ((256, 16), (512, 8), (1024, 4), (2048, 2)),
}
_SPRAM_SHAPE = (16384, 16)


@dataclass(frozen=True)
class LayerShape:
    """The numbers of one layer that size its memories."""

    kind: str
    n_in: int
    n_out: int
    nnz: int
    w_bits: int
    v_bits: int
    acc_bits: int
    local_bits: int
    groups: int


@dataclass(frozen=True)
class MemoryEstimate:
    """One memory of the core and the blocks it takes."""

    name: str
    role: str
    depth: int
    width: int
    read_ports: int
    bram: int
    spram: int = 0

    @property
    def bits(self) -> int:
        return self.depth * self.width


def layer_shapes(model: Model, lanes: int = 1) -> list[LayerShape]:
    """The :class:`LayerShape` of every layer of ``model`` on ``lanes`` lanes."""
    shapes = []
    for plan in plan_model(model, lanes):
        shapes.append(
            LayerShape(
                kind=plan.kind,
                n_in=plan.n_in,
                n_out=plan.n_out,
                nnz=plan.layer.nnz,
                w_bits=plan.w_bits,
                v_bits=plan.layer.v_bits or 0,
                acc_bits=plan.acc_bits,
                local_bits=plan.local_bits,
                groups=plan.groups,
            )
        )
    return shapes


def blocks(depth: int, width: int, read_ports: int, family: str) -> int:
    """Block RAMs of ``family`` for a ``depth`` x ``width`` memory with ``read_ports`` read ports."""
    shapes = _SHAPES[family]
    if family == "ecp5" and read_ports > 1:
        shapes = shapes[:-1]  # true dual port: at most 18 bits wide
    best = min(math.ceil(width / w) * math.ceil(depth / d) for d, w in shapes)
    if family == "ice40":
        best *= read_ports
    return best


def spram_blocks(depth: int, width: int) -> int:
    """SPRAM blocks for a ``depth`` x ``width`` memory."""
    return math.ceil(width / _SPRAM_SHAPE[1]) * math.ceil(depth / _SPRAM_SHAPE[0])


def estimate_memories(
    shapes: list[LayerShape], family: str, lanes: int = 1, spram_synapses: bool = False
) -> list[MemoryEstimate]:
    """Block estimate of every memory; ``spram_synapses`` puts synapse memories in SPRAM."""
    memories = []
    for index, shape in enumerate(shapes):
        lane_nnz = max(1, math.ceil(shape.nnz / lanes))
        ptr_bits = unsigned_bits(lane_nnz)
        entries = [
            ("row_pointers", "ptr", shape.n_in + 1, ptr_bits + 1, 2),  # + the empty-row flag
            ("synapses", "syn", lane_nnz, shape.local_bits + shape.w_bits, 1),
        ]
        if shape.kind == "lif":
            entries += [
                ("potentials", "pot", shape.groups, shape.v_bits, 1),
                ("currents", "cur_even", shape.groups, shape.acc_bits, 1),  # even and odd steps
                ("currents", "cur_odd", shape.groups, shape.acc_bits, 1),
            ]
        else:
            entries.append(("accumulators", "acc", shape.groups, shape.acc_bits, 1))
        for role, short, depth, width, ports in entries:
            for lane in range(lanes):
                name = f"layer{index}.lane{lane}.{short}"
                if depth <= SMALL_DEPTH:
                    memories.append(MemoryEstimate(name, role, depth, width, ports, 0))
                elif spram_synapses and role == "synapses":
                    spram = spram_blocks(depth, width)
                    memories.append(MemoryEstimate(name, role, depth, width, ports, 0, spram))
                else:
                    bram = blocks(depth, width, ports, family)
                    memories.append(MemoryEstimate(name, role, depth, width, ports, bram))
        if shape.kind == "lif":  # the spike-mask FIFO behind the sweep: a whole step by default
            depth, width = shape.groups + 2, shape.local_bits + lanes + 1
            bram = 0 if depth <= SMALL_DEPTH else blocks(depth, width, 1, family)
            memories.append(MemoryEstimate(f"layer{index}.masks", "spike_masks", depth, width, 1, bram))
    memories += _rewire_histogram(shapes, family)
    return memories


def _rewire_histogram(shapes: list[LayerShape], family: str) -> list[MemoryEstimate]:
    """The rewiring unit's magnitude histogram (present when every layer has ``w_bits <= 8``)."""
    w_bits = max(shape.w_bits for shape in shapes)
    if w_bits > MAX_REWIRE_W_BITS:
        return []
    depth = (1 << (w_bits - 1)) + 1
    width = unsigned_bits(max(shape.nnz for shape in shapes))
    bram = 0 if depth <= SMALL_DEPTH else blocks(depth, width, 1, family)
    return [MemoryEstimate("rewire.hist", "rewire_histogram", depth, width, 1, bram)]


def totals(memories: list[MemoryEstimate]) -> dict[str, int]:
    """Block RAMs and SPRAMs of ``memories`` together."""
    return {"bram": sum(m.bram for m in memories), "spram": sum(m.spram for m in memories)}


def _fits(shapes: list[LayerShape], target: Target, lanes: int, spram: bool) -> bool:
    need = totals(estimate_memories(shapes, target.family, lanes, spram))
    return need["bram"] <= target.capacity["bram"] and need["spram"] <= target.capacity["spram"]


def scaled_density(shapes: list[LayerShape], factor: float) -> list[LayerShape]:
    """``shapes`` with every layer's synapse count scaled by ``factor``."""
    return [replace(s, nnz=max(1, round(s.nnz * factor))) for s in shapes]


def with_weight_bits(shapes: list[LayerShape], w_bits: int) -> list[LayerShape]:
    """``shapes`` with ``w_bits``-bit weights (currents and accumulators shrink by the same bits)."""
    return [replace(s, w_bits=w_bits, acc_bits=max(2, s.acc_bits - (s.w_bits - w_bits))) for s in shapes]


def fit_advice(model: Model, target: Target, lanes: int = 1) -> dict:
    """How much block memory ``model`` needs on ``target`` and, if too much, what would fit.

    Returns a dict with ``bram_needed``, ``spram_needed`` (EBR only, the core as generated today:
    initialised memories cannot use SPRAM), ``fits``, and, when it does not fit,
    ``max_density`` (largest density, same weight width, that fits; None if none does) and
    ``max_w_bits`` (largest weight width, same density, that fits; None if none does). With
    SPRAM on the device, ``with_spram`` gives the same figures for a core whose synapse memories
    are SPRAM loaded by the host.
    """
    shapes = layer_shapes(model, lanes)
    density = model.density
    advice = _advice(shapes, target, lanes, density, spram=False)
    if target.capacity["spram"]:
        advice["with_spram"] = _advice(shapes, target, lanes, density, spram=True)
    return advice


def _advice(shapes: list[LayerShape], target: Target, lanes: int, density: float, spram: bool) -> dict:
    need = totals(estimate_memories(shapes, target.family, lanes, spram))
    fits = _fits(shapes, target, lanes, spram)
    advice: dict = {"bram_needed": need["bram"], "spram_needed": need["spram"], "fits": fits}
    if fits:
        return advice
    steps = [k / 1000 for k in range(1000, 0, -5)]
    best = next((f for f in steps if _fits(scaled_density(shapes, f), target, lanes, spram)), None)
    advice["max_density"] = None if best is None else round(density * best, 4)
    w_now = max(s.w_bits for s in shapes)
    advice["max_w_bits"] = next(
        (w for w in range(w_now - 1, 1, -1) if _fits(with_weight_bits(shapes, w), target, lanes, spram)), None
    )
    return advice


def advice_text(advice: dict) -> str:
    """One sentence from :func:`fit_advice`: what density or weight width would fit."""
    parts = []
    for label, entry in (("", advice), ("with host-loaded SPRAM synapses: ", advice.get("with_spram"))):
        if not entry or entry["fits"]:
            if entry and label:
                need = f"{entry['bram_needed']} EBR + {entry['spram_needed']} SPRAM"
                parts.append(f"{label}fits (estimate {need})")
            continue
        density = entry.get("max_density")
        w_bits = entry.get("max_w_bits")
        hints = [f"density <= {density}"] if density else []
        hints += [f"w_bits <= {w_bits}"] if w_bits else []
        need = f"{entry['bram_needed']} EBR + {entry['spram_needed']} SPRAM"
        if hints:
            parts.append(f"{label}estimate {need}; would fit with " + " or ".join(hints))
        else:
            parts.append(
                f"{label}estimate {need}; no density or weight width fits (fixed memories exceed it)"
            )
    return "; ".join(parts) + "." if parts else ""
