"""bench/fig3_fashion_report.py: the tables and figures of both figures from fake runs, complete or not."""

from __future__ import annotations

import json
from pathlib import Path

from test_bench_fig3_fashion import _defaults, _results, _row, bench, report


def test_tables_and_figures_from_partial_runs_say_what_they_are(tmp_path: Path) -> None:
    runs = bench.plan(_defaults())
    by_name = {run.name: run for run in runs}
    names = (
        "vggsnn_d0.1_none",
        "vggsnn_d1.0_none",
        "vggsnn_d0.1_momentum",
        "mlp_d0.1_none",
        "mlp_d0.1_magnitude",
    )
    rows = [_row(by_name[name], 0.80 + index / 100) for index, name in enumerate(names)]
    report.write_results(_results(runs, rows), tmp_path)
    fig3a = (tmp_path / "fig3a_fashion_vggsnn.md").read_text()
    assert "Fashion-MNIST stand-in, not the paper's CIFAR-10/100 / DVS-CIFAR10" in fig3a
    assert "VGGSNN width 0.125 (channels 8-16-32-32-64-64-64-64), T = 4, 10,000 Fashion-MNIST" in fig3a
    assert "2 of 5 runs complete" in fig3a and "Float accuracy (conv nets have no integer export)" in fig3a
    assert "| 1.0 | 5,832 | 81.00% | 82.00% | 2 | 123 |" in fig3a  # densest first
    assert fig3a.index("| 1.0 |") < fig3a.index("| 0.1 | 583 | 80.00% |")
    assert "Not complete (left out above): vggsnn_d0.01_none, vggsnn_d0.3_none, vggsnn_d0.05_none." in fig3a
    fig3b = (tmp_path / "fig3b_redistribution.md").read_text()
    assert "4 of 6 runs complete" in fig3b
    assert "| layer0.weight | 627,200 | 0.1000 | 0.1000 | 0.0900 |" in fig3b  # MLP: none, magnitude
    assert "| layer1.weight | 1,152 | 0.3000 | 0.3000 | 0.4500 |" in fig3b.split("## VGGSNN")[1]
    assert "`magnitude` 83.90% integer, 84.00% float (2 updates)" in fig3b
    assert "Not complete (left out above): mlp_d0.1_momentum, vggsnn_d0.1_magnitude." in fig3b
    assert "vggsnn_d0.01" not in fig3b
    for stem in ("fig3a_fashion_vggsnn", "fig3b_redistribution"):
        assert (tmp_path / f"{stem}.png").stat().st_size > 10_000
    written = json.loads((tmp_path / "fig3a_fashion_vggsnn.json").read_text())
    assert sorted(row["name"] for row in written["runs"]) == ["vggsnn_d0.1_none", "vggsnn_d1.0_none"]
    report.write_results(_results(runs, []), tmp_path / "empty")  # nothing complete: tables, no figures
    assert "0 of 5 runs complete" in (tmp_path / "empty" / "fig3a_fashion_vggsnn.md").read_text()
    assert not list((tmp_path / "empty").glob("*.png"))
