"""Hardware plan: widths, memory images, memory sizes, limits."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from amaranth import Shape
from amaranth.lib import fifo
from amaranth.lib.memory import Memory
from rtl_support import random_model

from esl_hw import limits
from esl_hw.artifact import Model, layer_from_dense
from esl_hw.errors import EslError
from esl_hw.rtl_gen import LIMITS, SNNCore, memory_bits
from esl_hw.rtl_gen.hardware import ROW_QUEUE_DEPTH, ROW_QUEUE_MIN_GAIN, row_queue_depth
from esl_hw.rtl_gen.lif import LifLayerCore
from esl_hw.rtl_gen.output import OutputLayerCore
from esl_hw.rtl_gen.plan import (
    MASK_SKID_WORDS,
    MAX_LANES,
    HardwareConfig,
    as_plan,
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
    row_queues = 0  # each lane's row queue (with more than one lane): ROW_QUEUE_DEPTH x (2·ptr_bits + 1)
    for plan in plan_model(model, lanes):
        core = (LifLayerCore if plan.is_lif else OutputLayerCore)(plan)
        module = elaborate(core)
        for lane in range(lanes):
            front = elaborate(module.submodules[f"front{lane}"])
            sizes["row_pointers"] += memory_size(front.submodules.ptr_mem)
            sizes["synapses"] += memory_size(front.submodules.syn_mem)
            if plan.row_queue_depth:
                queue = front.submodules.row_queue
                assert queue.depth == ROW_QUEUE_DEPTH and queue.width == 2 * plan.ptr_bits + 1
                row_queues += queue.depth * queue.width
                queue._MustUse__silence = True
            else:
                assert "row_queue" not in front._named_submodules
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
    assert bits["fifos"] == 8 * (3 + 1) + 8 * (3 + 1) + lane_fifos + mask_fifos + row_queues
    # 0.58 and 0.68 synapses per row and lane in the hidden layers at 4 lanes (0.38 in the output
    # layer, which never has queues)
    built = ROW_QUEUE_DEPTH if lanes > 1 else 0
    assert [plan.row_queue_depth for plan in plan_model(model, lanes)] == [built, built, 0]
    assert (row_queues > 0) == (lanes > 1)
    unit = elaborate(RewireUnit(plan_model(model, lanes)))
    assert bits["rewiring"] == memory_size(unit.submodules.hist) > 0
    assert bits["total"] == sum(sizes.values()) + bits["fifos"] + bits["rewiring"]


@pytest.mark.parametrize("lanes", [1, 4])
def test_default_mask_fifo_holds_a_whole_step(lanes) -> None:
    """By default the spike-mask FIFO of a LIF layer holds every group of a step plus the
    end-of-step word behind the sweep's room check (``groups + 2`` words), at least the groups
    of the longest sweep (6 stages) plus 2, and is elaborated so."""
    model = random_model(np.random.default_rng(2), [10, 7, 6, 3], density=0.4)
    plans = plan_model(model, lanes)
    for plan in plans[:-1]:
        expected = max(plan.groups, 6) + 2
        assert plan.mask_fifo_depth() == expected
        assert plan.mask_fifo_depth(5) == 5
        assert elaborate(LifLayerCore(plan)).submodules.mask_fifo.depth == expected
    default = memory_bits(model, lanes=lanes)["fifos"]
    two = memory_bits(model, lanes=lanes, spike_fifo_depth=2)["fifos"]
    extra = sum(max(plan.groups, 6) * (plan.local_bits + lanes + 1) for plan in plans[:-1])
    assert default - two == extra


def test_dense_memory_bits() -> None:
    model = random_model(np.random.default_rng(1), [10, 7, 3], density=0.4)
    dense = dense_memory_bits(model)
    hidden, output = model.layers
    assert dense["weights"] == 10 * 7 * hidden.w_bits + 7 * 3 * output.w_bits
    assert dense["potentials"] == 7 * hidden.v_bits
    assert dense["total"] == sum(value for key, value in dense.items() if key != "total")


@pytest.mark.parametrize(
    ("lanes", "message"),
    [(3, "power of two, got 3"), ("2", "power of two in 1..64, got '2'"), (128, "limit 64 by 64")],
)
def test_lane_counts_checked(lanes, message) -> None:
    with pytest.raises(EslError, match=message):
        check_lanes(lanes)
    with pytest.raises(EslError, match=message):
        HardwareConfig(lanes=lanes)


def test_one_lane_rule_for_training_artifact_and_hardware() -> None:
    # The training config, the artifact's metadata and every hardware stage take the same lanes.
    from esl_hw.train.hardware_rewiring import MAX_LANES as TRAIN_MAX_LANES
    from esl_hw.train.hardware_rewiring import check_lanes as train_check_lanes

    assert TRAIN_MAX_LANES == MAX_LANES == limits.MAX_LANES == limits.REWIRE_LANES[1] == 64
    for lanes in (1, 2, 64):
        assert train_check_lanes(lanes) == check_lanes(lanes) == HardwareConfig(lanes=lanes).lanes
    for lanes in (0, 3, 128):
        for check in (train_check_lanes, check_lanes, lambda value: HardwareConfig(lanes=value)):
            with pytest.raises(EslError):
                check(lanes)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fifo_depth": 1}, "fifo_depth must be an integer >= 2, got 1"),
        ({"lane_fifo_depth": True}, "lane_fifo_depth must be an integer >= 2, got True"),
        ({"spike_fifo_depth": 1 << 20}, "spike_fifo_depth = 1048576 exceeds the hardware limit 65536 by"),
        ({"synapse_memory": "flash"}, "synapse_memory must be one of block, spram, got 'flash'"),
        ({"rewiring": 1}, "rewiring must be True, False or None, got 1"),
        ({"streaming": None}, "streaming must be True or False, got None"),
        ({"streaming": 1}, "streaming must be True or False, got 1"),
    ],
)
def test_hardware_config_is_validated_once(options, message) -> None:
    with pytest.raises(EslError, match=message):
        HardwareConfig(**options)


def test_config_takes_the_lanes_the_model_was_trained_for() -> None:
    model = random_model(np.random.default_rng(3), [6, 5, 3])
    assert HardwareConfig.for_model(model) == HardwareConfig()
    trained = dataclasses.replace(model, metadata={"rewiring": {"lanes": 4, "lfsr_states": [5, 6]}})
    assert HardwareConfig.for_model(trained).lanes == 4
    assert HardwareConfig.for_model(trained, lanes=2, lane_fifo_depth=None).lanes == 2
    assert HardwareConfig().streaming and not HardwareConfig.for_model(model, streaming=False).streaming
    assert HardwareConfig.for_model(model, streaming=None).streaming  # unset: the default, on
    with pytest.raises(EslError, match=r"streaming=False differs from the plan's"):
        as_plan(plan_model(model), streaming=False)
    assert plan_model(trained).lanes == 4 and plan_model(trained, 1).lanes == 1
    assert memory_bits(trained) == memory_bits(model, lanes=4)


def test_plan_is_computed_once_and_passed_on() -> None:
    model = random_model(np.random.default_rng(3), [6, 5, 3])
    plan = plan_model(model, HardwareConfig(lanes=2, lane_fifo_depth=4))
    assert as_plan(plan) is plan and as_plan(plan, 2, lane_fifo_depth=4) is plan
    with pytest.raises(EslError, match=r"lanes=4 differs from the plan's HardwareConfig\(lanes=2"):
        as_plan(plan, 4)
    assert [layer.index for layer in plan] == [0, 1] and plan[-1].kind == "output" and len(plan) == 2
    assert plan.memory_bits() == memory_bits(model, lanes=2, lane_fifo_depth=4) == memory_bits(plan)
    assert "CorePlan(6-5-3, HardwareConfig(lanes=2" in repr(plan)


def test_rewiring_is_resolved_by_the_plan() -> None:
    narrow = random_model(np.random.default_rng(2), [6, 5, 3], w_bits=8)
    wide = random_model(np.random.default_rng(2), [6, 5, 3], density=0.5, w_bits=9)
    assert plan_model(narrow).rewiring and not plan_model(wide).rewiring
    assert not plan_model(narrow, HardwareConfig(rewiring=False)).rewiring
    assert plan_model(narrow, HardwareConfig(rewiring=False)).memory_bits()["rewiring"] == 0
    with pytest.raises(EslError, match="cannot add the rewiring unit: layer 0: w_bits = 9 exceeds"):
        plan_model(wide, HardwareConfig(rewiring=True))


def elaborated_memories(component, path: str = "") -> dict[str, tuple[int, int]]:
    """``{path: (depth, width)}`` of every memory below ``component`` (a FIFO counts as one, its
    depth and width), found by elaborating it level by level."""
    found = {}
    module = elaborate(component)
    for name in module._named_submodules:  # (an Amaranth 0.5 detail: the names of the submodules)
        sub, where = module.submodules[name], f"{path}{name}"
        if isinstance(sub, Memory):
            found[where] = (sub.depth, Shape.cast(sub.shape).width)
            sub._MustUse__silence = True
        elif isinstance(sub, fifo.SyncFIFO | fifo.SyncFIFOBuffered):
            found[where] = (sub.depth, sub.width)
            sub._MustUse__silence = True
        elif hasattr(sub, "elaborate"):
            found.update(elaborated_memories(sub, f"{where}."))
    return found


@pytest.mark.parametrize(
    "config",
    [
        HardwareConfig(),
        HardwareConfig(lanes=4, fifo_depth=4, lane_fifo_depth=8, spike_fifo_depth=3),
        HardwareConfig(lanes=2, synapse_memory="spram", rewiring=False),
    ],
)
@pytest.mark.parametrize("options", [False, True])
def test_memory_list_is_what_the_core_generates(config, options) -> None:
    """The plan's memory list names every memory the gateware instantiates, with its depth and
    width (split synapse memories by block, FIFOs as FIFOs), and nothing else; also with
    ``options`` (a cubalif layer, biases in every layer, subtractive reset)."""
    model = random_model(np.random.default_rng(1), [300, 40, 6, 3], density=0.5, w_bits=7)
    if options:
        model = with_options(model, np.random.default_rng(2))
    plan = plan_model(model, config)
    core = SNNCore(plan)
    expected = {}
    for memory in plan.memories:
        if memory.is_fifo:
            expected[memory.name] = (memory.depth, memory.width)
        else:
            expected.update({name: (depth, memory.width) for name, depth in memory.parts})
    assert elaborated_memories(core) == expected
    split = any(len(memory.parts) > 1 for memory in plan.memories)  # 1,000-word EBR blocks, 16k SPRAM
    assert split == (config.synapse_memory == "block")
    assert [region.id for region in plan.regions] == list(range(len(plan.regions)))
    assert plan.regions == core.regions


def with_options(model: Model, rng) -> Model:
    """``model`` with its first hidden layer ``cubalif``, its second (if any) with subtractive
    reset, and a bias in every layer."""
    layers = []
    for index, layer in enumerate(model.layers):
        changes = {"bias": rng.integers(-40, 41, layer.n_out)}
        if index == 0:
            changes.update(kind="cubalif", syn_shift=2)
        elif layer.is_hidden:
            changes["reset"] = "subtract"
        layers.append(dataclasses.replace(layer, **changes))
    return dataclasses.replace(model, layers=tuple(layers))


def test_memory_list_roles_and_placement_with_options() -> None:
    model = with_options(
        random_model(np.random.default_rng(1), [10, 7, 3], density=0.5), np.random.default_rng(3)
    )
    plan = plan_model(model, HardwareConfig(lanes=2))
    by_role = {}
    for memory in plan.memories:
        by_role.setdefault(memory.role, set()).add(memory.placement)
    assert by_role["synaptic_currents"] == {"block"} and by_role["biases"] == {"block", "any"}
    mapped = [memory.kind for memory in plan.memories if memory.host_id is not None]
    assert mapped == [kind for kind in ("ptr", "syn", "pot", "isyn", "ptr", "syn", "acc") for _ in range(2)]
    bits = plan.memory_bits()
    assert bits["synaptic_currents"] == 2 * 4 * model.layers[0].v_bits
    assert bits["biases"] == 2 * 4 * plan[0].bias_bits + 3 * plan[1].bias_bits
    assert plan.memory_images()[6] == [0] * 4  # isyn lane 0: 0 while idle
    dense = dense_memory_bits(model)
    assert dense["synaptic_currents"] == 7 * model.layers[0].v_bits
    assert dense["biases"] == 7 * plan[0].bias_bits + 3 * plan[1].bias_bits


def test_memory_list_roles_and_placement() -> None:
    model = random_model(np.random.default_rng(1), [10, 7, 3], density=0.5)
    plan = plan_model(model, HardwareConfig(lanes=2))
    by_role = {}
    for memory in plan.memories:
        by_role.setdefault(memory.role, set()).add(memory.placement)
    assert by_role == {
        "row_pointers": {"block"},
        "synapses": {"block"},
        "potentials": {"block"},
        "currents": {"block"},
        "accumulators": {"any"},
        "fifos": {"any"},
        "rewiring": {"any"},
    }
    mapped = [memory for memory in plan.memories if memory.host_id is not None]
    assert [memory.kind for memory in mapped] == ["ptr"] * 2 + ["syn"] * 2 + ["pot"] * 2 + ["ptr"] * 2 + [
        "syn"
    ] * 2 + ["acc"] * 2


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


def test_widths_with_a_bias() -> None:
    """The currents hold the synaptic sum (the sweep adds the bias); the bias words are as wide as
    the biases (``T·bias`` for the output layer); the accumulators also hold ``Σ_t S_t`` where a
    bias shifts the outputs' range away from it (weights -100, -100, bias +100: outputs in
    -100·T .. 100·T, sums down to -200·T)."""
    dense = np.array([[100, -100, 0], [28, 0, -28]])
    bias = np.array([-300, 5, 0])
    hidden = layer_from_dense(dense, "lif", 8, v_bits=12, threshold=50, leak_shift=4, bias=bias)
    output = layer_from_dense(np.array([[-100], [-100], [0]]), "output", 8, bias=np.array([100]))
    model = Model((hidden, output), timesteps=6)
    plans = plan_model(model, 2)
    assert hidden.current_bits() == 10 and plans[0].acc_bits == 9 and plans[0].bias_bits == 10
    assert plans[0].bias_init(0) == [-300, 0] and plans[0].bias_init(1) == [5, 0]
    assert model.acc_bits() == 11 and plans[1].acc_bits == 12  # outputs -600 .. 600, sums to -1200
    assert plans[1].bias_bits == 11 and plans[1].bias_init() == [600]
    plain = plan_model(Model((dataclasses.replace(hidden, bias=None), output), timesteps=6))[0]
    assert (plain.bias_bits, plain.bias_init(), plain.acc_bits) == (0, [], 9)


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


@pytest.mark.parametrize(
    ("lanes", "synapses", "inputs", "built"),
    [
        (1, 100, 100, False),  # one lane: never
        (2, 0, 10, False),
        (4, 18, 10, False),  # 0.45 synapses per row and lane: nearly every row empty in a lane
        (4, 20, 10, True),  # 0.5
        (16, 784 * 13, 784, True),  # the demo's shape: 0.8
        (16, 784 * 27, 784, True),  # 1.69
        (8, 784 * 15, 784, False),  # 1.875: rows nearly never empty in a lane
        (2, 10**6, 10, False),
    ],
)
def test_row_queues_are_built_where_they_are_expected_to_pay(lanes, synapses, inputs, built) -> None:
    rate = synapses / (inputs * lanes)
    assert row_queue_depth(lanes, synapses, inputs) == (ROW_QUEUE_DEPTH if built else 0)
    if lanes > 1:  # the rule: λ + e^(−λ) >= 1.10 · max(1, λ)
        assert built == (rate + math.exp(-rate) >= ROW_QUEUE_MIN_GAIN * max(1.0, rate))


@pytest.mark.parametrize("lanes", [1, 4, 16])
def test_the_plan_lists_the_row_queues_it_builds(lanes) -> None:
    model = random_model(np.random.default_rng(4), [40, 20, 5], density=0.3)
    plan = plan_model(model, lanes)
    depths = [row_queue_depth(lanes, layer.nnz, layer.n_in) if layer.is_lif else 0 for layer in plan]
    assert [layer.row_queue_depth for layer in plan] == depths
    assert [shape.row_queue_depth for shape in plan.shapes] == depths
    # 219 synapses of 40 rows in the hidden layer: 1.37 per row and lane at 4 lanes, 0.34 at 16
    assert depths == ([ROW_QUEUE_DEPTH, 0] if lanes == 4 else [0, 0])
    queues = [memory for memory in plan.memories if memory.kind == "row_queue"]
    assert len(queues) == sum(lanes for depth in depths if depth)
    for memory in queues:
        layer = plan[memory.layer]
        assert (memory.name, memory.depth, memory.width) == (
            f"layer{layer.index}.front{memory.lane}.row_queue",
            ROW_QUEUE_DEPTH,
            2 * layer.ptr_bits + 1,
        )
