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
from esl_hw.rtl_gen.plan import (
    MASK_SKID_WORDS,
    check_fifo_depth,
    check_lanes,
    dense_memory_bits,
    plan_model,
    split_lanes,
    unsigned_bits,
)
from esl_hw.rtl_gen.rewire import RewireUnit


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


@pytest.mark.parametrize("lanes", [1, 2, 4, 16])
def test_synapse_words_round_trip(lanes) -> None:
    rng = np.random.default_rng(0)
    model = random_model(rng, [9, 13, 5], density=0.6, w_bits=7)
    for plan in plan_model(model, lanes):
        rows, cols, weights = [], [], []
        for lane in range(lanes):
            words = np.array(plan.syn_init(lane)[: plan.lane_nnz(lane)], dtype=np.int64)
            group = words & ((1 << plan.local_bits) - 1)
            weight = words >> plan.local_bits
            weight = np.where(weight >= 1 << (plan.w_bits - 1), weight - (1 << plan.w_bits), weight)
            pointers = np.array(plan.ptr_init(lane))
            rows.append(np.repeat(np.arange(plan.n_in), np.diff(pointers)))
            cols.append(group * lanes + lane)
            weights.append(weight)
        rows, cols, weights = (np.concatenate(part) for part in (rows, cols, weights))
        dense = np.zeros((plan.n_in, plan.n_out), dtype=np.int64)
        dense[rows, cols] = weights
        np.testing.assert_array_equal(dense, plan.layer.dense_weight())
        assert len(rows) == plan.layer.nnz
        if lanes == 1:
            assert plan.ptr_init() == plan.layer.row_ptr.tolist()


@pytest.mark.parametrize("lanes", [1, 4])
def test_memory_bits_match_the_generated_memories(lanes) -> None:
    rng = np.random.default_rng(1)
    model = random_model(rng, [10, 7, 6, 3], density=0.4)
    sizes = dict.fromkeys(("row_pointers", "synapses", "potentials", "currents", "accumulators"), 0)
    for plan in plan_model(model, lanes):
        core = (LifLayerCore if plan.is_lif else OutputLayerCore)(plan)
        module = elaborate(core)
        for lane in range(lanes):
            front = elaborate(module.submodules[f"front{lane}"])
            sizes["row_pointers"] += memory_size(front.submodules.ptr_mem)
            sizes["synapses"] += memory_size(front.submodules.syn_mem)
            if plan.is_lif:
                sizes["potentials"] += memory_size(module.submodules[f"pot_mem{lane}"])
                sizes["currents"] += memory_size(module.submodules[f"cur_mem{lane}_even"])
                sizes["currents"] += memory_size(module.submodules[f"cur_mem{lane}_odd"])
            else:
                sizes["accumulators"] += memory_size(module.submodules[f"acc_mem{lane}"])
    bits = memory_bits(model, fifo_depth=8, lanes=lanes, lane_fifo_depth=4, spike_fifo_depth=2)
    assert {key: bits[key] for key in sizes} == sizes
    in_bits = [4, 3, 3]  # index widths of the layers' inputs (10, 7, 6 inputs)
    lane_fifos = sum(lanes * 4 * (bits_ + 1) for bits_ in in_bits)
    # spike-mask FIFO (2 words) and its skid (MASK_SKID_WORDS) behind each LIF layer
    mask_fifos = (2 + MASK_SKID_WORDS) * (plan_model(model, lanes)[0].local_bits + lanes + 1)
    mask_fifos += (2 + MASK_SKID_WORDS) * (plan_model(model, lanes)[1].local_bits + lanes + 1)
    skid = elaborate(LifLayerCore(plan_model(model, lanes)[0])).submodules.mask_skid
    assert skid.depth == MASK_SKID_WORDS
    assert bits["fifos"] == 8 * (3 + 1) + 8 * (3 + 1) + lane_fifos + mask_fifos
    unit = elaborate(RewireUnit(plan_model(model, lanes)))
    assert bits["rewiring"] == memory_size(unit.submodules.hist) > 0
    assert bits["total"] == sum(sizes.values()) + bits["fifos"] + bits["rewiring"]


@pytest.mark.parametrize("lanes", [1, 4])
def test_default_mask_fifo_holds_a_whole_step(lanes) -> None:
    """By default the spike-mask FIFO of a LIF layer holds every group of a step plus the
    end-of-step word behind the sweep's room check (``groups + 2`` words), and is elaborated so."""
    model = random_model(np.random.default_rng(2), [10, 7, 6, 3], density=0.4)
    plans = plan_model(model, lanes)
    for plan in plans[:-1]:
        assert plan.mask_fifo_depth() == plan.groups + 2
        assert plan.mask_fifo_depth(5) == 5
        assert elaborate(LifLayerCore(plan)).submodules.mask_fifo.depth == plan.groups + 2
    default = memory_bits(model, lanes=lanes)["fifos"]
    two = memory_bits(model, lanes=lanes, spike_fifo_depth=2)["fifos"]
    extra = sum(plan.groups * (plan.local_bits + lanes + 1) for plan in plans[:-1])
    assert default - two == extra


def test_dense_memory_bits() -> None:
    model = random_model(np.random.default_rng(1), [10, 7, 3], density=0.4)
    dense = dense_memory_bits(model)
    hidden, output = model.layers
    assert dense["weights"] == 10 * 7 * hidden.w_bits + 7 * 3 * output.w_bits
    assert dense["potentials"] == 7 * hidden.v_bits
    assert dense["total"] == sum(value for key, value in dense.items() if key != "total")


@pytest.mark.parametrize(("lanes", "message"), [(3, "power of two"), ("2", "power of two"), (128, "by 64")])
def test_lane_counts_checked(lanes, message) -> None:
    with pytest.raises(EslError, match=message):
        check_lanes(lanes)


def test_lanes_split_rows_by_bank() -> None:
    dense = np.array([[1, 2, 3, 4, 5], [0, 0, 0, 0, 0], [0, -1, 0, -2, 0]])
    layer = layer_from_dense(dense, "lif", 4, v_bits=8, threshold=3)
    row_ptr, col, weight = split_lanes(layer, 2)
    assert [pointers.tolist() for pointers in row_ptr] == [[0, 3, 3, 3], [0, 2, 2, 4]]
    assert [c.tolist() for c in col] == [[0, 2, 4], [1, 3, 1, 3]]
    assert [w.tolist() for w in weight] == [[1, 3, 5], [2, 4, -1, -2]]


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


def test_memory_bits_without_the_rewiring_unit() -> None:
    model = random_model(np.random.default_rng(2), [6, 5, 3], density=0.5, w_bits=9)
    bits = memory_bits(model)
    assert bits["rewiring"] == 0
    assert bits["total"] == sum(value for key, value in bits.items() if key != "total")
