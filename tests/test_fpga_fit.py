"""Block-memory estimate and fit advice."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_model

from esl_hw.errors import EslError
from esl_hw.fpga import fit
from esl_hw.fpga.targets import ECP5, ICE40, get_family, get_target
from esl_hw.rtl_gen.hardware import HardwareConfig
from esl_hw.rtl_gen.plan import plan_model


@pytest.mark.parametrize(
    ("depth", "width", "ports", "family", "blocks"),
    [
        (8883, 15, 1, "ecp5", 9),  # 1024x18: 9 blocks (Yosys packs it into 8: the estimate is conservative)
        (785, 14, 2, "ecp5", 1),
        (128, 16, 1, "ice40", 1),
        (785, 14, 2, "ice40", 8),  # 256x16: 4 blocks, duplicated for the second read port
        (8883, 15, 1, "ice40", 35),
    ],
)
def test_blocks(depth: int, width: int, ports: int, family: str, blocks: int) -> None:
    assert fit.blocks(depth, width, ports, family) == blocks


def test_spram_blocks() -> None:
    assert fit.spram_blocks(16384, 16) == 1
    assert fit.spram_blocks(16385, 15) == 2


def test_small_model_fits_and_large_one_gets_advice() -> None:
    rng = np.random.default_rng(0)
    small = random_model(rng, (40, 12, 4))
    assert fit.fit_advice(small, get_target("ice40-up5k"))["fits"]
    large = random_model(rng, (400, 128, 10), density=0.3, w_bits=8)
    advice = fit.fit_advice(large, get_target("ice40-up5k"))
    assert not advice["fits"] and advice["bram_needed"] > 30
    assert 0 < advice["max_density"] < large.density
    shapes = fit.scaled_density(fit.layer_shapes(large), advice["max_density"] / large.density)
    assert fit.totals(fit.estimate_memories(shapes, "ice40"))["bram"] <= 30
    assert advice["with_spram"]["spram_needed"] >= 1
    text = fit.advice_text(advice)
    assert f"density <= {advice['max_density']}" in text and "with host-loaded SPRAM synapses" in text


def test_estimate_names_every_layer_and_lane() -> None:
    model = random_model(np.random.default_rng(1), (40, 12, 4))
    memories = fit.estimate_memories(fit.layer_shapes(model, 2), "ecp5")
    roles = {(m.name.split(".")[0], m.role) for m in memories}
    assert ("layer0", "potentials") in roles and ("layer1", "accumulators") in roles
    assert len([m for m in memories if m.role == "synapses"]) == 4
    histogram = [m for m in memories if m.role == "rewiring"]  # 6-bit weights: 33 counters
    width = max(layer.nnz for layer in model.layers).bit_length()
    assert [(m.depth, m.width, m.bram) for m in histogram] == [(33, width, fit.blocks(33, width, 1, "ecp5"))]


def test_estimate_is_the_plans_memory_list() -> None:
    # One memory list: the estimate of a plan names exactly the plan's memories, with their sizes.
    model = random_model(np.random.default_rng(2), (300, 64, 10), density=0.4, w_bits=8)
    plan = plan_model(model, HardwareConfig(lanes=4))
    estimate = fit.plan_estimate(plan, ECP5)
    assert [(m.name, m.depth, m.width) for m in estimate] == [
        (m.name, m.depth, m.width) for m in plan.memories
    ]
    assert fit.totals(estimate) == fit.totals(fit.estimate_memories(plan.shapes, "ecp5", plan.config))
    assert sum(m.bits for m in estimate) == plan.memory_bits()["total"]
    assert all(m.bram == 0 for m in estimate if m.depth <= fit.SMALL_DEPTH)


def test_estimate_follows_the_configuration() -> None:
    model = random_model(np.random.default_rng(2), (300, 64, 10), density=0.4, w_bits=8)
    up5k = get_target("ice40-up5k")
    default = fit.totals(fit.plan_estimate(plan_model(model), up5k.family))
    without = fit.totals(fit.plan_estimate(plan_model(model, HardwareConfig(rewiring=False)), up5k.family))
    assert without["bram"] == default["bram"] - fit.blocks(129, (model.synapses).bit_length(), 1, "ice40")
    deep = fit.totals(fit.plan_estimate(plan_model(model, HardwareConfig(lane_fifo_depth=64)), up5k.family))
    assert deep["bram"] > default["bram"]  # 64-word event FIFOs are no longer left to flip-flops
    spram = fit.plan_estimate(plan_model(model, HardwareConfig(synapse_memory="spram")), up5k.family)
    assert {m.role for m in spram if m.spram} == {"synapses"}
    assert (
        fit.fit_advice(plan_model(model, HardwareConfig(rewiring=False)), up5k)["bram_needed"]
        == without["bram"]
    )


def test_families_are_objects() -> None:
    assert get_family("ice40") is ICE40 and get_target("ecp5-25k").family is ECP5
    assert fit.blocks(785, 14, 2, ICE40) == fit.blocks(785, 14, 2, "ice40") == 8
    with pytest.raises(EslError, match="unknown FPGA family 'xc7'"):
        get_family("xc7")
