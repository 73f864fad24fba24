"""Atomic checkpoints and resumable run folders.

A run is trained inside a hidden *work folder* beside its target, ``.<name>.partial``, and renamed
into place when it completes, so a half-written run never looks complete. After every epoch the
work folder gets

- ``metrics.jsonl``: one JSON line per finished epoch (appended first);
- ``checkpoint.pt``: the best epoch so far (model with masks, sparse state, scores);
- ``state.pt``: everything needed to continue: model, optimizer, sparse engine, learning-rate
  schedule, the shuffling generator, the best record and the epoch count.

Every ``.pt`` file is written to a temporary file in the same folder and ``os.replace``-d into place,
so a process killed at any instant (SIGKILL included) leaves either the old or the new file. On
resume ``metrics.jsonl`` is cut back to the epochs that ``state.pt`` records (a kill between the two
writes leaves one line too many), and training continues from the next epoch with the same random
streams, so the run ends with exactly the weights, masks and metrics of an uninterrupted one (the
per-epoch wall-clock ``seconds`` aside).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from esl_hw.errors import EslError
from esl_hw.outputs import check_writable_target

STATE_FILE = "state.pt"
STATE_FORMAT = "esl-hw-train-state"


def _umask_mode(mode: int) -> int:
    """``mode`` less the process umask (``tempfile`` creates private 0600/0700 entries)."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` into a temporary file in the same folder, then ``os.replace`` it into place."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    os.chmod(temporary, _umask_mode(0o666))
    try:
        torch.save(obj, temporary)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def work_folder(out_dir: Path) -> Path:
    """The hidden folder ``.<name>.partial`` beside ``out_dir`` where the run is trained."""
    return out_dir.parent / f".{out_dir.name}.partial"


def check_work_folder(out_dir: Path, force: bool, resume: bool) -> None:
    """The refusals of :func:`open_work_folder`, without touching the disk (every rank runs them)."""
    work = work_folder(out_dir)
    state = work / STATE_FILE
    if resume and not state.is_file():
        done = " (that run is already complete)" if (out_dir / "checkpoint.pt").is_file() else ""
        raise EslError(f"no interrupted run to resume for {out_dir}: {state} does not exist{done}")
    if not resume:
        check_writable_target(out_dir, force)
        if work.exists() and not force:
            raise EslError(
                f"an interrupted run of {out_dir} exists in {work}; pass --resume to continue it "
                "or --force to start over"
            )


def open_work_folder(out_dir: Path, force: bool, resume: bool) -> tuple[Path, bool]:
    """``(work, resuming)``: the work folder, and whether it holds a state to resume from.

    A fresh start refuses an existing non-empty ``out_dir`` and a leftover interrupted run unless
    ``force``; ``resume`` requires a leftover work folder with a saved state.
    """
    check_work_folder(out_dir, force, resume)
    work = work_folder(out_dir)
    if resume:
        return work, True
    if work.exists():
        shutil.rmtree(work)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work.mkdir()
    work.chmod(_umask_mode(0o777))
    return work, False


def finish_work_folder(work: Path, out_dir: Path) -> None:
    """Drop the resume state and rename the completed work folder to ``out_dir``."""
    (work / STATE_FILE).unlink(missing_ok=True)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(work, out_dir)


def load_state(work: Path, config_dict: dict[str, Any], sizes: list[int]) -> dict[str, Any]:
    """Read ``state.pt`` and refuse one from another configuration or another model shape."""
    path = work / STATE_FILE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is a user-input problem
        raise EslError(f"{path}: cannot read training state ({type(error).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise EslError(f"{path}: not an esl-hw training state")
    if list(state["sizes"]) != list(sizes):
        raise EslError(
            f"{path}: checkpoint is for model {'-'.join(map(str, state['sizes']))}, "
            f"the config gives {'-'.join(map(str, sizes))}"
        )
    if state["config"] != config_dict:
        key = _first_difference(state["config"], config_dict)
        raise EslError(f"{path}: the interrupted run used another config ({key} differs)")
    return state


def _first_difference(saved: Any, given: Any, prefix: str = "") -> str:
    if isinstance(saved, dict) and isinstance(given, dict):
        for key in sorted(set(saved) | set(given), key=str):
            if saved.get(key) != given.get(key):
                return _first_difference(saved.get(key), given.get(key), f"{prefix}{key}.")
    return prefix.rstrip(".") or "config"


def truncate_metrics(path: Path, epochs: int) -> None:
    """Keep the first ``epochs`` lines of ``path`` (the epochs the saved state includes)."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)[:epochs]
    path.write_text("".join(lines))
