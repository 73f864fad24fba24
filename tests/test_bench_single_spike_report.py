"""bench/single_spike_report.py: Fig. 2 summary over seeds, Table 1 rows beside the paper's, and the
Markdown saying how many of the planned runs the outputs are drawn from."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parent.parent / "bench" / "single_spike_report.py"
_SPEC = importlib.util.spec_from_file_location("bench_single_spike_report", _PATH)
report = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = report
_SPEC.loader.exec_module(report)


def _row(role: str, seed: int, accuracy: float, epsilon: int | None = None, hidden: int = 800) -> dict:
    sparse = 1584 * epsilon if epsilon else 784 * hidden
    connections = sparse + 10 * hidden
    return {
        "name": f"{role}{epsilon or ''}_s{seed}",
        "role": role,
        "seed": seed,
        "epsilon": epsilon,
        "test_accuracy": accuracy,
        "test_images": 10_000,
        "layer_sizes": [784, hidden, 10],
        "layer_connections": [sparse, 10 * hidden],
        "layer_density": [sparse / (784 * hidden), 1.0],
        "connections": connections,
        "epochs": 7,
        "train_seconds": 450.0,
        "macs": connections,
        "flops": 2 * connections,
        "ann_energy_uj": connections * 4.6e-6,
        "sops_per_image": connections - seed,
        "sops_before_firing_per_image": connections / 2,
        "snn_energy_uj": (connections - seed) * 0.9e-6,
        "spikes_per_image": [784.0, hidden - seed],
    }


ROWS = [
    _row("sweep", 0, 0.96, 60),
    _row("sweep", 1, 0.97, 60),
    _row("sweep", 0, 0.90, 10),
    _row("dense", 0, 0.968),
    _row("equal", 0, 0.93, hidden=130),
]


def _results(rows: list[dict], missing: list[str]) -> dict:
    return {
        "command": "python bench/single_spike_paper.py --epochs 7",
        "data": "../shared/data/mnist",
        "epochs": 7,
        "planned": [row["name"] for row in rows] + missing,
        "missing": missing,
        "machine": {"cpu": "Some CPU", "cores": 2, "python": "3.11", "torch": "2.13"},
        "load_average": {"start": [1.0, 1.1, 1.2], "end": [2.0, 2.1, 2.2]},
        "runs": rows,
    }


def test_sweep_summary_per_epsilon_over_seeds() -> None:
    summary = report.sweep_summary(ROWS)
    assert [row["epsilon"] for row in summary] == [10, 60]
    sixty = summary[1]
    assert sixty["accuracy"] == {"0": 0.96, "1": 0.97}
    assert sixty["mean"] == pytest.approx(0.965) and sixty["std"] == pytest.approx(0.005)
    assert (sixty["sparse_connections"], sixty["connections"], sixty["n"]) == (95_040, 103_040, 2)
    assert sixty["sparse_density"] == pytest.approx(95_040 / 627_200)
    assert summary[0]["train_minutes"] == [7.5]


def test_table1_rows_average_seeds_and_carry_the_papers_numbers() -> None:
    table = {row["role"]: row for row in report.table1(ROWS)}
    assert list(table) == ["dense", "equal", "esl"]
    esl = table["esl"]
    assert esl["seeds"] == [0, 1] and esl["accuracy"]["mean"] == pytest.approx(0.965)
    assert esl["sops_per_image"] == pytest.approx(103_040 - 0.5)
    assert esl["snn_energy_before_firing_uj"] == pytest.approx(103_040 / 2 * 0.9e-6)
    assert (esl["paper_connections"], esl["paper_accuracy"]) == (103_000, 0.9658)
    assert table["equal"]["layer_sizes"] == [784, 130, 10] and table["equal"]["paper_accuracy"] == 0.92
    assert (table["dense"]["connections"], table["dense"]["paper_accuracy"]) == (635_200, 0.967)
    assert [row["role"] for row in report.table1(ROWS[:3])] == ["esl"]  # baselines not finished


def test_outputs_say_how_many_runs_they_are_drawn_from(tmp_path: Path) -> None:
    report.write_report(_results(ROWS, ["sweep20_s0", "sweep10_s1"]), tmp_path)
    fig2 = (tmp_path / "fig2_epsilon.md").read_text()
    assert "Runs complete: **5 of 7 planned**; not finished: sweep20_s0, sweep10_s1." in fig2
    assert "**Epochs per run: 7**" in fig2
    assert "| 10 | 0.0253 | 15,840 | 23,840 | 90.00% | – | 90.00% | 7.5 |" in fig2
    assert "| 60 | 0.1515 | 95,040 | 103,040 | 96.00% | 97.00% | 96.50 ± 0.50% (n=2) | 7.5 / 7.5 |" in fig2
    assert "Some CPU, 2 cores" in fig2 and "2.0, 2.1, 2.2 at its end" in fig2
    table = (tmp_path / "table1.md").read_text()
    assert (
        "| ESL ε = 60 (seed 0, 1) | 784-800-10 | 103,040 | 96.50 ± 0.50% (n=2) | 103,000 | 96.58% " in table
    )
    assert "| 96.70% | +0.10 pp | 635,200 |" in table  # the dense row: 96.8% against the paper's 96.7%
    assert "ESL ε = 60 799.5 of 800" in table and "dense, equal parameters 130.0 of 130" in table
    assert "Horowitz" in table and "E_MAC = 4.6 pJ" in table and "E_AC = 0.9 pJ" in table
    data = json.loads((tmp_path / "table1.json").read_text())
    assert data["energy"]["e_mac_pj"] == pytest.approx(4.6) and len(data["table"]) == 3
    sweep = json.loads((tmp_path / "fig2_epsilon.json").read_text())
    assert sweep["complete"] == 3 and [row["epsilon"] for row in sweep["epsilon"]] == [10, 60]
    assert (tmp_path / "fig2_epsilon.png").stat().st_size > 0


def test_nothing_finished_still_writes_the_tables(tmp_path: Path) -> None:
    report.write_report(_results([], ["eps60_e7"]), tmp_path)
    assert (
        "Runs complete: **0 of 1 planned**; not finished: eps60_e7." in (tmp_path / "table1.md").read_text()
    )
    assert not (tmp_path / "fig2_epsilon.png").exists()
