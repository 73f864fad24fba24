"""Atomic checkpoints and resumable run folders.

A run is trained inside a hidden *work folder* beside its target, ``.<name>.partial``, and renamed
into place when it completes, so a half-written run never looks complete. After every epoch the
work folder gets

- ``metrics.jsonl``: one JSON line per finished epoch (appended first);
- ``checkpoint.pt``: the best epoch so far (model with masks, sparse state, scores);
- ``state.pt``: everything needed to continue: model, optimizer, sparse engine, learning-rate
  schedule, the shuffling generator, the best record and the epoch count.

Every ``.pt`` file is written to a temporary file ``.<name>.tmp-XXXX`` in the same folder and
``os.replace``-d into place, so a process killed at any instant (SIGKILL included) leaves either the
old or the new file; such temporaries are removed on resume and before the run is published, so
they never reach a finished run folder. The work folder carries esl-hw's staging marker
(:mod:`esl_hw.outputs`): ``--force`` clears only a work folder with that marker. On
resume ``metrics.jsonl`` is cut back to the epochs that ``state.pt`` records (a kill between the two
writes leaves one line too many), and training continues from the next epoch with the same random
streams, so the run ends with exactly the weights, masks and metrics of an uninterrupted one (the
per-epoch wall-clock ``seconds`` aside).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from esl_hw.errors import EslError
from esl_hw.outputs import (
    TargetState,
    check_writable_target,
    mark_staging,
    owned_by_live_process,
    publish,
    staging_owner,
)
from esl_hw.train.config import config_from_dict, config_to_dict

STATE_FILE = "state.pt"
STATE_FORMAT = "esl-hw-train-state"
#: Infix of the temporary files :func:`save_atomic` writes.
TEMPORARY_INFIX = ".tmp-"


def _umask_mode(mode: int) -> int:
    """``mode`` less the process umask (``tempfile`` creates private 0600/0700 entries)."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` into a temporary file in the same folder, then ``os.replace`` it into place."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}{TEMPORARY_INFIX}", dir=path.parent)
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


def _check_own_work_folder(work: Path) -> None:
    """Refuse a work folder that esl-hw did not make, or that a running esl-hw process owns."""
    if work.is_symlink() or not work.is_dir():
        raise EslError(f"{work} exists and is not a work folder of esl-hw; move it away")
    owner = staging_owner(work)
    if owner is None:
        raise EslError(f"{work} lacks esl-hw's marker; refusing to touch it (move it away)")
    if owned_by_live_process(work):
        raise EslError(f"esl-hw process {owner[0]} on {owner[1]} is training into {work}")


def check_work_folder(
    out_dir: Path, force: bool, resume: bool, inputs: Iterable[str | os.PathLike[str] | None] = ()
) -> TargetState:
    """The refusals of :func:`open_work_folder`, without touching the disk (every rank runs them).

    Returns what is at ``out_dir`` (:func:`esl_hw.outputs.check_writable_target`).
    """
    work = work_folder(out_dir)
    state = work / STATE_FILE
    if resume and not state.is_file():
        done = " (that run is already complete)" if (out_dir / "checkpoint.pt").is_file() else ""
        raise EslError(f"no interrupted run to resume for {out_dir}: {state} does not exist{done}")
    target = check_writable_target(out_dir, force, inputs)
    if resume:
        _check_own_work_folder(work)
    elif work.exists() or work.is_symlink():
        if not force:
            raise EslError(
                f"an interrupted run of {out_dir} exists in {work}; pass --resume to continue it "
                "or --force to start over"
            )
        _check_own_work_folder(work)
    return target


def clear_temporaries(work: Path) -> None:
    """Remove the temporaries of :func:`save_atomic` that a killed process left in ``work``."""
    for temporary in work.glob(f".*{TEMPORARY_INFIX}*"):
        if temporary.is_file() and not temporary.is_symlink():
            temporary.unlink()


def open_work_folder(
    out_dir: Path, force: bool, resume: bool, inputs: Iterable[str | os.PathLike[str] | None] = ()
) -> tuple[Path, bool, TargetState]:
    """``(work, resuming, target)``: the work folder, whether it holds a state to resume from, and
    what is at ``out_dir``.

    A fresh start refuses an existing ``out_dir`` (``force`` replaces only a folder esl-hw wrote)
    and a leftover interrupted run unless ``force``; ``resume`` requires a leftover work folder
    with a saved state.
    """
    target = check_work_folder(out_dir, force, resume, inputs)
    work = work_folder(out_dir)
    if resume:
        clear_temporaries(work)
        mark_staging(work)
        return work, True, target
    try:
        if work.exists():
            shutil.rmtree(work)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        work.mkdir()
        work.chmod(_umask_mode(0o777))
        mark_staging(work)
    except OSError as error:
        raise EslError(f"cannot write the run beside --out {out_dir} ({error.strerror or error})") from None
    return work, False, target


def finish_work_folder(work: Path, target: TargetState) -> None:
    """Drop the resume state and temporaries and publish the completed work folder at ``target``."""
    (work / STATE_FILE).unlink(missing_ok=True)
    clear_temporaries(work)
    publish(work, target, "train")


def load_state(work: Path, config_dict: dict[str, Any], sizes: list[int]) -> dict[str, Any]:
    """Read ``state.pt`` and refuse one from another configuration or another model shape (a config
    key added since the state was saved counts at its default, e.g. ``sparsity.redistribute: none``)."""
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
    if _with_defaults(state["config"]) != config_dict:
        key = _first_difference(_with_defaults(state["config"]), config_dict)
        raise EslError(f"{path}: the interrupted run used another config ({key} differs)")
    return state


def _with_defaults(saved: Any) -> Any:
    """The saved config with the keys it lacks at their defaults (as saved if it does not validate)."""
    try:
        return config_to_dict(config_from_dict(saved))
    except (EslError, TypeError, ValueError, AttributeError):
        return saved


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
