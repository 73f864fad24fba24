"""Markdown and JSON synthesis reports."""

from __future__ import annotations

import json
from pathlib import Path

from esl_hw.fpga.report import markdown, write_reports


def _report(**changes) -> dict:
    report = {
        "target": "ice40-up5k",
        "device": "iCE40UP5K",
        "model": {
            "sizes": [784, 128, 10],
            "synapses": 10163,
            "density": 0.1,
            "w_bits": [8, 8],
            "timesteps": 8,
        },
        "lanes": 1,
        "freq_mhz": 24.0,
        "fmax_mhz": None,
        "timing_met": None,
        "utilisation": {"bram": {"used": 50, "available": 30, "percent": 166.7}},
        "memories": [
            {
                "name": "core.layer0.front0.syn_mem",
                "role": "synapses",
                "depth": 8883,
                "width": 15,
                "mapped": "bram",
                "cells": {"bram": 35},
                "ok": True,
            },
        ],  # fmt: skip
        "memories_in_block_ram": True,
        "overflow": [{"resource": "bram", "used": 50, "available": 30, "excess": 20}],
        "fit_advice": {
            "bram_needed": 52,
            "spram_needed": 0,
            "fits": False,
            "max_density": 0.046,
            "max_w_bits": None,
            "with_spram": {"bram_needed": 12, "spram_needed": 2, "fits": True},
        },  # fmt: skip
        "cycles_per_inference": 9357.5,
        "cycles_source": "co-simulation",
        "latency_us": None,
        "critical_path": None,
        "shim": {"ffs": 12, "luts_approx": 130},
        "seconds": {"yosys": 30.0},
        "capacity_source": "Lattice iCE40 UltraPlus Family Data Sheet",
    }
    report.update(changes)
    return report


def test_markdown_states_overflow_and_advice() -> None:
    text = markdown(_report())
    assert "| block RAM (EBR) | 50 | 30 | 166.7 |" in text
    assert "**block RAM (EBR)** overflows: 50 needed, 30 available (+20)." in text
    assert "largest density that fits: 0.046" in text
    assert "12 EBR + 2 SPRAM, fits" in text
    assert "Fmax - MHz (not measured)" in text


def test_markdown_states_timing_and_critical_path() -> None:
    path = {"ns": 18.5, "cells": ["core.layer0.pot_mem0", "core.run_cur_reads"]}
    text = markdown(
        _report(fmax_mhz=53.9, timing_met=False, latency_us=173.6, critical_path=path, overflow=[])
    )
    assert "post-route Fmax 53.9 MHz (NOT met)" in text and "= 173.6 µs at Fmax" in text
    assert "Critical path (18.5 ns): `core.layer0.pot_mem0` → `core.run_cur_reads`." in text
    assert "The design fits the device." in text


def test_markdown_says_spram_synapses_must_be_loaded() -> None:
    assert "Synapses in SPRAM" not in markdown(_report())
    assert "the host writes them before the first inference" in markdown(_report(synapse_memory="spram"))


def test_markdown_states_the_chosen_settings_and_those_passed_over() -> None:
    assert "Settings" not in markdown(_report())
    tried = [{"settings": "1 lane, rewiring unit in", "reason": "luts needs 5000, above the margin"}]
    settings = {"auto": True, "chosen": "1 lane, rewiring unit out", "dropped": [], "tried": tried}
    text = markdown(_report(settings=settings))
    assert "Settings (chosen for the target): 1 lane, rewiring unit out." in text
    assert "- passed over: 1 lane, rewiring unit in (luts needs 5000, above the margin)" in text
    planned = markdown(_report(settings={**settings, "auto": False, "tried": []}))
    assert "Settings (as planned): 1 lane, rewiring unit out." in planned and "passed over" not in planned


def test_write_reports(tmp_path: Path) -> None:
    json_path, md_path = write_reports(_report(), tmp_path)
    assert json.loads(json_path.read_text())["device"] == "iCE40UP5K"
    assert md_path.read_text().startswith("# Synthesis report: iCE40UP5K (ice40-up5k)")
