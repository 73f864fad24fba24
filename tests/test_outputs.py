"""Staged output folders: whole or absent, never overwriting without force."""

from __future__ import annotations

from pathlib import Path

import pytest

from esl_hw.errors import EslError
from esl_hw.outputs import staged_folder


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


def test_existing_folder_is_kept_without_force(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "precious.txt").write_text("keep")
    with pytest.raises(EslError, match="--force"), staged_folder(target):
        pass
    assert (target / "precious.txt").read_text() == "keep"
    with staged_folder(target, force=True) as staging:
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("file")
    with pytest.raises(EslError, match="not a folder"), staged_folder(tmp_path / "out", force=True):
        pass
