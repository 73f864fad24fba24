"""``esl-hw explore`` end to end on a local Ray cluster of 2 workers (:mod:`esl_hw.app.explore`): the
tiny shipped space explored, killed after its first point, resumed without computing a finished
point or stage again, explored a second time from the cache alone; and its one-line refusals."""

from __future__ import annotations

import collections
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_app_cli import fails_cleanly

from esl_hw.app.cli import main
from esl_hw.app.explore_cache import StageCache
from esl_hw.errors import EslError

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "configs" / "explore_tiny.yaml"
needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog not installed")


def explore(*arguments: object) -> list[str]:
    return ["explore", *(str(argument) for argument in arguments)]


def read_front(folder: Path) -> dict:
    return json.loads((folder / "front.json").read_text())


def kill_after_first_point(out: Path, cache: Path, log: Path) -> int:
    """Run the tiny exploration in a child process, SIGTERM it once a point is recorded; return its
    exit status."""
    command = [sys.executable, "-m", "esl_hw", *explore(TINY, "--out", out, "--workers", 2, "--cache", cache)]
    with open(log, "w") as stderr:
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            deadline = time.monotonic() + 300
            points = out / "points.jsonl"
            while child.poll() is None and time.monotonic() < deadline:
                if points.is_file() and points.read_text().count("\n") >= 1:
                    break
                time.sleep(0.2)
            child.send_signal(signal.SIGTERM)
            return child.wait(timeout=120)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=30)


@needs_icarus
def test_explore_killed_resumed_and_run_again_from_the_cache(tmp_path: Path, capsys) -> None:
    pytest.importorskip("ray")
    out, cache = tmp_path / "front", tmp_path / "cache"
    status = kill_after_first_point(out, cache, tmp_path / "first.log")
    first = [json.loads(line) for line in (out / "points.jsonl").read_text().splitlines()]
    assert first, (tmp_path / "first.log").read_text()[-2000:]
    if status != 0:  # killed while points were left (the usual case)
        assert status == 130 and read_front(out)["sessions"][0]["interrupted"] is True

    assert main(explore(TINY, "--out", out, "--workers", 2, "--cache", cache, "--resume")) == 0
    front = read_front(out)
    points = front["points"]
    assert [p["number"] for p in points] == [1, 2, 3, 4] and {p["status"] for p in points} == {"ok"}
    assert (out / "points.jsonl").read_text().count("\n") == 4, "no point recorded twice"
    first_session = front["sessions"][0]
    resumed = front["sessions"][1]
    assert resumed["points_recorded_before"] == len(first) and resumed["interrupted"] is False
    for record in first:
        assert points[record["number"] - 1] == {**record, "pareto": points[record["number"] - 1]["pareto"]}
        assert record["session"] == 1
    # A stage the killed driver had started may finish in its worker and land in the cache: the
    # resumed session reuses it. Either way each stage is computed at most once.
    assert StageCache(cache).entries() == {"train": 2, "cosim": 4, "synth": 0}
    assert first_session["computed"]["train"] + resumed["computed"]["train"] <= 2, "two configs"
    assert first_session["computed"]["cosim"] + resumed["computed"]["cosim"] <= 4
    assert resumed["computed"]["cosim"] <= 4 - len(first), "recorded points are not simulated again"
    assert {p["keys"]["train"] for p in points[:2]} != {p["keys"]["train"] for p in points[2:]}
    assert points[0]["keys"]["train"] == points[1]["keys"]["train"], "one training for both lane counts"
    assert points[0]["metrics"]["cycles"] > points[1]["metrics"]["cycles"], "2 lanes take fewer cycles"
    assert front["front"] and all(points[n - 1]["pareto"] for n in front["front"])
    text = (out / "front.md").read_text()
    assert text.startswith("# Exploration tiny: 4 points") and "## Pareto front" in text
    assert (out / "front.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()

    again = tmp_path / "again"
    assert main(explore(TINY, "--out", again, "--workers", 2, "--cache", cache)) == 0
    second = read_front(again)
    session = second["sessions"][0]
    assert session["computed"] == {"train": 0, "cosim": 0, "synth": 0}, "nothing trained or simulated again"
    assert session["reused"] == {"train": 2, "cosim": 4, "synth": 0}
    assert [p["metrics"] for p in second["points"]] == [p["metrics"] for p in points]
    assert re.search(r"stages computed \(train/cosim/synth\) +0/0/0\n", capsys.readouterr().out)


def test_refusals_are_one_line_before_any_work(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    fails_cleanly(capsys, explore(TINY, "--out", tmp_path / "taken"), "exists; pass --resume")
    fails_cleanly(capsys, explore(TINY, "--out", tmp_path / "absent", "--resume"), "no exploration to resume")
    fails_cleanly(
        capsys,
        explore(TINY, "--out", tmp_path / "x", "--workers", 2, "--address", "auto"),
        "--workers sizes a local",
    )
    (tmp_path / "bad.yaml").write_text("axes:\n  model.hiden: [[8]]\n")
    fails_cleanly(
        capsys, explore(tmp_path / "bad.yaml", "--out", tmp_path / "x"), "unknown key 'model.hiden'"
    )
    fails_cleanly(capsys, explore(TINY, "--out", tmp_path / "x", "--data", tmp_path), "lacks train-images")
    fails_cleanly(
        capsys, explore(TINY, "--out", tmp_path / "x", "--address", "127.0.0.1:9"), "no Ray cluster"
    )
    monkeypatch.setitem(sys.modules, "ray", None)
    fails_cleanly(capsys, explore(TINY, "--out", tmp_path / "x"), "pip install 'esl-hw[explore]'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "taken"], "nothing written"
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"


SYNTH_SPACE = """
name: synth
published: mnist
fixed:
  model.hidden: [8]
  model.timesteps: 2
  train.epochs: 1
  data.train_samples: 600
  hardware.samples: 2
  hardware.simulator: icarus
  hardware.target: ice40-up5k
  hardware.rewiring: false
  hardware.lane_fifo_depth: 4
axes:
  sparsity.density: [0.05]
budgets:
  - name: within 1 ms on the UP5K
    target: ice40-up5k
    max: {latency_us: 1000}
"""


@pytest.mark.slow
@needs_icarus
def test_a_point_with_a_target_is_synthesised_once(tmp_path: Path, capsys) -> None:
    pytest.importorskip("ray")
    space, cache = tmp_path / "synth.yaml", tmp_path / "cache"
    space.write_text(SYNTH_SPACE)
    assert main(explore(space, "--out", tmp_path / "one", "--workers", 2, "--cache", cache)) == 0
    first = read_front(tmp_path / "one")
    (point,) = first["points"]
    assert point["status"] == "ok" and point["metrics"]["luts"] > 0 and point["metrics"]["fmax_mhz"] > 0
    assert point["metrics"]["latency_us"] == pytest.approx(
        point["metrics"]["cycles"] / point["metrics"]["fmax_mhz"], rel=1e-3
    )
    assert first["sessions"][0]["computed"]["synth"] == 1 and first["objectives"] == [
        "accuracy",
        "latency_us",
    ]
    assert main(explore(space, "--out", tmp_path / "two", "--workers", 2, "--cache", cache)) == 0
    second = read_front(tmp_path / "two")
    assert second["sessions"][0]["computed"] == {"train": 0, "cosim": 0, "synth": 0}
    assert second["points"][0]["metrics"] == point["metrics"]


class FakeRef:
    def __init__(self, outcome: dict | None = None, error: Exception | None = None, hang: bool = False):
        self.outcome, self.error, self.hang = outcome, error, hang


class FakeRay:
    """Ray's API as the explorer uses it: each stage runs (:func:`fake_stage`) when it is submitted;
    one that hangs never finishes."""

    def __init__(self) -> None:
        self.submitted, self.cancelled, self.options = [], [], []

    def remote(self, function):
        return FakeRemote(self)

    def wait(self, refs, num_returns=1, timeout=None):
        done = [ref for ref in refs if not ref.hang][:num_returns]
        if not done:
            time.sleep(timeout)
        return done, [ref for ref in refs if ref not in done]

    def get(self, ref, timeout=None):
        if ref.error is not None:
            raise ref.error
        return ref.outcome

    def cancel(self, ref, force=False):
        self.cancelled.append(ref)


def fake_stage(name: str, request: dict) -> FakeRef:
    """Train saves a small model, cosim fails on 4 lanes, synth for the UP5K hangs."""
    import numpy as np
    from conftest import random_model

    from esl_hw.artifact_io import save_model

    cache, inputs = StageCache(request["cache"]), request["inputs"]
    if name == "synth":
        return FakeRef(hang=True)
    if name == "cosim" and inputs["lanes"] == 4:
        return FakeRef(error=EslError("boom"))
    with cache.claim(name, request["key"], 5) as claim:
        if name == "train":
            density = inputs["config"]["sparsity"]["density"]
            model = random_model(np.random.default_rng(1), (784, 16, 10), timesteps=2, density=density)
            save_model(model, claim.work / "model")
            result = dict(accuracy=density, synapses=model.synapses, val_accuracy=0.5, density=density)
            result.update(sizes=[784, 16, 10], timesteps=2, w_bits=[6, 6], test_images=10, dataset="x")
        else:
            result = dict(cycles_per_inference=1000.0 / inputs["lanes"], memory_bits=100, rtl_samples=2)
            result.update(energy_per_inference_j=1e-9, rtl_mismatches=0, rtl_problems=[], rtl_accuracy=1.0)
            result.update(cycle_floor=900.0, cycles_over_floor=1.1, inputs=inputs)
        return FakeRef({"result": cache.commit(claim, result), "computed": True, "seconds": 0.0})


def test_the_scheduler_shares_stages_and_contains_failures(tmp_path: Path) -> None:
    from esl_hw.app.explore import Explorer, _session_info
    from esl_hw.app.explore_record import ExplorationFolder
    from esl_hw.app.explore_space import load_space
    from esl_hw.app.explore_strategy import planner_for

    space_file = tmp_path / "space.yaml"
    space_file.write_text(
        "fixed: {model.hidden: [16]}\n"
        "axes: {sparsity.density: [0.1, 0.3], hardware.lanes: [1, 2, 4],\n"
        "       hardware.target: [null, ice40-up5k]}\n"
        "deadlines: {synth: 0.3}\n"
    )
    space = load_space(space_file)
    cache = StageCache(tmp_path / "cache")
    folder = ExplorationFolder.open(
        tmp_path / "out", ExplorationFolder.check(tmp_path / "out", False, space.to_dict(), {"d": 1}, [])
    )
    folder.state["sessions"].append({})
    cluster = {"cpus": 2, "gpus": 0, "address": "fake"}
    context = {"data": {"d": 1}, "dataset": "x", "data_path": None, "gpus": 0, "environment": {},
               "deadlines": dict(space.deadlines), "session": _session_info(cluster, 1)}  # fmt: skip
    fake = FakeRay()
    explorer = Explorer(fake, space, planner_for(space), cache, folder, context, cluster)
    explorer.run()
    submitted = collections.Counter(stage for stage, _ in fake.submitted)
    # each shared stage once: 2 trainings, 3 lane counts x 2 densities co-simulated, plus the UP5K's
    # 4-lane core at density 0.3, whose synapses go to SPRAM (another core); 6 UP5K syntheses
    assert submitted == {"train": 2, "cosim": 7, "synth": 6}
    assert len(fake.cancelled) == 6, "every hanging synthesis cancelled at its deadline"
    statuses = {
        (p["hardware"]["lanes"], p["hardware"]["target"]): p["status"] for p in explorer.points.values()
    }
    assert statuses[(1, None)] == statuses[(2, None)] == "ok"
    assert statuses[(4, None)] == "error" and statuses[(1, "ice40-up5k")] == "error"
    errors = {p.get("error") for p in explorer.points.values() if p["status"] == "error"}
    assert errors == {"cosim: boom", "synth ran longer than its deadline of 0.3 s"}
    assert len(explorer.points) == 12 and explorer.computed == {"train": 2, "cosim": 4, "synth": 0}
    assert (tmp_path / "out" / "points.jsonl").read_text().count("\n") == 4, "failed points are not recorded"
    folder.close()


class FakeRemote:
    def __init__(self, fake: FakeRay) -> None:
        self.fake = fake

    def options(self, **options):
        self.fake.options.append(options)
        return self

    def remote(self, stage: str, request: dict) -> FakeRef:
        self.fake.submitted.append((stage, request["key"]))
        return fake_stage(stage, request)
