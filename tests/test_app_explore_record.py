"""The exploration folder (:mod:`esl_hw.app.explore_record`): made only where nothing is, resumed only
where esl-hw's explore wrote it with the same space and data, one exploration at a time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from esl_hw.app.explore_record import FILES, ExplorationFolder
from esl_hw.errors import EslError
from esl_hw.outputs import OUTPUT_MARKER

SPACE = {
    "name": "s",
    "axes": {"sparsity.density": [0.1]},
    "budgets": [],
    "objectives": ["accuracy", "cycles"],
    "deadlines": {"train": 1.0},
    "strategy": {"kind": "random", "points": 3, "seed": 0, "sampler": "tpe"},
}
DATA = {"train": 10, "test": 5, "sha256": "ab" * 32}


def made(path: Path, space: dict = SPACE) -> ExplorationFolder:
    return ExplorationFolder.open(path, ExplorationFolder.check(path, False, space, DATA, []))


def test_a_new_folder_is_made_and_marked(tmp_path: Path) -> None:
    with made(tmp_path / "out") as folder:
        assert json.loads((folder.path / OUTPUT_MARKER).read_text())["command"] == "explore"
        assert (folder.path / "space.yaml").is_file() and folder.state["sessions"] == []
        folder.record({"id": "a", "number": 1})
        with open(folder.path / "points.jsonl", "a") as handle:
            handle.write('{"id": "b", "num')  # cut short by a kill
        assert list(folder.recorded()) == ["a"]
    empty = tmp_path / "empty"
    empty.mkdir()
    made(empty).close()


def test_an_existing_folder_is_never_taken_without_resume(tmp_path: Path) -> None:
    made(tmp_path / "out").close()
    with pytest.raises(EslError, match="exists; pass --resume"):
        ExplorationFolder.check(tmp_path / "out", False, SPACE, DATA, [])
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(EslError, match="exists; pass --resume"):
        ExplorationFolder.check(tmp_path / "mine", False, SPACE, DATA, [])
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"


def test_resume_takes_only_an_exploration_of_the_same_space_and_data(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(EslError, match="no exploration to resume"):
        ExplorationFolder.check(out, True, SPACE, DATA, [])
    made(out).close()
    changed = {**SPACE, "budgets": [{"name": "b"}], "strategy": {**SPACE["strategy"], "points": 9}}
    assert ExplorationFolder.check(out, True, changed, DATA, [])["space"] == changed
    with pytest.raises(EslError, match=r"axes.sparsity.density differs"):
        ExplorationFolder.check(out, True, {**SPACE, "axes": {"sparsity.density": [0.2]}}, DATA, [])
    with pytest.raises(EslError, match="strategy.seed differs"):
        ExplorationFolder.check(out, True, {**SPACE, "strategy": {**SPACE["strategy"], "seed": 1}}, DATA, [])
    with pytest.raises(EslError, match="the data differs"):
        ExplorationFolder.check(out, True, SPACE, {**DATA, "test": 6}, [])
    (out / ".front.md.tmp-999").write_text("left by a kill")
    ExplorationFolder.check(out, True, SPACE, DATA, [])
    assert not (out / ".front.md.tmp-999").exists(), "its own temporaries are cleared"
    (out / "notes.txt").write_text("not esl-hw's")
    with pytest.raises(EslError, match="holds 'notes.txt', which esl-hw did not write"):
        ExplorationFolder.check(out, True, SPACE, DATA, [])
    assert (out / "notes.txt").is_file()


def test_resume_refuses_another_commands_folder_and_an_input_inside(tmp_path: Path) -> None:
    other = tmp_path / "sim-out"
    other.mkdir()
    (other / "sim.json").write_text("{}")
    (other / OUTPUT_MARKER).write_text(
        json.dumps({"tool": "esl-hw", "command": "sim", "entries": ["sim.json"]})
    )
    with pytest.raises(EslError, match="is not an exploration folder"):
        ExplorationFolder.check(other, True, SPACE, DATA, [])
    made(tmp_path / "out").close()
    with pytest.raises(EslError, match="is the input"):
        ExplorationFolder.check(tmp_path / "out", True, SPACE, DATA, [tmp_path / "out"])


def test_one_exploration_at_a_time(tmp_path: Path) -> None:
    with made(tmp_path / "out") as first:
        state = ExplorationFolder.check(first.path, True, SPACE, DATA, [])
        with pytest.raises(EslError, match="another esl-hw explore is running"):
            ExplorationFolder.open(first.path, state)
    ExplorationFolder.open(tmp_path / "out", state).close()
    assert set(FILES) >= {"front.json", "front.md", "front.png", "points.jsonl"}
