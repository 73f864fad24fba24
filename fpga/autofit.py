"""Automatic hardware settings: the candidate configurations of a core for a target, in order of
preference, and the block-memory filter that drops those that cannot fit before any tool runs.

:func:`esl_hw.fpga.synth.synthesize` given a model (not a plan) tries these candidates one after
the other and keeps the first that fits (``esl-hw synth MODEL --target T`` with its default
options). Every option the caller gives is fixed; the others are chosen.

Fixed per family, not searched: on a family without LUT RAM (the iCE40, where every FIFO of at
most :data:`esl_hw.fpga.fit.SMALL_DEPTH` words is flip-flops) the lane event FIFOs and the spike
FIFOs between layers are :data:`SMALL_FIFO_DEPTH` words deep (instead of 32 and 16: about 1,600
logic cells fewer on a 784-800-10 core; the inference is the same, bit for bit, only its cycles
may change). A family with LUT RAM keeps the defaults and gets one candidate.

Searched on a family without LUT RAM, in order of preference (:func:`candidate_configs`):

1. the model's own lanes (:func:`~esl_hw.rtl_gen.hardware.model_lanes`) before 1 lane;
2. the rewiring unit in (when the model's weights allow it) before out;
3. the spike-mask FIFO one whole step deep (block RAM: the sweep never waits for the next layer)
   before :data:`SMALL_SPIKE_FIFO_DEPTH` words (flip-flops, freeing its block RAMs);
4. streamed inferences on before off (``HardwareConfig.streaming``: off, the core takes one
   inference at a time, with the same results and cycles per inference, in about 840 logic cells
   fewer on a 784-800-10 core, :func:`esl_hw.fpga.fit.streaming_logic_cells`). Streaming is
   thus dropped before the spike-mask FIFO is shrunk and before the rewiring unit is left out.

Streaming adds no memory, so a candidate and its twin without streaming have the same
block-memory estimate; which of them fits is a question of logic cells, answered by synthesis.
A candidate with streaming passed over for its logic is followed by its twin without streaming
only when the estimate of streaming's cells (:func:`without_streaming_may_fit`) says the twin
may fit; else the twin is passed over without synthesis (:func:`hopeless_twin`).

A family with LUT RAM (the ECP5) gets streaming on, as every other default.

The synapse memories of each candidate go to block RAM when it fits the estimate, else to SPRAM
where the device has it and that fits (``synapse_memory="auto"``).

The first filter is the block-memory estimate (:mod:`esl_hw.fpga.fit`): a candidate that needs
more block RAM or SPRAM than the device has is dropped (:func:`fitting_candidates`); when every
candidate is dropped, :class:`~esl_hw.fpga.fit.DoesNotFit` names the resource, before any
synthesis. The second is synthesis itself (Yosys, nextpnr's packer, place-and-route), in
:func:`esl_hw.fpga.synth.synthesize`.

It runs no tool and builds no gateware: a candidate is a configuration and its estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from esl_hw.artifact import Model
from esl_hw.errors import EslError
from esl_hw.fpga import fit
from esl_hw.fpga.targets import Target
from esl_hw.rtl_gen.hardware import SYNAPSE_MEMORIES, HardwareConfig, model_lanes
from esl_hw.rtl_gen.memories import rewire_limit_problem
from esl_hw.rtl_gen.plan import CorePlan, as_plan

__all__ = [
    "ESTIMATE_SLACK",
    "PLACE_MARGIN",
    "SMALL_FIFO_DEPTH",
    "SMALL_SPIKE_FIFO_DEPTH",
    "Candidate",
    "candidate_configs",
    "choose_synapse_memory",
    "describe",
    "fitting_candidates",
    "hopeless_twin",
    "refusal",
    "without_streaming_may_fit",
]

#: Depth of the lane event FIFOs and the spike FIFOs on a family without LUT RAM.
SMALL_FIFO_DEPTH = 4

#: Depth of the spike-mask FIFO when its block RAMs are needed elsewhere (flip-flops).
SMALL_SPIKE_FIFO_DEPTH = 4

#: How far above the device's block RAM the estimate of the leanest candidate may be and still be
#: synthesised (the estimate can exceed Yosys' packing by a block or two in a hundred); beyond it
#: the model is refused before any tool runs.
ESTIMATE_SLACK = 0.1

#: Share of the logic cells a candidate may take and still be placed while another candidate
#: remains: nextpnr-ice40 placed a 784-800-10 core at 89 % (4,700 of 5,280 logic cells) and
#: found no legal placement for one at 94.5 % (4,992).
PLACE_MARGIN = 0.92


@dataclass(frozen=True)
class Candidate:
    """One configuration tried for a target, with its block-memory estimate."""

    config: HardwareConfig
    rewiring: bool
    bram: int
    spram: int

    def fits(self, target: Target, slack: float = 0.0) -> bool:
        """Its estimate is within the device's block RAM (plus ``slack`` of it) and SPRAM."""
        bram = self.bram <= target.capacity["bram"] * (1 + slack)
        return bram and self.spram <= target.capacity["spram"]


def describe(config: HardwareConfig, rewiring: bool) -> str:
    """The settings of ``config`` in words (``rewiring``: the unit is built)."""
    spike = "one step" if config.spike_fifo_depth is None else f"{config.spike_fifo_depth} words"
    return (
        f"{config.lanes} lane{'s' if config.lanes > 1 else ''}, synapses in "
        f"{'SPRAM' if config.synapse_memory == 'spram' else 'block RAM'}, rewiring unit "
        f"{'in' if rewiring else 'out'}, streaming {'on' if config.streaming else 'off'}, lane FIFO "
        f"{config.lane_fifo_depth}, spike FIFO {config.fifo_depth}, spike-mask FIFO {spike}"
    )


def without_streaming_may_fit(used: int, limit: int, streaming_cells: int) -> bool:
    """Whether the twin without streaming of a candidate with streaming that took ``used`` logic
    cells may take at most ``limit`` (the device's cells times :data:`PLACE_MARGIN`): ``used``
    less the estimate of streaming's cells (:func:`esl_hw.fpga.fit.streaming_logic_cells`)."""
    return used - streaming_cells <= limit


def hopeless_twin(
    config: HardwareConfig, overflow: list[dict], device_cells: int, streaming_cells: int
) -> tuple[HardwareConfig | None, str]:
    """The twin without streaming of a candidate ``config`` with streaming that synthesis passed
    over for its logic alone (``overflow``: its rows, all of them ``luts``; ``device_cells``: the
    device's logic cells), when it cannot fit either (:func:`without_streaming_may_fit` with
    ``streaming_cells``), and why; else ``(None, "")``."""
    luts = [row for row in overflow if row["resource"] == "luts" and row.get("used") is not None]
    if not config.streaming or not luts or len(luts) != len(overflow):
        return None, ""
    used, limit = luts[0]["used"], int(device_cells * PLACE_MARGIN)
    if without_streaming_may_fit(used, limit, streaming_cells):
        return None, ""
    reason = (
        f"not synthesised: with streaming luts needed {used}, without about {used - streaming_cells} "
        f"(streaming about {streaming_cells} logic cells), above the {PLACE_MARGIN:.0%} placement "
        f"margin ({limit})"
    )
    return replace(config, streaming=False), reason


def _choices(given, searched: bool, options: list) -> list:
    """``[given]`` when the caller fixed it, else ``options`` (only the first when not
    ``searched``)."""
    if given is not None:
        return [given]
    return options if searched else options[:1]


def _given(value: int | None, default: int | None) -> int | None:
    return default if value is None else value


def candidate_configs(
    model: Model,
    target: Target,
    lanes: int | None = None,
    rewiring: bool | None = None,
    lane_fifo_depth: int | None = None,
    fifo_depth: int | None = None,
    spike_fifo_depth: int | None = None,
    streaming: bool | None = None,
) -> list[HardwareConfig]:
    """The configurations to try for ``model`` on ``target``, most preferred first (module
    docstring), every option given fixed; synapse memories in block RAM (chosen per candidate
    by :func:`fitting_candidates`)."""
    searched = not target.family.lut_ram
    small = SMALL_FIFO_DEPTH if searched else None
    base = HardwareConfig.for_model(
        model, 1, lane_fifo_depth=_given(lane_fifo_depth, small), fifo_depth=_given(fifo_depth, small)
    )
    own = model_lanes(model)
    configs = []
    for lane_count in _choices(lanes, searched, list(dict.fromkeys([own, 1]))):
        for rewire in _choices(rewiring, searched, [None, False]):
            for spike in _choices(spike_fifo_depth, searched, [None, SMALL_SPIKE_FIFO_DEPTH]):
                for stream in _choices(streaming, searched, [True, False]):
                    config = replace(
                        base, lanes=lane_count, rewiring=rewire, spike_fifo_depth=spike, streaming=stream
                    )
                    configs.append(config)
    return configs


def _candidate(config: HardwareConfig, target: Target, shapes) -> Candidate:
    rewiring = config.rewiring is not False and rewire_limit_problem(shapes) is None
    spram = config.synapse_memory == "spram"
    need = fit.totals(fit.estimate_memories(shapes, target.family, config, spram))
    return Candidate(config, rewiring, need["bram"], need["spram"])


def _synapse_choices(requested: str, target: Target) -> list[str]:
    """The synapse memories to try for ``requested`` on ``target`` (a bad name, or SPRAM on a
    device without it, raises :class:`EslError`)."""
    if requested not in ("auto", *SYNAPSE_MEMORIES):
        raise EslError(f"synapse memory must be auto, {' or '.join(SYNAPSE_MEMORIES)}, got {requested!r}")
    if requested == "spram" and not target.capacity["spram"]:
        raise EslError(f"{target.name} has no SPRAM: use --synapses block")
    if requested != "auto":
        return [requested]
    return ["block", "spram"] if target.capacity["spram"] else ["block"]


def choose_synapse_memory(
    model: CorePlan | Model, target: Target, lanes: int | None = None, requested: str = "auto"
) -> str:
    """``block`` or ``spram`` for ``requested`` (``auto``, ``block`` or ``spram``) on ``target``
    for the core of ``model`` (its plan, or the model on ``lanes`` lanes with the default options):
    ``auto`` takes SPRAM only where block RAM is too small and SPRAM makes the model fit
    (:func:`esl_hw.fpga.fit.fit_advice`)."""
    choices = _synapse_choices(requested, target)
    if len(choices) == 1:
        return choices[0]
    advice = fit.fit_advice(model, target, lanes)
    return "spram" if not advice["fits"] and advice["with_spram"]["fits"] else "block"


def fitting_candidates(
    model: Model, target: Target, synapse_memory: str = "auto", **options
) -> tuple[list[Candidate], list[Candidate]]:
    """``(fitting, dropped)``: the candidates of :func:`candidate_configs` (``options`` are its
    keyword arguments) whose block-memory estimate fits ``target``, in order of preference, each
    with its synapse memory (``auto``: block RAM when it fits, else SPRAM), and those that do not
    fit (the leanest last). Duplicates (a rewiring unit the weights rule out anyway) are dropped.
    When none fits, the leanest is kept among the fitting ones if it is within
    :data:`ESTIMATE_SLACK` (synthesis decides)."""
    choices = _synapse_choices(synapse_memory, target)
    shapes_of: dict[int, list] = {}
    fitting, dropped, seen = [], [], set()
    for config in candidate_configs(model, target, **options):
        if config.lanes not in shapes_of:
            shapes_of[config.lanes] = as_plan(model, config.lanes).shapes
        shapes = shapes_of[config.lanes]
        tried = [_candidate(replace(config, synapse_memory=m), target, shapes) for m in choices]
        best = next((c for c in tried if c.fits(target)), tried[-1])
        key = (best.config.lanes, best.rewiring, best.config.spike_fifo_depth, best.config.synapse_memory)
        key += (best.config.streaming,)
        if key in seen:
            continue
        seen.add(key)
        (fitting if best.fits(target) else dropped).append(best)
    if not fitting and dropped[-1].fits(target, ESTIMATE_SLACK):
        fitting.append(dropped.pop())
    return fitting, dropped


def refusal(model: Model, target: Target, leanest: Candidate) -> str:
    """One line: why no candidate fits (the leanest's estimate against the device), and what
    density or weight width would."""
    sizes = "-".join(str(size) for size in [model.n_inputs, *(layer.n_out for layer in model.layers)])
    over = []
    for kind, label in (("bram", "EBR"), ("spram", "SPRAM")):
        need = getattr(leanest, kind)
        if need > target.capacity[kind]:
            over.append(f"{need} of {target.capacity[kind]} {label}")
    plan = as_plan(model, leanest.config.lanes, **_options(leanest.config))
    advice = fit.fit_advice(plan, target)
    if leanest.config.synapse_memory == "spram":
        advice = advice["with_spram"]
    hints = [f"density <= {advice['max_density']}"] if advice.get("max_density") else []
    hints += [f"w_bits <= {advice['max_w_bits']}"] if advice.get("max_w_bits") else []
    way = f"it would fit with {' or '.join(hints)}" if hints else "no density or weight width fits"
    return (
        f"model {sizes} ({model.synapses:,} synapses) does not fit {target.device}: it needs "
        f"{' and '.join(over)} (block-memory estimate) with its leanest settings "
        f"({describe(leanest.config, leanest.rewiring)}); {way}"
    )


def _options(config: HardwareConfig) -> dict:
    names = ("fifo_depth", "lane_fifo_depth", "spike_fifo_depth", "synapse_memory", "rewiring", "streaming")
    return {name: getattr(config, name) for name in names}
