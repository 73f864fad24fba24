"""Reading the tools' outputs: memories classified by the plan, netlist names, utilisation, overflow."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_model

from esl_hw.fpga import netlist
from esl_hw.rtl_gen.hardware import HardwareConfig
from esl_hw.rtl_gen.plan import plan_model


@pytest.fixture(scope="module")
def tiny_model():
    return random_model(np.random.default_rng(7), (64, 40, 4), density=0.3)


def test_classify_memories(tiny_model) -> None:
    # Role and whether a memory must be block RAM come from the plan's memory list, by name.
    plan = plan_model(tiny_model, HardwareConfig(lanes=1))
    memories = [
        {"name": "core.layer0.front0.syn_mem", "depth": 900, "width": 12},
        {"name": "core.layer0.pot_mem0", "depth": 64, "width": 10},
        {"name": "core.fifo0.storage", "depth": 15, "width": 8},
        {"name": "core.layer1.acc_mem0", "depth": 4, "width": 12},
        {"name": "$flatten\\core.\\rewire.$auto$proc_rom.cc:155:do_switch$7640", "depth": 32, "width": 1},
    ]
    cells = {
        "core.layer0.front0.syn_mem.0.0": "DP16KD",
        "core.fifo0.storage.0.0": "TRELLIS_DPR16X4",
        "core.layer0.pot_mem0[3]": "TRELLIS_FF",
    }
    result = {
        m["name"]: (m["role"], m["mapped"], m["required"], m["ok"])
        for m in netlist.classify_memories(memories, cells, "ecp5", plan)
    }
    assert list(result.values()) == [
        ("synapses", "bram", True, True),
        ("potentials", "logic", True, False),
        ("fifos", "lutram", False, True),
        ("accumulators", "logic", False, True),
        ("other", "logic", False, True),
    ]


def test_netlist_names_are_the_plans_memories(tiny_model) -> None:
    plan = plan_model(tiny_model, HardwareConfig(lanes=2, synapse_memory="spram"))
    names = netlist.netlist_memories(plan)
    assert "core.layer0.front1.ptr_mem" in names and "core.layer0.cur_mem1_odd" in names
    assert "core.layer0.queue0.storage" in names and "core.rewire.hist" in names
    required = sorted({memory.role for memory in names.values() if memory.placement == "block"})
    assert required == ["currents", "potentials", "row_pointers", "synapses"]


def test_overflows_and_utilisation() -> None:
    from esl_hw.fpga.targets import get_target

    table = netlist.utilisation(
        {"luts": 6000, "ffs": 10, "bram": 31, "spram": 0, "dsp": 0}, get_target("ice40-up5k")
    )
    assert table["luts"] == {"used": 6000, "available": 5280, "percent": 113.6}
    assert [row["resource"] for row in netlist.overflows(table)] == ["luts", "bram"]
    assert netlist.overflows(table)[1]["excess"] == 1
