"""The report writer (:mod:`esl_hw.app.reports`): ``<name>.json`` and ``<name>.md`` that agree, with
units from the schema and the provenance of the command."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import yaml

from esl_hw.app.provenance import tool_versions
from esl_hw.app.reports import LIST_LIMIT, add_provenance, report_markdown, result_rows, write_report

ARGS = argparse.Namespace(argv=["sim", "MODEL DIR", "--out", "out"])


def table(markdown: str) -> dict[str, tuple[str, str]]:
    """The rows of the results table: key -> (value, unit)."""
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("| `"):
            key, value, unit = (cell.strip() for cell in line.strip("|").split(" | "))
            rows[key.strip("`")] = (value, unit)
    return rows


def test_json_and_markdown_agree_and_carry_the_provenance(tmp_path: Path) -> None:
    results = {
        "rtl_accuracy": 0.95,
        "rtl_samples": 20,
        "rtl_problems": [],
        "potentials_checked": True,
        "sops_per_layer": [1815.0, 162.4],
        "memory_bits": {"synapses": 4000, "total": 5000},
        "lane_busy_cycles_per_step": [[[1.0]] * 4] * 2,
        "figures": ["cycles_per_step.png"],
    }
    payload = write_report(tmp_path, "sim", "RTL co-simulation (icarus)", results, ARGS)
    written = json.loads((tmp_path / "sim.json").read_text())
    assert written == payload and list(written) == [*results, "provenance"]
    assert written["provenance"] == {"command_line": ["esl-hw", *ARGS.argv], "versions": tool_versions()}
    markdown = (tmp_path / "sim.md").read_text()
    assert markdown.startswith("# RTL co-simulation (icarus)\n")
    assert table(markdown) == {
        "rtl_accuracy": ("0.95", "fraction"),
        "rtl_samples": ("20", "images"),
        "rtl_problems": ("(none)", "-"),
        "potentials_checked": ("yes", "-"),
        "sops_per_layer": ("1815, 162.4", "SOPs"),
        "memory_bits.synapses": ("4000", "bits"),
        "memory_bits.total": ("5000", "bits"),
        "lane_busy_cycles_per_step": ("(2 entries in sim.json)", "cycles"),
    }
    assert "![cycles_per_step](cycles_per_step.png)" in markdown
    assert f"- command line: `{shlex.join(['esl-hw', *ARGS.argv])}`" in markdown
    assert f"esl-hw {tool_versions()['esl-hw']}" in markdown and "seed" not in markdown


def test_seed_and_config_of_a_training_command(tmp_path: Path) -> None:
    config = {"seed": 7, "model": {"hidden": [24], "timesteps": 4}}
    results = {"epochs": 2, "layer_density": [0.2] * (LIST_LIMIT + 1)}
    payload = write_report(tmp_path, "train", "Training run", results, None, seed=7, config=config)
    assert payload["seed"] == 7 and payload["config"] == config
    assert payload["provenance"]["command_line"] == ["esl-hw"]  # no command line: a library call
    markdown = (tmp_path / "train.md").read_text()
    assert "- seed: 7" in markdown
    assert yaml.safe_load(markdown.split("```yaml\n")[1].split("```")[0]) == config
    assert table(markdown) == {
        "epochs": ("2", "epochs"),
        "layer_density": (f"({LIST_LIMIT + 1} entries in train.json)", "fraction"),
    }


def test_add_provenance_rewrites_a_stages_own_report(tmp_path: Path) -> None:
    assert add_provenance(tmp_path, "bitstream", "Bitstream", ARGS) is None  # the stage wrote none
    board = {"board": "icebreaker", "clock_mhz": 12.0, "provenance": "stale"}
    (tmp_path / "board.json").write_text(json.dumps(board))
    payload = add_provenance(tmp_path, "bitstream", "Bitstream for icebreaker", ARGS, body="Built.")
    assert json.loads((tmp_path / "board.json").read_text()) == payload
    assert payload["board"] == "icebreaker" and payload["provenance"]["command_line"][1] == "sim"
    markdown = (tmp_path / "board.md").read_text()
    assert markdown.startswith("# Bitstream for icebreaker\n\nBuilt.\n")
    assert table(markdown)["clock_mhz"] == ("12", "MHz")


def test_rows_flatten_one_level_and_escape_table_cells() -> None:
    rows = result_rows("run", {"details": ["a | b"], "outputs": [[1, 2]], "port": None, "provenance": {}})
    assert rows == [
        ("details", "a \\| b", "-"),
        ("outputs", "(1 entries in run.json)", "-"),
        ("port", "null", "-"),
    ]
    text = report_markdown("eval", "Eval", {"int_accuracy": 0.5, "provenance": {"command_line": ["esl-hw"],
                                                                               "versions": {}}})  # fmt: skip
    assert "| `int_accuracy` | 0.5 | fraction |" in text and "## Figures" not in text
