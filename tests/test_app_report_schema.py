"""The schema of the reports (:mod:`esl_hw.app.report_schema`): docs/reports.md carries it, and every
key a command writes is in it.

The commands whose reports need a simulator, a board or a training run check their written files
against the schema in their own tests (``undocumented(...) == []`` in tests/test_app_stages.py,
test_app_demo.py, test_app_fpga.py); here the reports that are cheap to make, and the key sets of
the co-simulation and synthesis reports, which are known without running a tool.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from conftest import random_model
from test_sim_report import fake_result

from esl_hw.app.cli import main
from esl_hw.app.report_schema import END, REPORTS, START, schema_markdown, undocumented, unit
from esl_hw.artifact_io import save_model
from esl_hw.fpga.synth import SynthReport
from esl_hw.sim.report import sim_report

ROOT = Path(__file__).resolve().parent.parent
#: keys :func:`esl_hw.app.stages.cosimulate` adds to :func:`esl_hw.sim.report.sim_report`'s
COSIMULATE_KEYS = {"potentials_checked", "classes", "confusion_rtl", "confusion_reference", "neurobench"}


def test_docs_carry_exactly_the_schema() -> None:
    text = (ROOT / "docs" / "reports.md").read_text()
    assert text.count(START) == 1 and text.count(END) == 1
    written = text[text.index(START) : text.index(END) + len(END)] + "\n"
    assert written == schema_markdown(), "regenerate the tables of docs/reports.md with schema_markdown()"


def test_every_report_has_its_file_units_and_provenance() -> None:
    assert set(REPORTS) == {
        "train", "export", "eval", "rtl", "sim", "compare", "synth", "bitstream", "run", "demo",
        "import-nir",
    }  # fmt: skip
    files = [schema.file for schema in REPORTS.values()]
    assert len(set(files)) == len(files)
    for command, schema in REPORTS.items():
        assert schema.command == command and "provenance" in schema.keys
        assert all(unit_ and meaning for unit_, meaning in schema.keys.values()), command
    assert unit("sim", "energy_per_inference_j") == "J" and unit("sim", "absent") == "?"
    assert undocumented("eval", {"int_accuracy": 1.0, "accuracy_percent": 100}) == ["accuracy_percent"]


def test_the_cosimulation_keys_are_exactly_the_documented_ones() -> None:
    rng = np.random.default_rng(0)
    model = random_model(rng, [12, 8, 4], timesteps=3)
    images = rng.integers(0, 256, (3, 12), dtype=np.uint8)
    result = fake_result(model, images, lanes=2)
    keys = set(sim_report(model, result, images, np.asarray(result.predictions))) | COSIMULATE_KEYS
    sim = set(REPORTS["sim"].keys) - {"figures", "provenance"}
    assert keys == sim
    assert sim <= set(REPORTS["compare"].keys) and sim <= set(REPORTS["demo"].keys)


def test_the_synthesis_report_keys_are_exactly_the_documented_ones() -> None:
    fields = {field.name for field in dataclasses.fields(SynthReport)}
    assert fields == set(REPORTS["synth"].keys) - {"provenance"}


def test_eval_and_rtl_write_only_documented_keys(tmp_path: Path) -> None:
    model = save_model(random_model(np.random.default_rng(2), (784, 6, 10), timesteps=2), tmp_path / "model")
    assert main(["eval", str(model), "--out", str(tmp_path / "eval")]) == 0
    assert main(["rtl", str(model), "--out", str(tmp_path / "rtl"), "--lanes", "2"]) == 0
    for command in ("eval", "rtl"):
        folder = tmp_path / command
        report = json.loads((folder / f"{command}.json").read_text())
        assert undocumented(command, report) == [] and "provenance" in report
        assert "## Provenance" in (folder / f"{command}.md").read_text()
    rtl = json.loads((tmp_path / "rtl" / "rtl.json").read_text())
    assert rtl["lanes"] == 2 and rtl["verilog"] == "snn_core.v"
    assert rtl["memory_bits"] == json.loads((tmp_path / "rtl" / "memory_bits.json").read_text())
