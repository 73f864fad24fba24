"""The folder of an exploration (``esl-hw explore --out DIR``): made, resumed and written as results arrive.

An exploration writes its folder while it runs, so it cannot be staged and moved into place as the
other commands' results are (:mod:`esl_hw.outputs`); it follows the same ownership rule instead:

- without ``--resume``, ``--out`` must not exist (or be an empty folder); it is never replaced;
- with ``--resume``, ``--out`` must be an exploration esl-hw wrote: it carries esl-hw's output
  marker (:data:`esl_hw.outputs.OUTPUT_MARKER`, command ``explore``), holds nothing but the entries
  the marker lists, and its ``state.json`` names the same space (budgets, objectives, deadlines and
  the number of points to draw may change) and the same data;
- one exploration at a time: a lock file in the folder, held while the command runs.

Files: ``space.yaml`` (the space as resolved), ``state.json`` (space, data identity, sessions),
``points.jsonl`` (one line per finished point, appended and synced as each finishes: what a
resumed exploration does not compute again), ``front.json``, ``front.md``, ``front.png`` (rewritten
atomically as results arrive) and ``esl-hw.log`` (every session's log, appended).
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from esl_hw import progress
from esl_hw.app.explore_cache import write_json_atomic
from esl_hw.errors import EslError
from esl_hw.outputs import OUTPUT_MARKER, check_writable_target
from esl_hw.safe_yaml import dump_yaml

STATE = "state.json"
POINTS = "points.jsonl"
LOCK = ".esl-hw-explore.lock"
FILES = ("space.yaml", STATE, POINTS, "front.json", "front.md", "front.png", progress.LOG_NAME, LOCK)
STATE_FORMAT = "esl-hw-explore-state"
#: space keys a resumed exploration may change (they decide what is reported or how much is drawn)
CHANGEABLE = ("budgets", "objectives", "deadlines", "name")


def _first_difference(saved: Any, given: Any, prefix: str = "") -> str | None:
    if isinstance(saved, dict) and isinstance(given, dict):
        for key in sorted(set(saved) | set(given), key=str):
            found = _first_difference(saved.get(key), given.get(key), f"{prefix}{key}.")
            if found:
                return found
        return None
    return None if saved == given else prefix.rstrip(".")


def comparable(space: dict[str, Any]) -> dict[str, Any]:
    """The part of a resolved space that a resumed exploration must share with the first session."""
    kept = {key: value for key, value in space.items() if key not in CHANGEABLE}
    kept["strategy"] = {key: value for key, value in space["strategy"].items() if key != "points"}
    return kept


def _clear_temporaries(path: Path) -> None:
    """Remove the temporaries a killed exploration left beside its files (``.<file>.tmp-<pid>``),
    in a folder whose marker says esl-hw's ``explore`` wrote it; nothing else is touched."""
    try:
        marker = json.loads((path / OUTPUT_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(marker, dict) or marker.get("tool") != "esl-hw" or marker.get("command") != "explore":
        return
    for name in (*FILES, OUTPUT_MARKER):
        for temporary in path.glob(f".{name}.tmp-*"):
            if temporary.is_symlink() or temporary.is_file():
                temporary.unlink()


class ExplorationFolder:
    """An exploration folder held by this process (use it as a context manager)."""

    def __init__(self, path: Path, state: dict[str, Any]) -> None:
        self.path = path
        self.state = state
        self._lock = None

    @staticmethod
    def check(
        path: Path, resume: bool, space: dict[str, Any], data: dict[str, Any], inputs: list[Any]
    ) -> dict[str, Any]:
        """Check ``path`` by the rule above (nothing is written) and return the exploration's state:
        a new one, or for ``resume`` the one found there with ``space`` as its space."""
        path = Path(path)
        exists = path.exists() or path.is_symlink()
        if not resume:
            if exists and (path.is_symlink() or not path.is_dir() or any(path.iterdir())):
                raise EslError(
                    f"{path} exists; pass --resume to continue an exploration esl-hw wrote there, or choose "
                    "another --out"
                )
            check_writable_target(path, True, inputs)
            return {"format": STATE_FORMAT, "space": space, "data": data, "sessions": []}
        if not exists:
            raise EslError(f"no exploration to resume at {path} (it does not exist)")
        _clear_temporaries(path)
        check_writable_target(path, True, inputs)  # a folder of esl-hw's entries only
        marker = json.loads((path / OUTPUT_MARKER).read_text(encoding="utf-8"))
        if marker.get("command") != "explore" or not (path / STATE).is_file():
            raise EslError(f"{path} is not an exploration folder (esl-hw {marker.get('command')} wrote it)")
        state = ExplorationFolder._read_state(path)
        difference = _first_difference(comparable(state["space"]), comparable(space))
        if difference:
            raise EslError(
                f"the space differs from the exploration in {path} ({difference} differs); use a new "
                "--out, or change only budgets, objectives, deadlines or strategy.points"
            )
        if state["data"] != data:
            raise EslError(f"the data differs from the exploration in {path} (other images or labels)")
        return {**state, "space": space}

    @classmethod
    def open(
        cls, path: Path, state: dict[str, Any], extra_entries: tuple[str, ...] = ()
    ) -> ExplorationFolder:
        """Make the folder ``path`` (or take over the one :meth:`check` accepted) with ``state``."""
        path = Path(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise EslError(f"cannot make --out {path} ({error.strerror or error})") from None
        folder = cls(path, state)
        folder._take_lock()
        marker = {"tool": "esl-hw", "command": "explore", "entries": sorted({*FILES, *extra_entries})}
        write_json_atomic(path / OUTPUT_MARKER, marker)
        (path / "space.yaml").write_text(dump_yaml(state["space"]), encoding="utf-8")
        folder.write_state()
        return folder

    @staticmethod
    def _read_state(path: Path) -> dict[str, Any]:
        try:
            state = json.loads((path / STATE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise EslError(f"{path / STATE}: cannot read ({error})") from None
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise EslError(f"{path / STATE}: not the state of an esl-hw exploration")
        return state

    def _take_lock(self) -> None:
        handle = open(self.path / LOCK, "a")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise EslError(f"another esl-hw explore is running in {self.path}") from None
        self._lock = handle

    def close(self) -> None:
        """Release the folder's lock (and remove its file: nothing waits on it, every taker tries once)."""
        if self._lock is not None:
            (self.path / LOCK).unlink(missing_ok=True)
            self._lock.close()
            self._lock = None

    def __enter__(self) -> ExplorationFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write_state(self) -> None:
        write_json_atomic(self.path / STATE, self.state)

    def recorded(self) -> dict[str, dict[str, Any]]:
        """The points finished by earlier sessions, by point id (a line cut short by a kill is skipped)."""
        path = self.path / POINTS
        points = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    point = json.loads(line)
                except ValueError:
                    continue
                if isinstance(point, dict) and "id" in point:
                    points[point["id"]] = point
        return points

    def record(self, point: dict[str, Any]) -> None:
        """Append ``point`` to ``points.jsonl`` and sync it to disk."""
        with open(self.path / POINTS, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(point) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def write_front(self, payload: dict[str, Any], markdown: str) -> None:
        """``front.json`` and ``front.md``, each atomically."""
        write_json_atomic(self.path / "front.json", payload)
        temporary = self.path / f".front.md.tmp-{os.getpid()}"
        temporary.write_text(markdown, encoding="utf-8")
        os.replace(temporary, self.path / "front.md")

    def append_log(self) -> None:
        """Append this command's log (:func:`esl_hw.progress.command_log`) to ``esl-hw.log``."""
        path = self.path / progress.LOG_NAME
        with tempfile.TemporaryDirectory(prefix="esl-hw-explore-log-") as scratch:
            written = progress.write_log(scratch, self.path)
            if written is None:  # no log kept for this folder
                return
            earlier = path.read_text(encoding="utf-8") if path.is_file() else ""
            temporary = self.path / f".{progress.LOG_NAME}.tmp-{os.getpid()}"
            temporary.write_text(earlier + written.read_text(encoding="utf-8"), encoding="utf-8")
            os.replace(temporary, path)
