"""Tests for esl_hw.rtl_gen.neuron_kinds: the layer core of every layer kind, from one registry."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from amaranth.hdl import Fragment
from rtl_support import random_model

from esl_hw import neuron_kinds
from esl_hw.errors import EslError
from esl_hw.rtl_gen import SNNCore
from esl_hw.rtl_gen.lif import LifLayerCore
from esl_hw.rtl_gen.neuron_kinds import (
    LAYER_CORES,
    LayerCoreKind,
    build_layer_core,
    layer_core_class,
    layer_core_kind,
)
from esl_hw.rtl_gen.output import OutputLayerCore
from esl_hw.rtl_gen.plan import plan_model


def test_every_reference_neuron_kind_and_the_output_layer_have_a_core() -> None:
    assert set(LAYER_CORES) == set(neuron_kinds.NEURON_KINDS) | {"output"}
    assert layer_core_class("lif") is LifLayerCore
    assert layer_core_class("cubalif") is LifLayerCore
    assert layer_core_class("output") is OutputLayerCore


def _inspected(core):
    core._MustUse__silence = True  # inspected, never elaborated
    return core


def test_cores_are_built_from_the_plan_with_the_options_they_take() -> None:
    model = random_model(np.random.default_rng(0), [9, 6, 4], timesteps=3)
    hidden, output = plan_model(model, 2)
    core = _inspected(build_layer_core(hidden, lane_fifo_depth=4, spike_fifo_depth=5))
    assert isinstance(core, LifLayerCore) and (core.lane_fifo_depth, core.spike_fifo_depth) == (4, 5)
    core = _inspected(build_layer_core(output, lane_fifo_depth=8, spike_fifo_depth=5))
    assert isinstance(core, OutputLayerCore) and core.lane_fifo_depth == 8
    for plan in (hidden, output):
        core = _inspected(build_layer_core(plan))
        access = getattr(core, layer_core_kind(plan.kind).state_access)
        assert len(access) == plan.lanes


def test_cubalif_cores_have_the_synaptic_current_access_ports_in_map_order() -> None:
    rng = np.random.default_rng(2)
    model = random_model(rng, [6, 5, 3], timesteps=2)
    hidden = dataclasses.replace(model.layers[0], kind="cubalif", syn_shift=2, bias=rng.integers(-3, 4, 5))
    model = dataclasses.replace(model, layers=(hidden, model.layers[1]))
    plans = plan_model(model, 2)
    kind = layer_core_kind("cubalif")
    assert kind.accesses == ("ptr_access", "syn_access", "pot_access", "isyn_access")
    core = _inspected(build_layer_core(plans[0]))
    assert all(len(getattr(core, name)) == 2 for name in kind.accesses)
    assert [region.kind for region in plans.regions if region.layer == 0] == [
        name.removesuffix("_access") for name in kind.accesses for _ in range(2)
    ]
    plain = plan_model(random_model(rng, [6, 5, 3]), 2)[0]
    assert not hasattr(_inspected(build_layer_core(plain)), "isyn_access")


def test_snn_core_chains_the_registered_cores() -> None:
    model = random_model(np.random.default_rng(1), [7, 5, 4, 3], timesteps=2)
    core = SNNCore(model)
    fragment = Fragment.get(core, None)
    names = {name: sub for sub, name, _ in fragment.subfragments}
    for plan in core.plans:
        assert isinstance(names[f"layer{plan.index}"].origins[0], layer_core_class(plan.kind))


@pytest.mark.parametrize("kind", ["cuba", "LIF", None])
def test_unknown_layer_kinds_are_refused_naming_the_known_ones(kind) -> None:
    with pytest.raises(EslError, match=r"no layer core for layer kind .* \(known: cubalif, lif, output\)"):
        layer_core_kind(kind)


def test_a_kind_names_only_options_cores_take() -> None:
    with pytest.raises(ValueError, match="unknown options"):
        LayerCoreKind("odd", LifLayerCore, "pot_access", ("depth",))
