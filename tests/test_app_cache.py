"""``esl-hw cache`` and ``esl-hw cache clear`` through the command line, on a cache made by hand."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cache_support import fake_key, held_by_another_process, make_entry

from esl_hw.app.cache import when
from esl_hw.app.cli import main
from esl_hw.sim.build_cache import CACHE_ENV, CACHE_MAX_ENV, STAMP

USED = time.mktime((2024, 5, 1, 12, 3, 0, 0, 0, -1))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch) -> Path:
    """``$ESL_HW_CACHE``: two finished builds (1 MB used first, then 2 MB), an unfinished one, a user
    file and a folder named like a build that esl-hw did not write."""
    root = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(root))
    monkeypatch.delenv(CACHE_MAX_ENV, raising=False)
    make_entry(root, "small", megabytes=1, last_used=USED)
    make_entry(root, "big", megabytes=2, last_used=USED + 3600, simulator="verilator")
    make_entry(root, "killed", megabytes=0.5, last_used=USED + 60, finished=False)
    (root / "notes.txt").write_text("mine")
    (root / f"icarus-{fake_key('mine')}").mkdir()
    (root / f"icarus-{fake_key('mine')}" / "keep.v").write_text("module mine; endmodule\n")
    return root


def user_files(root: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


def test_cache_lists_every_build_least_recently_used_first(capsys, cache: Path) -> None:
    assert main(["cache"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"build cache {cache} (builds capped at 4096 MB, {CACHE_MAX_ENV})"
    assert out[1].split() == ["key", "simulator", "size", "MB", "last", "used"]
    rows = [line.split() for line in out[2:5]]
    assert [row[:3] for row in rows] == [
        [fake_key("small"), "icarus", "1.0"],
        [fake_key("killed"), "icarus", "0.5"],
        [fake_key("big"), "verilator", "2.0"],
    ]
    assert " ".join(rows[0][3:]) == when(USED) == "2024-05-01 12:03"
    assert rows[1][-1] == "(unfinished)" and rows[0][-1] != "(unfinished)"
    assert out[5] == "total: 3 builds, 3.5 MB (least recently used first)" and len(out) == 6
    assert "notes.txt" not in "\n".join(out) and fake_key("mine") not in "\n".join(out)


def test_cache_list_is_the_default_and_changes_nothing(capsys, cache: Path, monkeypatch) -> None:
    before = user_files(cache)
    assert main(["cache"]) == 0
    listed = capsys.readouterr().out
    monkeypatch.setenv(CACHE_MAX_ENV, "100")
    assert main(["cache", "list"]) == 0
    assert capsys.readouterr().out == listed.replace("4096 MB", "100 MB")
    assert user_files(cache) == before


def test_cache_clear_frees_every_build_and_leaves_user_files(capsys, cache: Path) -> None:
    assert main(["cache", "clear"]) == 0
    assert capsys.readouterr().out == f"build cache {cache}: removed 3 builds, freed 3.5 MB\n"
    assert user_files(cache) == sorted(["notes.txt", f"icarus-{fake_key('mine')}/keep.v"])
    assert not list(cache.glob("*.lock"))
    assert main(["cache"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "empty: no builds"
    assert main(["cache", "clear"]) == 0
    assert capsys.readouterr().out == f"build cache {cache} is empty: nothing to clear\n"


def test_cache_clear_keeps_a_build_in_use(capsys, cache: Path) -> None:
    used = cache / f"verilator-{fake_key('big')}"
    with held_by_another_process(used / STAMP, shared=True):
        assert main(["cache", "clear"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"build cache {cache}: removed 2 builds, freed 1.5 MB",
        f"kept 1 in use (by a running esl-hw): {used.name}",
    ]
    assert (used / STAMP).is_file() and (used / "sim" / "built.bin").is_file()


def test_a_missing_cache_folder_is_empty_not_an_error(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "nowhere"))
    assert main(["cache"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "empty: no builds (the folder does not exist yet)"
    assert main(["cache", "clear"]) == 0
    assert "is empty: nothing to clear" in capsys.readouterr().out
    assert not (tmp_path / "nowhere").exists(), "listing or clearing creates nothing"


@pytest.mark.parametrize("action", [[], ["clear"]])
def test_a_bad_cap_is_one_line_and_exit_2(capsys, cache: Path, monkeypatch, action: list[str]) -> None:
    monkeypatch.setenv(CACHE_MAX_ENV, "0")
    before = user_files(cache)
    assert main(["cache", *action]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    message = f"{CACHE_MAX_ENV} must be a positive whole number of MB (default 4096), got '0'"
    assert captured.err == f"esl-hw: error: {message}\n"
    assert user_files(cache) == before


def test_an_unknown_action_is_a_usage_error(capsys, cache: Path) -> None:
    assert main(["cache", "prune"]) == 2
    assert "invalid choice: 'prune'" in capsys.readouterr().err
