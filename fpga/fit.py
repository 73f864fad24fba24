"""Block-memory estimate of a core, the logic cost of streaming, and what to change when a model
does not fit a device.

The estimate maps every memory of the core's plan (the memory list of
:mod:`esl_hw.rtl_gen.memories`: per layer and lane the row pointers, synapses, potentials,
currents or accumulators, the FIFOs, and the rewiring unit's histogram) onto the block memories of
the device's family (:class:`~esl_hw.fpga.targets.Family`) and takes the cheapest shape, as
Yosys' memory mapper does (:meth:`esl_hw.rtl_gen.hardware.RamPrimitive.blocks`):

- ECP5 ``DP16KD`` (18 kbit): 16384x1, 8192x2, 4096x4, 2048x9, 1024x18, and 512x36 for a memory
  with one read port;
- iCE40 ``SB_RAM40_4K`` (4 kbit): 256x16, 512x8, 1024x4, 2048x2, one read port per block (a
  memory with two read ports is duplicated);
- iCE40 ``SB_SPRAM256KA`` (256 kbit, 16384x16, single port, *not initialised* by the
  bitstream): only for memories the host loads at start-up (``host_loaded``: the synapse
  memories of a core with ``synapse_memory="spram"``).

Memories of at most :data:`SMALL_DEPTH` words go to LUT RAM or flip-flops and are not counted (on
the iCE40, which has no LUT RAM, the synthesis flow asks Yosys for flip-flops); so do the event
FIFOs at their default depths (32 and 16 words); the spike-mask FIFO of a LIF layer
(``max(groups, 6) + 2`` words) is counted. The estimate is checked against real synthesis in the tests
and in the benchmark table.

Logic is not estimated, synthesis counts it; only the part streamed inferences add (the second
running total of every counter, the parity tags, the input's in-flight control:
:func:`streaming_logic_cells`) is, so the iCE40 autofit (:mod:`esl_hw.fpga.autofit`) can tell
whether a core passed over for its logic could fit without streaming.

The advice (:func:`fit_advice`) lists the memories of hypothetical layers too (another density,
another weight width: :func:`scaled_density`, :func:`with_weight_bits`) from the same
:func:`~esl_hw.rtl_gen.memories.core_memories`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from esl_hw.artifact import Model
from esl_hw.errors import EslError
from esl_hw.fpga.targets import Family, Target, get_family
from esl_hw.rtl_gen.hardware import ICE40_SPRAM, HardwareConfig
from esl_hw.rtl_gen.memories import CoreMemory, LayerShape, core_memories, rewire_limit_problem
from esl_hw.rtl_gen.plan import CorePlan, as_plan

__all__ = [
    "SMALL_DEPTH",
    "DoesNotFit",
    "LayerShape",
    "MemoryEstimate",
    "advice_text",
    "blocks",
    "estimate_memories",
    "estimate_memory",
    "fit_advice",
    "layer_shapes",
    "plan_estimate",
    "scaled_density",
    "spram_blocks",
    "streaming_logic_cells",
    "totals",
    "with_weight_bits",
]

#: Memories this shallow are left to LUT RAM / flip-flops by Yosys.
SMALL_DEPTH = 32

#: iCE40 logic cells that streamed inferences add per performance counter: its second running
#: total (32 flip-flops and an adder), the choice of the total to latch, the strobes split by
#: inference parity, and a share of the fixed part (the input's in-flight control, the two
#: latency stamps). Measured on mnist_d0.05_w6 (784-800-10, 11 counters, 1 lane, rewiring unit
#: in, synapses in SPRAM, FIFOs of 4 words, ``esl-hw synth --target ice40-up5k``): 5,481 LUT4 with
#: streaming (Yosys; above the device, so not packed), 4,635 logic cells packed without: 846, 77
#: per counter (rounded down, so a twin near the margin is rather synthesised than skipped).
STREAMING_CELLS_PER_COUNTER = 76

#: Counters of every core (``cycles`` and the summed ones of
#: :data:`esl_hw.rtl_gen.core.SUMMED_COUNTERS`); one more per LIF layer (its spikes).
_FIXED_COUNTERS = 10


class DoesNotFit(EslError):
    """The design needs more of a resource than the device has (also
    :class:`esl_hw.fpga.synth.DoesNotFit`)."""


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


def layer_shapes(model: Model | CorePlan, lanes: int | None = None) -> list[LayerShape]:
    """The :class:`~esl_hw.rtl_gen.memories.LayerShape` of every layer of ``model`` (a plan, or a
    model on ``lanes`` lanes, by default its own)."""
    return as_plan(model, lanes).shapes


def streaming_logic_cells(model: Model | CorePlan | int) -> int:
    """About how many iCE40 logic cells streamed inferences
    (:class:`~esl_hw.rtl_gen.hardware.HardwareConfig` ``streaming``) add to the core of ``model``
    (a model, its plan, or its number of LIF layers): :data:`STREAMING_CELLS_PER_COUNTER` per
    performance counter (:func:`esl_hw.rtl_gen.core.counter_names`: 10, plus one per LIF layer);
    lanes change only the strobes' widths."""
    if isinstance(model, CorePlan):
        model = model.model
    hidden = model if isinstance(model, int) else len(model.hidden_layers)
    return STREAMING_CELLS_PER_COUNTER * (_FIXED_COUNTERS + hidden)


def blocks(depth: int, width: int, read_ports: int, family: Family | str) -> int:
    """Block RAMs of ``family`` for a ``depth`` x ``width`` memory with ``read_ports`` read ports."""
    return get_family(family).block_ram.blocks(depth, width, read_ports)


def spram_blocks(depth: int, width: int) -> int:
    """SPRAM blocks (iCE40 ``SB_SPRAM256KA``) for a ``depth`` x ``width`` memory."""
    return ICE40_SPRAM.blocks(depth, width)


def estimate_memory(memory: CoreMemory, family: Family | str) -> MemoryEstimate:
    """The blocks of ``family`` one memory of the plan's list takes: none at most
    :data:`SMALL_DEPTH` words deep, SPRAM when the host loads it and the family has SPRAM, block
    RAM otherwise."""
    family = get_family(family)
    bram = spram = 0
    if memory.depth > SMALL_DEPTH and memory.host_loaded and family.spram is not None:
        spram = family.spram.blocks(memory.depth, memory.width, memory.read_ports)
    elif memory.depth > SMALL_DEPTH:
        bram = family.block_ram.blocks(memory.depth, memory.width, memory.read_ports)
    return MemoryEstimate(
        memory.name, memory.role, memory.depth, memory.width, memory.read_ports, bram, spram
    )


def estimate_memories(
    shapes: list[LayerShape],
    family: Family | str,
    config: HardwareConfig | int | None = None,
    spram_synapses: bool = False,
) -> list[MemoryEstimate]:
    """Block estimate of every memory of a core of ``shapes`` under ``config`` (default, or a lane
    count as in the older form: the default options; the lanes are the shapes');
    ``spram_synapses`` puts synapse memories in SPRAM."""
    lanes = shapes[0].lanes
    config = replace(
        config if isinstance(config, HardwareConfig) else HardwareConfig(lanes=lanes), lanes=lanes
    )
    config = replace(config, synapse_memory="spram" if spram_synapses else "block")
    rewiring = config.rewiring is not False and rewire_limit_problem(shapes) is None
    return [estimate_memory(memory, family) for memory in core_memories(shapes, config, rewiring)]


def plan_estimate(plan: CorePlan, family: Family | str) -> list[MemoryEstimate]:
    """Block estimate of every memory of ``plan`` as planned (synapses in SPRAM when its
    configuration says so)."""
    return [estimate_memory(memory, family) for memory in plan.memories]


def totals(memories: list[MemoryEstimate]) -> dict[str, int]:
    """Block RAMs and SPRAMs of ``memories`` together."""
    return {"bram": sum(m.bram for m in memories), "spram": sum(m.spram for m in memories)}


def _fits(shapes: list[LayerShape], target: Target, config: HardwareConfig, spram: bool) -> bool:
    need = totals(estimate_memories(shapes, target.family, config, spram))
    return need["bram"] <= target.capacity["bram"] and need["spram"] <= target.capacity["spram"]


def scaled_density(shapes: list[LayerShape], factor: float) -> list[LayerShape]:
    """``shapes`` with every lane's synapse count scaled by ``factor``."""
    return [replace(s, lane_nnz=tuple(round(nnz * factor) for nnz in s.lane_nnz)) for s in shapes]


def with_weight_bits(shapes: list[LayerShape], w_bits: int) -> list[LayerShape]:
    """``shapes`` with ``w_bits``-bit weights (currents and accumulators shrink by the same bits)."""
    return [replace(s, w_bits=w_bits, acc_bits=max(2, s.acc_bits - (s.w_bits - w_bits))) for s in shapes]


def fit_advice(model: Model | CorePlan, target: Target, lanes: int | None = None) -> dict:
    """How much block memory the core of ``model`` needs on ``target`` and, if too much, what would fit.

    ``model`` is the core's plan, or the model on ``lanes`` lanes (by default its own), planned
    with the default options. Returns a dict with ``bram_needed``, ``spram_needed`` (EBR only:
    initialised memories cannot use SPRAM), ``fits``, and, when it does not fit,
    ``max_density`` (largest density, same weight width, that fits; None if none does) and
    ``max_w_bits`` (largest weight width, same density, that fits; None if none does). With
    SPRAM on the device, ``with_spram`` gives the same figures for a core whose synapse memories
    are SPRAM loaded by the host.
    """
    plan = as_plan(model, lanes)
    shapes, density = plan.shapes, plan.model.density
    advice = _advice(shapes, target, plan.config, density, spram=False)
    if target.capacity["spram"]:
        advice["with_spram"] = _advice(shapes, target, plan.config, density, spram=True)
    return advice


def _advice(
    shapes: list[LayerShape], target: Target, config: HardwareConfig, density: float, spram: bool
) -> dict:
    need = totals(estimate_memories(shapes, target.family, config, spram))
    fits = _fits(shapes, target, config, spram)
    advice: dict = {"bram_needed": need["bram"], "spram_needed": need["spram"], "fits": fits}
    if fits:
        return advice
    steps = [k / 1000 for k in range(1000, 0, -5)]
    best = next((f for f in steps if _fits(scaled_density(shapes, f), target, config, spram)), None)
    advice["max_density"] = None if best is None else round(density * best, 4)
    w_now = max(s.w_bits for s in shapes)
    advice["max_w_bits"] = next(
        (w for w in range(w_now - 1, 1, -1) if _fits(with_weight_bits(shapes, w), target, config, spram)),
        None,
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
