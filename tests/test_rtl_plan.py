"""Hardware plan: widths, memory images, memory sizes, limits."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import Shape
from rtl_support import random_model

from esl_hw.artifact import Model, layer_from_dense
from esl_hw.errors import EslError
from esl_hw.rtl_gen import LIMITS, memory_bits
from esl_hw.rtl_gen.lif import LifLayerCore
from esl_hw.rtl_gen.output import OutputLayerCore
from esl_hw.rtl_gen.plan import check_fifo_depth, plan_model, unsigned_bits


def memory_size(memory) -> int:
    memory._MustUse__silence = True  # inspected, never simulated
    return memory.depth * Shape.cast(memory.shape).width


def elaborate(component):
    """Elaborate one level for inspection only (silencing the unused-elaboratable linter)."""
    component._MustUse__silence = True
    module = component.elaborate(None)
    module._MustUse__silence = True
    return module


def test_unsigned_bits() -> None:
    assert [unsigned_bits(value) for value in (0, 1, 2, 3, 4, 255, 256)] == [1, 1, 2, 2, 3, 8, 9]


def test_synapse_words_round_trip() -> None:
    rng = np.random.default_rng(0)
    model = random_model(rng, [9, 13, 5], density=0.6, w_bits=7)
    for plan in plan_model(model):
        words = np.array(plan.syn_init())
        col = words & ((1 << plan.out_index_bits) - 1)
        weight = words >> plan.out_index_bits
        weight = np.where(weight >= 1 << (plan.w_bits - 1), weight - (1 << plan.w_bits), weight)
        np.testing.assert_array_equal(col, plan.layer.col)
        np.testing.assert_array_equal(weight, plan.layer.weight)
        assert plan.ptr_init() == plan.layer.row_ptr.tolist()


def test_memory_bits_match_the_generated_memories() -> None:
    rng = np.random.default_rng(1)
    model = random_model(rng, [10, 7, 6, 3], density=0.4)
    sizes = dict.fromkeys(("row_pointers", "synapses", "potentials", "currents", "accumulators"), 0)
    for plan in plan_model(model):
        core = (LifLayerCore if plan.is_lif else OutputLayerCore)(plan)
        module = elaborate(core)
        front = elaborate(module.submodules.front)
        sizes["row_pointers"] += memory_size(front.submodules.ptr_mem)
        sizes["synapses"] += memory_size(front.submodules.syn_mem)
        if plan.is_lif:
            sizes["potentials"] += memory_size(module.submodules.pot_mem)
            sizes["currents"] += memory_size(module.submodules.cur_mem)
        else:
            sizes["accumulators"] += memory_size(module.submodules.acc_mem)
    bits = memory_bits(model, fifo_depth=8)
    assert {key: bits[key] for key in sizes} == sizes
    assert bits["fifos"] == 8 * (3 + 1) + 8 * (3 + 1)
    assert bits["total"] == sum(sizes.values()) + bits["fifos"]


def test_widths_follow_the_artifact() -> None:
    dense = np.array([[100, -100, 0], [28, 0, -28]])
    hidden = layer_from_dense(dense, "lif", 8, v_bits=12, threshold=50, leak_shift=4)
    output = layer_from_dense(np.array([[3], [-4], [5]]), "output", 4)
    plans = plan_model(Model((hidden, output), timesteps=6))
    assert plans[0].acc_bits == hidden.current_bits() == 9
    assert plans[1].acc_bits == Model((hidden, output), timesteps=6).acc_bits()
    assert (plans[0].in_index_bits, plans[0].out_index_bits, plans[0].ptr_bits) == (1, 2, 3)


def test_limits_name_the_limit_and_the_excess(monkeypatch) -> None:
    rng = np.random.default_rng(2)
    model = random_model(rng, [8, 6, 2])
    monkeypatch.setitem(LIMITS, "neurons per layer", 4)
    with pytest.raises(EslError, match="layer 0: neurons per layer = 6 exceeds the hardware limit 4 by 2"):
        memory_bits(model)


@pytest.mark.parametrize("depth", [1, 0, "8", True])
def test_fifo_depth_checked(depth) -> None:
    with pytest.raises(EslError, match="fifo_depth"):
        check_fifo_depth(depth)
