"""Layer cores by layer kind: the RTL's one registration point for neuron kinds.

A model's layer ``kind`` (``lif`` or ``cubalif`` for a hidden layer, ``output`` for the last one) selects the
Amaranth component that implements it. Every layer core takes its
:class:`~esl_hw.rtl_gen.plan.LayerPlan` first and has the ports :class:`~esl_hw.rtl_gen.core.SNNCore`
chains (``events`` in; ``spikes`` out for a hidden layer, ``outputs``/``done``/``prediction`` for the
output layer; ``ptr_access``, ``syn_access`` and the state memories' host access ports per lane;
``stat_*`` strobes, one count or, with streaming, a pair per inference parity). The registry
records what differs between them: the class, the names of its state memories' access ports and
which depth options its constructor takes.

Registered (:data:`LAYER_CORES`): ``lif`` and ``cubalif`` (both
:class:`~esl_hw.rtl_gen.lif.LifLayerCore`: the plan selects the sweep's datapath; ``cubalif`` adds
the synaptic-current memory ``isyn`` and one sweep stage) and ``output``
(:class:`~esl_hw.rtl_gen.output.OutputLayerCore`). Bias and reset are options of every hidden kind
(and the bias of the output layer), not kinds. The Python model each core is tested against is
the reference's step of the same kind (:data:`esl_hw.neuron_kinds.NEURON_KINDS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amaranth.lib import wiring

from esl_hw.errors import EslError
from esl_hw.rtl_gen.lif import LifLayerCore
from esl_hw.rtl_gen.output import OutputLayerCore
from esl_hw.rtl_gen.plan import DEFAULT_LANE_FIFO_DEPTH, DEFAULT_SPIKE_FIFO_DEPTH, LayerPlan

__all__ = ["LAYER_CORES", "LayerCoreKind", "build_layer_core", "layer_core_class", "layer_core_kind"]

#: The depth options a layer core's constructor may take (keyword names), beside the plan.
DEPTH_OPTIONS = ("lane_fifo_depth", "spike_fifo_depth")


@dataclass(frozen=True)
class LayerCoreKind:
    """One layer kind of the RTL.

    Attributes
    ----------
    name : str
        The artifact's layer ``kind``.
    core : type
        The :class:`amaranth.lib.wiring.Component` of the layer, built as ``core(plan, **options)``.
    state_access : str
        The name of its per-lane host access port array of the neuron state (potentials for
        ``lif`` and ``cubalif``, accumulators for ``output``), mapped by
        :mod:`esl_hw.rtl_gen.memory_map`.
    options : tuple of str
        Which of :data:`DEPTH_OPTIONS` its constructor takes.
    more_access : tuple of str
        Further per-lane state access port arrays, in memory-map order after ``state_access``
        (``isyn_access`` for ``cubalif``).
    """

    name: str
    core: type[wiring.Component]
    state_access: str
    options: tuple[str, ...] = ("lane_fifo_depth",)
    more_access: tuple[str, ...] = ()

    @property
    def accesses(self) -> tuple[str, ...]:
        """Every per-lane host access port array of the core, in memory-map order."""
        return ("ptr_access", "syn_access", self.state_access, *self.more_access)

    def __post_init__(self) -> None:
        unknown = set(self.options) - set(DEPTH_OPTIONS)
        if unknown:
            raise ValueError(f"layer core {self.name!r}: unknown options {sorted(unknown)}")

    def build(self, plan: LayerPlan, streaming: bool = True, **depths: Any) -> wiring.Component:
        """The layer core for ``plan`` with those of ``depths`` (:data:`DEPTH_OPTIONS`) it takes;
        ``streaming``: its ``stat_*`` strobes come in pairs, one per inference parity (every
        layer core takes it)."""
        chosen = {name: value for name, value in depths.items() if name in self.options}
        return self.core(plan, streaming=streaming, **chosen)


#: The registered layer cores, by artifact layer kind.
LAYER_CORES: dict[str, LayerCoreKind] = {
    "lif": LayerCoreKind("lif", LifLayerCore, "pot_access", ("lane_fifo_depth", "spike_fifo_depth")),
    "cubalif": LayerCoreKind(
        "cubalif", LifLayerCore, "pot_access", ("lane_fifo_depth", "spike_fifo_depth"), ("isyn_access",)
    ),
    "output": LayerCoreKind("output", OutputLayerCore, "acc_access"),
}


def layer_core_kind(kind: Any) -> LayerCoreKind:
    """The registered layer kind ``kind``; an unknown one raises :class:`EslError` listing the known."""
    if not isinstance(kind, str) or kind not in LAYER_CORES:
        raise EslError(f"no layer core for layer kind {kind!r} (known: {', '.join(sorted(LAYER_CORES))})")
    return LAYER_CORES[kind]


def layer_core_class(kind: Any) -> type[wiring.Component]:
    """The Amaranth component class of layer kind ``kind``."""
    return layer_core_kind(kind).core


def build_layer_core(
    plan: LayerPlan,
    lane_fifo_depth: int = DEFAULT_LANE_FIFO_DEPTH,
    spike_fifo_depth: int | None = DEFAULT_SPIKE_FIFO_DEPTH,
    streaming: bool = True,
) -> wiring.Component:
    """The layer core of ``plan``'s layer kind (what :class:`~esl_hw.rtl_gen.core.SNNCore` chains),
    its counter strobes per inference parity with ``streaming``."""
    return layer_core_kind(plan.kind).build(
        plan, streaming, lane_fifo_depth=lane_fifo_depth, spike_fifo_depth=spike_fifo_depth
    )
