"""The output rule: whole or absent, never replacing a folder esl-hw did not write, never an input."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from esl_hw.errors import EslError
from esl_hw.outputs import (
    OUTPUT_MARKER,
    STAGING_MARKER,
    check_writable_target,
    clear_stale_staging,
    new_staging,
    staged_folder,
)


def _write_output(target: Path, name: str = "done.txt", text: str = "ok") -> None:
    with staged_folder(target, force=True) as staging:
        (staging / name).write_text(text)


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_folder_appears_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with pytest.raises(RuntimeError), staged_folder(target) as staging:
        (staging / "half.txt").write_text("x")
        raise RuntimeError("stage failed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    with staged_folder(target) as staging:
        (staging / "done.txt").write_text("ok")
    assert (target / "done.txt").read_text() == "ok"
    assert json.loads((target / OUTPUT_MARKER).read_text())["entries"] == ["done.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_interrupt_discards_the_staging_folder(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), staged_folder(tmp_path / "out") as staging:
        (staging / "half.txt").write_text("x")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_is_refused_without_force(tmp_path: Path) -> None:
    target = tmp_path / "out"
    _write_output(target, text="first")
    with pytest.raises(EslError, match="--force"), staged_folder(target):
        pass
    assert (target / "done.txt").read_text() == "first"


def test_force_replaces_a_folder_esl_hw_wrote(tmp_path: Path) -> None:
    target = tmp_path / "out"
    _write_output(target, "old.txt")
    _write_output(target, "new.txt")
    assert sorted(p.name for p in target.iterdir()) == [OUTPUT_MARKER, "new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_force_replaces_an_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    _write_output(tmp_path / "out")
    assert (tmp_path / "out" / "done.txt").read_text() == "ok"


def test_force_never_replaces_a_folder_of_user_files(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "precious.txt").write_text("keep")
    with pytest.raises(EslError, match="'precious.txt', which esl-hw did not write"):
        _write_output(target)
    assert sorted(p.name for p in target.iterdir()) == ["precious.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_force_never_replaces_an_esl_hw_folder_the_user_added_to(tmp_path: Path) -> None:
    target = tmp_path / "out"
    _write_output(target)
    (target / "notes.md").write_text("mine")
    with pytest.raises(EslError, match="'notes.md'"):
        _write_output(target, "new.txt")
    assert (target / "notes.md").read_text() == "mine"
    assert (target / "done.txt").exists()


def test_a_forged_or_damaged_marker_protects_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "precious.txt").write_text("keep")
    (target / OUTPUT_MARKER).write_text("{not json")
    with pytest.raises(EslError, match="did not write"):
        check_writable_target(target, force=True)
    (target / OUTPUT_MARKER).write_text(json.dumps({"tool": "other", "entries": ["precious.txt"]}))
    with pytest.raises(EslError, match="did not write"):
        check_writable_target(target, force=True)


@pytest.mark.parametrize("relation", ["same", "parent", "grandparent"])
def test_the_input_or_a_folder_holding_it_is_never_the_output(tmp_path: Path, relation: str) -> None:
    model = tmp_path / "a" / "b" / "model"
    model.mkdir(parents=True)
    (model / "model.yaml").write_text("x")
    target = {"same": model, "parent": model.parent, "grandparent": model.parent.parent}[relation]
    with pytest.raises(EslError, match="the input"):
        check_writable_target(target, force=True, inputs=[model])
    with pytest.raises(EslError, match="the input"):
        check_writable_target(Path(os.path.relpath(target)), force=True, inputs=[model])
    assert (model / "model.yaml").read_text() == "x"


def test_an_output_inside_the_input_is_allowed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    state = check_writable_target(run / "model", force=False, inputs=[run])
    assert not state.existed


def test_a_file_or_a_link_in_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("file")
    with pytest.raises(EslError, match="not a folder"), staged_folder(tmp_path / "out", force=True):
        pass
    elsewhere = tmp_path / "elsewhere"
    _write_output(elsewhere)
    (tmp_path / "link").symlink_to(elsewhere)
    with pytest.raises(EslError, match="symbolic link"):
        _write_output(tmp_path / "link")
    assert (elsewhere / "done.txt").read_text() == "ok"
    assert (tmp_path / "out").read_text() == "file"


def test_a_folder_that_appears_meanwhile_is_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with pytest.raises(EslError, match="result kept in") as error, staged_folder(target) as staging:
        (staging / "result.txt").write_text("mine")
        target.mkdir()
        (target / "theirs.txt").write_text("theirs")
    assert sorted(p.name for p in target.iterdir()) == ["theirs.txt"]
    kept = Path(str(error.value).rsplit("result kept in ", 1)[1])
    assert kept.parent == tmp_path and kept.name.startswith("out.result-")
    assert (kept / "result.txt").read_text() == "mine"


def test_a_replaced_folder_that_changed_meanwhile_is_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "out"
    _write_output(target)
    with pytest.raises(EslError, match="changed while"), staged_folder(target, force=True) as staging:
        (staging / "new.txt").write_text("new")
        (target / "added.txt").write_text("user")
    assert (target / "added.txt").read_text() == "user"
    assert (target / "done.txt").read_text() == "ok"


def test_keep_on_publishes_a_complete_negative_result(tmp_path: Path) -> None:
    class Verdict(Exception):
        pass

    with pytest.raises(Verdict), staged_folder(tmp_path / "out", keep_on=(Verdict,)) as staging:
        (staging / "report.md").write_text("does not fit")
        raise Verdict
    assert (tmp_path / "out" / "report.md").read_text() == "does not fit"


def _orphan(target: Path, pid: int, host: str | None = None) -> Path:
    folder = target.parent / f".{target.name}.partial-killed"
    folder.mkdir()
    (folder / "half.txt").write_text("x")
    owner = {"tool": "esl-hw", "pid": pid, "host": host or socket.gethostname()}
    (folder / STAGING_MARKER).write_text(json.dumps(owner))
    return folder


def test_staging_of_a_killed_run_is_cleared_on_the_next_run(tmp_path: Path) -> None:
    target = tmp_path / "out"
    orphan = _orphan(target, _dead_pid())
    _write_output(target)
    assert not orphan.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_staging_of_a_live_or_foreign_process_and_unmarked_folders_are_kept(tmp_path: Path) -> None:
    target = tmp_path / "out"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        running = _orphan(target, live.pid)
        assert clear_stale_staging(target) == []
        running.rename(tmp_path / ".out.partial-running")
        other_host = _orphan(target, _dead_pid(), host="another-host")
        assert clear_stale_staging(target) == []
        other_host.rename(tmp_path / ".out.partial-other")
        unmarked = tmp_path / ".out.partial-user"
        unmarked.mkdir()
        (unmarked / "file").write_text("user")
        staging = new_staging(target)
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [".out.partial-running", ".out.partial-other", ".out.partial-user", staging.name]
        )
    finally:
        live.kill()
        live.wait()


def test_an_output_folder_that_cannot_be_created_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    for target in (tmp_path / "file" / "out", Path("/proc/esl-hw-out")):
        with pytest.raises(EslError, match="cannot (inspect|write beside --out)"), staged_folder(target):
            pass
    assert (tmp_path / "file").read_text() == "x"
