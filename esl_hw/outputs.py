"""The one output rule of every command that writes a folder (``--out``).

- An existing ``--out`` is refused without ``--force``. With ``--force`` only a folder that
  esl-hw itself wrote is replaced: it carries the marker file :data:`OUTPUT_MARKER`, which lists
  the entries esl-hw put there, and it holds nothing else (or it is empty). A folder of anything
  else, a symbolic link, the command's own input, or a folder that contains an input is never
  replaced.
- The result is written into a hidden staging folder ``.<name>.partial-XXXX`` beside ``--out``
  and moved into place only when it is complete. If something appeared at ``--out`` meanwhile
  (or the folder there changed), the command refuses, leaves what it found alone and keeps its
  result in a visible folder ``<name>.result-XXXX`` whose path the error names.
- The folder also gets the command's log (:data:`esl_hw.progress.LOG_NAME`: its command line,
  progress lines and log records) when the command keeps one (:func:`esl_hw.progress.command_log`).
- A staging folder carries :data:`STAGING_MARKER` with the process that owns it; staging folders
  of processes that no longer run (a killed command) are cleared by the next run for the same
  ``--out``. Only folders with that marker are ever cleared.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from esl_hw import progress
from esl_hw.errors import EslError

#: Written into every output folder; lists the folder's entries at the time esl-hw wrote it.
OUTPUT_MARKER = ".esl-hw-output.json"
#: Written into every staging or work folder; names the process that owns it.
STAGING_MARKER = ".esl-hw-staging.json"
STAGING_INFIX = ".partial-"
TRASH_INFIX = ".old-"


@dataclass(frozen=True)
class TargetState:
    """What was at ``--out`` when the command checked it: nothing, or a replaceable folder."""

    path: Path
    existed: bool
    identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the folder that was there


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        status = path.lstat()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise EslError(f"{path}: cannot inspect ({error.strerror})") from None
    return status.st_dev, status.st_ino


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def _check_not_an_input(target: Path, inputs: Iterable[str | os.PathLike[str] | None]) -> None:
    resolved = target.resolve()
    for given in inputs:
        if given is None:
            continue
        source = Path(given).resolve()
        if _within(source, resolved):
            what = "is" if source == resolved else "contains"
            raise EslError(f"--out {target} {what} the input {given}; choose another output folder")


def unexpected_entries(folder: Path) -> list[str]:
    """Entries of ``folder`` that esl-hw did not write there (all of them without a valid marker)."""
    try:
        entries = sorted(entry.name for entry in folder.iterdir())
    except OSError as error:
        raise EslError(f"{folder}: cannot list ({error.strerror})") from None
    if not entries:
        return []
    marker = folder / OUTPUT_MARKER
    try:
        written = json.loads(marker.read_text(encoding="utf-8"))
        known = set(written["entries"]) if written.get("tool") == "esl-hw" else set()
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        known = set()
    if not known:
        return entries
    return [name for name in entries if name != OUTPUT_MARKER and name not in known]


def check_writable_target(
    target: str | os.PathLike[str],
    force: bool,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
) -> TargetState:
    """Apply the output rule to ``target`` before any work; return what is there.

    Raises :class:`EslError` for a file or link in the way, an existing folder without ``force``,
    a folder with entries esl-hw did not write (even with ``force``), or a target that is or
    contains one of ``inputs``.
    """
    target = Path(target)
    _check_not_an_input(target, inputs)
    identity = _identity(target)
    if identity is None:
        return TargetState(target, existed=False)
    if target.is_symlink():
        raise EslError(f"{target} is a symbolic link; esl-hw writes only a folder of its own there")
    if not target.is_dir():
        raise EslError(f"{target} exists and is not a folder")
    if not force:
        raise EslError(f"{target} exists; pass --force to replace a folder esl-hw wrote")
    foreign = unexpected_entries(target)
    if foreign:
        raise EslError(
            f"{target} holds {foreign[0]!r}, which esl-hw did not write; refusing to replace it "
            "even with --force (move it away or choose another --out)"
        )
    return TargetState(target, existed=True, identity=identity)


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def staging_owner(folder: Path) -> tuple[int, str] | None:
    """``(pid, host)`` from the staging marker of ``folder``; ``None`` when it has no valid one."""
    try:
        owner = json.loads((folder / STAGING_MARKER).read_text(encoding="utf-8"))
        return int(owner["pid"]), str(owner["host"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def owned_by_live_process(folder: Path) -> bool:
    """Whether another process that still runs (or one on another host) owns ``folder``."""
    owner = staging_owner(folder)
    if owner is None:
        return False
    pid, host = owner
    return host != socket.gethostname() or (pid != os.getpid() and process_alive(pid))


def _stale(folder: Path) -> bool:
    """Whether ``folder`` is a staging folder of a process on this host that no longer runs."""
    return staging_owner(folder) is not None and not owned_by_live_process(folder)


def clear_stale_staging(target: Path) -> list[Path]:
    """Remove the staging and trash folders of ``target`` left by killed esl-hw processes."""
    removed = []
    parent = target.parent
    if not parent.is_dir():
        return removed
    for infix in (STAGING_INFIX, TRASH_INFIX):
        for folder in parent.glob(f".{target.name}{infix}*"):
            if folder.is_dir() and not folder.is_symlink() and _stale(folder):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    return removed


def mark_staging(folder: Path) -> None:
    """Write :data:`STAGING_MARKER` (this process) into ``folder``."""
    owner = {"tool": "esl-hw", "pid": os.getpid(), "host": socket.gethostname()}
    (folder / STAGING_MARKER).write_text(json.dumps(owner) + "\n", encoding="utf-8")


def new_staging(target: Path) -> Path:
    """A fresh staging folder ``.<name>.partial-XXXX`` beside ``target``, owned by this process."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        clear_stale_staging(target)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}{STAGING_INFIX}", dir=target.parent))
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; the result should not be
        mark_staging(staging)
    except OSError as error:
        raise EslError(f"cannot write beside --out {target} ({error.strerror or error})") from None
    return staging


def _keep_result(staging: Path, target: Path) -> Path:
    kept = Path(tempfile.mkdtemp(prefix=f"{target.name}.result-", dir=target.parent))
    os.replace(staging, kept)
    return kept


def publish(staging: Path, state: TargetState, command: str = "") -> Path:
    """Mark ``staging`` as esl-hw's output and move it to ``state.path``; return the target.

    If ``state.path`` changed since :func:`check_writable_target` (something appeared there, or
    the folder there was replaced or gained foreign entries), nothing there is touched: the
    result moves to ``<name>.result-XXXX`` and :class:`EslError` names it.
    """
    target = state.path
    (staging / STAGING_MARKER).unlink(missing_ok=True)
    progress.write_log(staging, target)  # the command's log, when this is its --out
    entries = sorted(entry.name for entry in staging.iterdir() if entry.name != OUTPUT_MARKER)
    subcommand = next((word for word in sys.argv[1:] if not word.startswith("-")), "")  # after -v, -q
    marker = {"tool": "esl-hw", "command": command or subcommand, "entries": entries}
    (staging / OUTPUT_MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
    now = _identity(target)
    changed = now != state.identity or (state.existed and bool(unexpected_entries(target)))
    if changed:
        kept = _keep_result(staging, target)
        raise EslError(f"{target} changed while esl-hw was writing it; left it alone, result kept in {kept}")
    if state.existed:
        trash = Path(tempfile.mkdtemp(prefix=f".{target.name}{TRASH_INFIX}", dir=target.parent))
        mark_staging(trash)
        os.replace(target, trash / "old")
        os.replace(staging, target)
        shutil.rmtree(trash, ignore_errors=True)
        return target
    try:
        os.replace(staging, target)  # an empty folder that appeared meanwhile is replaced, nothing else
    except OSError:
        kept = _keep_result(staging, target)
        raise EslError(f"{target} appeared while esl-hw was writing it; result kept in {kept}") from None
    return target


@contextmanager
def staged_folder(
    target: str | os.PathLike[str],
    force: bool = False,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    keep_on: tuple[type[BaseException], ...] = (),
    state: TargetState | None = None,
) -> Iterator[Path]:
    """Yield a staging folder that replaces ``target`` (by the rule above) when the block ends.

    An exception discards the staging folder, except one of ``keep_on`` (a complete report of a
    negative result, e.g. a design that does not fit): then the result is published and the
    exception goes on. ``state`` is the result of an earlier :func:`check_writable_target`.
    """
    state = state or check_writable_target(target, force, inputs)
    staging = new_staging(state.path)
    try:
        yield staging
    except keep_on as error:
        progress.note(f"error: {error}", echo=False)
        publish(staging, state)
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        publish(staging, state)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
