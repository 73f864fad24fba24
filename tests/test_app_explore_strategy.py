"""The strategies of ``esl-hw explore`` (:mod:`esl_hw.app.explore_strategy`): grid order, seeded
random draws, and Optuna's multi-objective sampler asked and told."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from esl_hw.app.explore_space import grid_points, load_space
from esl_hw.app.explore_strategy import planner_for, random_points


def space_file(tmp_path: Path, strategy: dict) -> Path:
    data = {
        "fixed": {"model.hidden": [8]},
        "axes": {"sparsity.density": [0.05, 0.1, 0.2, 0.3], "hardware.lanes": [1, 2, 4]},
        "strategy": strategy,
    }
    path = tmp_path / f"{strategy['kind']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def fake_metrics(point) -> dict:
    """Accuracy up and cycles up with density, cycles down with lanes: a front exists."""
    density, lanes = point.config["sparsity"]["density"], point.hardware["lanes"]
    return {"accuracy": 0.8 + density / 2, "cycles": 1000 * density / lanes + 50 * lanes}


def test_grid_hands_out_every_point_in_order_numbered(tmp_path: Path) -> None:
    space = load_space(space_file(tmp_path, {"kind": "grid"}))
    planner = planner_for(space)
    first, rest = planner.ask(5), planner.ask(100)
    assert [p.id for p in first + rest] == [p.id for p in grid_points(space)]
    assert planner.exhausted() and planner.ask(3) == [] and planner.total == 12
    assert [planner.number(p) for p in first] == [1, 2, 3, 4, 5]


def test_random_draws_distinct_points_reproducibly(tmp_path: Path) -> None:
    space = load_space(space_file(tmp_path, {"kind": "random", "points": 5, "seed": 3}))
    drawn = [p.id for p in random_points(space, 5, 3)]
    assert len(set(drawn)) == 5 and drawn == [p.id for p in random_points(space, 5, 3)]
    assert drawn != [p.id for p in random_points(space, 5, 4)]
    planner = planner_for(space)
    assert [p.id for p in planner.ask(10)] == drawn and planner.exhausted()
    everything = load_space(space_file(tmp_path, {"kind": "random", "points": 50}))
    assert everything.strategy.points == 12, "no more points than the grid has"


def test_optuna_asks_distinct_points_and_learns_from_their_metrics(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    space = load_space(space_file(tmp_path, {"kind": "optuna", "points": 8, "seed": 0}))
    planner = planner_for(space)
    seen = []
    while not planner.exhausted():
        asked = planner.ask(2)
        assert asked, "the planner hands out points until it is exhausted"
        for point in asked:
            seen.append(point.id)
            planner.tell(point, fake_metrics(point) if len(seen) != 3 else None)  # the third one fails
    assert len(seen) == 8 and len(set(seen)) == 8
    assert sorted(planner.numbers.values()) == list(range(1, 9))
    states = [trial.state.name for trial in planner.study.trials]
    assert states.count("FAIL") >= 1 and states.count("COMPLETE") >= 7
    assert len(planner.study.best_trials) >= 1, "a multi-objective study keeps its front"


def test_optuna_resumes_from_the_recorded_points(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    space = load_space(space_file(tmp_path, {"kind": "optuna", "points": 6, "seed": 1}))
    first = planner_for(space)
    records = []
    for point in first.ask(3):
        metrics = fake_metrics(point)
        records.append({"id": point.id, "number": first.number(point), "settings": point.settings,
                        "status": "ok", "metrics": metrics})  # fmt: skip
    again = planner_for(space)
    again.seed(records)
    assert again.handed == 3 and len(again.study.trials) == 3
    rest = []
    while not again.exhausted():
        for point in again.ask(3):
            rest.append(point)
            again.tell(point, fake_metrics(point))
    assert len(rest) == 3 and not {p.id for p in rest} & {r["id"] for r in records}
    assert sorted(again.number(p) for p in rest) == [4, 5, 6], "numbers continue after the recorded ones"
