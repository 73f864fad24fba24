"""bench/single_spike_paper.py: run plan (ε → density and connections, the equal-parameter width),
skip and resume of runs, spike counts on a hand-checked network, and a tiny end-to-end sweep."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

_PATH = Path(__file__).resolve().parent.parent / "bench" / "single_spike_paper.py"
_SPEC = importlib.util.spec_from_file_location("bench_single_spike_paper", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = bench  # dataclasses look their module up
_SPEC.loader.exec_module(bench)

SIZES = [784, 800, 10]


def _args(**changes) -> argparse.Namespace:
    values = {
        "data": None,
        "train_samples": None,
        "epochs": 5,
        "device": "cpu",
        "seeds": [0],
        "epsilons": list(bench.EPSILONS),
        "skip_dense": False,
    }
    return argparse.Namespace(**(values | changes))


@pytest.mark.parametrize("epsilon", bench.EPSILONS)
def test_epsilon_gives_the_er_density_of_the_input_layer_only(epsilon: int) -> None:
    densities = bench.sweep_densities(epsilon, SIZES)
    assert densities[0] == pytest.approx(epsilon * (784 + 800) / (784 * 800))
    assert densities[1] == 1.0  # dense even where ε (800 + 10) / 8000 < 1
    assert bench.planned_connections(densities, SIZES) == [1584 * epsilon, 8000]


def test_epsilon_60_is_the_papers_103k_network() -> None:
    connections = bench.planned_connections(bench.sweep_densities(60, SIZES), SIZES)
    assert sum(connections) == 103_040
    assert bench.equal_parameter_hidden(103_040, 784, 10) == 130  # 130 · 794 = 103,220 weights
    assert abs(130 * 794 - 103_040) < 794 / 2


def test_plan_orders_table_runs_first_and_configures_each_role() -> None:
    runs = bench.plan_runs(_args(seeds=[0, 1], data="/mnist"))
    names = [run.name for run in runs]
    assert names[:5] == ["eps60_e5", "dense_e5", "equal_h130_e5", "eps10_e5", "eps90_e5"]
    assert len(runs) == len(set(names)) == 2 * (9 + 2)
    assert all(run.seed == 0 for run in runs[:11]) and names[11] == "eps60_e5_s1"
    by_name = {run.name: run for run in runs}
    for run in runs:
        assert run.config.seed == run.seed and run.config.train.epochs == 5
        assert run.config.train.threads == 1 and run.config.data.path == "/mnist"
        assert run.config.sparsity.dense_layers == (1,)
        assert run.config.model.kind == "single_spike"
    sweep = by_name["eps30_e5_s1"].config
    assert (sweep.sparsity.epsilon, sweep.sparsity.density, sweep.model.hidden) == (30, None, (800,))
    dense = by_name["dense_e5"].config
    assert (dense.sparsity.epsilon, dense.sparsity.density, dense.model.hidden) == (None, 1.0, (800,))
    equal = by_name["equal_h130_e5"].config
    assert (equal.sparsity.density, equal.model.hidden) == (1.0, (130,))


def test_equal_parameter_width_follows_the_base_network() -> None:
    base = bench.load_config(bench.BASE_CONFIG)
    small = bench.dataclasses.replace(base, model=bench.dataclasses.replace(base.model, hidden=(100,)))
    runs = bench.plan_runs(_args(epsilons=[60]), base=small)
    # ε = 60 on 784-100-10: min(1, 60 · 884 / 78,400) = 0.6765 of 78,400, plus 1,000 dense
    expected = round((round(60 * 884 / 78_400 * 78_400) + 1_000) / 794)
    assert [run.name for run in runs] == ["eps60_e5", "dense_e5", f"equal_h{expected}_e5"]
    assert bench.plan_runs(_args(epsilons=[20], skip_dense=True))[0].name == "eps20_e5"
    assert len(bench.plan_runs(_args(epsilons=[20, 60], skip_dense=True))) == 2


def test_spread_order_spans_the_range_first() -> None:
    assert bench.spread_order(list(bench.EPSILONS)) == [60, 10, 90, 30, 20, 40, 50, 70, 80]
    assert bench.spread_order([40, 20, 30]) == [20, 40, 30]  # no ε = 60: the smallest leads
    assert bench.spread_order([60, 10]) == [60, 10] and bench.spread_order([]) == []


def test_run_state_tells_finished_interrupted_and_new(tmp_path: Path) -> None:
    folder = tmp_path / "eps10_e5"
    assert bench.run_state(folder) == "new"
    work = tmp_path / ".eps10_e5.partial"
    work.mkdir()
    assert bench.run_state(folder) == "new"  # no resume state yet: trained from the start
    (work / "state.pt").write_bytes(b"")
    assert bench.run_state(folder) == "interrupted"
    folder.mkdir()
    (folder / "checkpoint.pt").write_bytes(b"")
    assert bench.run_state(folder) == "finished"


def test_interrupted_run_is_resumed_and_finished_one_skipped(tmp_path: Path, monkeypatch) -> None:
    calls = []
    trainer = sys.modules["train_runs"]
    monkeypatch.setattr(trainer, "train", lambda config, out, **options: calls.append((out, options)))
    work = tmp_path / ".run.partial"
    work.mkdir()
    (work / "state.pt").write_bytes(b"")
    bench._run(None, tmp_path / "run")
    assert calls == [(tmp_path / "run", {"progress": False, "resume": True, "force": True})]
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "checkpoint.pt").write_bytes(b"")
    bench._run(None, tmp_path / "done")
    assert len(calls) == 1


def _tiny_net(first: list[float]) -> bench.SingleSpikeNet:
    """2-1-1 network, 2 slots at z = 1 and e; ``first`` the two input weights, output weight 2."""
    net = bench.SingleSpikeNet([1], n_in=2, n_out=1, levels=2, t_max=1.0)
    with torch.no_grad():
        net.weights[0].copy_(torch.tensor([[first[0]], [first[1]]]))
        net.weights[1].fill_(2.0)
    return net


def test_spike_operations_by_hand() -> None:
    images = np.array([[255, 0], [0, 0]], dtype=np.uint8)  # slots (0, 1) and (1, 1)
    counts = bench.spike_operations(_tiny_net([1.5, 1.5]), images)
    # image 1: after slot 0 Σw = 1.5 gives z = 3 > e (too late), with slot 1 z = (1.5 + 1.5e)/2 > e;
    # image 2: both at e, z = 1.5e. Both inputs arrive before the spike, the output fires at 2 z.
    assert counts == {"spikes": [4.0, 2.0], "sops": [4.0, 2.0], "sops_before_firing": [4.0, 2.0]}
    net = _tiny_net([1.5, 1.5])
    net.mask_0[1, 0] = False  # input 1 cut: z = 3 on image 1, 3e on image 2
    counts = bench.spike_operations(net, images)
    assert counts == {"spikes": [4.0, 2.0], "sops": [2.0, 2.0], "sops_before_firing": [2.0, 2.0]}
    # weights 3 and 1.5: on image 1 the hidden neuron fires at z = 3 / 2 < e, before input 1 arrives
    counts = bench.spike_operations(_tiny_net([3.0, 1.5]), images)
    assert counts == {"spikes": [4.0, 2.0], "sops": [4.0, 2.0], "sops_before_firing": [3.0, 2.0]}
    silent = bench.spike_operations(_tiny_net([0.4, 0.4]), images)
    # a silent neuron takes every input; the output then gets none
    assert silent == {"spikes": [4.0, 0.0], "sops": [4.0, 0.0], "sops_before_firing": [4.0, 0.0]}


def test_spike_times_agree_with_the_networks_forward() -> None:
    net = _tiny_net([1.5, 1.5])
    images = torch.tensor([[255, 0]], dtype=torch.uint8)
    z_hidden = (1.5 + 1.5 * math.e) / 2
    assert float(net(images).detach()) == pytest.approx(2 * z_hidden)


def test_tiny_sweep_trains_skips_and_reports(tmp_path: Path, monkeypatch) -> None:
    """One epoch on 200 embedded training images at ε = 20 and 60 with the baselines, scored on 100
    test images; a second invocation trains nothing and reuses the cached scores."""
    argv = ["single_spike_paper.py", "--epochs", "1", "--epsilons", "20", "60", "--train-samples", "200"]
    argv += ["--test-samples", "100", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    runs = sorted(path.name for path in (tmp_path / "runs").iterdir())
    assert runs == ["dense_e1", "eps20_e1", "eps60_e1", "equal_h130_e1"]
    table = json.loads((tmp_path / "out" / "table1.json").read_text())
    rows = {row["role"]: row for row in table["table"]}
    assert list(rows) == ["dense", "equal", "esl"]
    assert [rows[role]["connections"] for role in rows] == [635_200, 130 * 794, 103_040]
    for row in rows.values():
        assert row["macs"] == row["connections"] and row["flops"] == 2 * row["connections"]
        assert row["ann_energy_uj"] == pytest.approx(row["connections"] * 4.6e-6)
        assert row["snn_energy_uj"] == pytest.approx(row["sops_per_image"] * 0.9e-6)
        assert row["sops_before_firing_per_image"] <= row["sops_per_image"]
        assert row["epochs"] == [1] and row["seeds"] == [0]
    score = json.loads((tmp_path / "runs" / "eps60_e1" / "score.json").read_text())
    assert score["test_images"] == 100 and score["layer_connections"] == [95_040, 8_000]
    hidden_spikes = score["spikes_per_image"][1]
    assert score["sops_per_image"] == pytest.approx(95_040 + 10 * hidden_spikes)
    fig2 = json.loads((tmp_path / "out" / "fig2_epsilon.json").read_text())
    assert [row["sparse_connections"] for row in fig2["epsilon"]] == [31_680, 95_040]
    assert fig2["complete"] == 2 and fig2["missing"] == []
    assert (tmp_path / "out" / "fig2_epsilon.png").stat().st_size > 0
    assert "Runs complete: **4 of 4 planned**" in (tmp_path / "out" / "table1.md").read_text()
    stamps = {path: path.stat().st_mtime_ns for path in (tmp_path / "runs").glob("*/checkpoint.pt")}
    monkeypatch.setattr(sys.modules["train_runs"], "train", lambda *a, **k: pytest.fail("retrained"))
    bench.main()
    assert {path: path.stat().st_mtime_ns for path in stamps} == stamps


def test_command_leaves_out_the_stopping_options() -> None:
    argv = ["--data", "../mnist", "--stop-after", "60", "--epochs", "7", "--report-only", "--seeds", "0", "1"]
    assert bench.command(argv) == "python bench/single_spike_paper.py --data ../mnist --epochs 7 --seeds 0 1"
