"""Progress of long steps on stderr, and the log a command keeps in its output folder.

- :func:`step` is a context manager around one long step (a training run, a Verilator build, a
  Yosys run): a line when it starts and one when it ends, with the seconds it took::

      [12:03:04] build: verilator ...
      [12:03:31] build: verilator done in 26.8 s (cached as verilator-3f2a...)

- :class:`Counter` follows a loop (epochs, images): on a terminal one live line redrawn in place,
  at most ten times a second; elsewhere (a log file, CI) a plain timestamped line at most every
  ``interval`` seconds and one at the end.
- :func:`note` writes one timestamped line.

Everything goes to stderr, so that stdout carries only results. :func:`set_quiet` (the CLI's
``-q``) silences it; errors are not progress and still print. While :func:`command_log` is open
every line, shown or not, and every :mod:`logging` record of level INFO and above is kept too, and
:func:`write_log` (called by :func:`esl_hw.outputs.publish`) writes them as :data:`LOG_NAME` into
the command's output folder.

Standard library only: the core may not import tqdm (the training loop draws its own bar with it).
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

#: the command log's file name in an output folder
LOG_NAME = "esl-hw.log"
#: seconds between two redraws of a live line on a terminal
LIVE_INTERVAL_S = 0.1
#: default seconds between two plain progress lines of a :class:`Counter`
PLAIN_INTERVAL_S = 10.0
#: lines a command log keeps; beyond them only the count of dropped lines is kept
MAX_LOG_LINES = 100_000

_quiet = False
_live_line = ""  # the live line on the terminal, redrawn below any line written meanwhile
_lock = threading.RLock()


def set_quiet(quiet: bool) -> bool:
    """Silence (or show again) the progress on stderr; return the previous setting."""
    global _quiet
    previous, _quiet = _quiet, bool(quiet)
    return previous


def is_quiet() -> bool:
    """Whether progress is silenced (:func:`set_quiet`)."""
    return _quiet


def live() -> bool:
    """Whether progress is drawn live: not quiet, and stderr is a terminal."""
    if _quiet:
        return False
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError, OSError):  # no stderr, or a closed one
        return False


def timestamp(when: float | None = None) -> str:
    """``HH:MM:SS`` of ``when`` (seconds since the epoch; default now), local time."""
    return time.strftime("%H:%M:%S", time.localtime(when))


def elapsed_text(seconds: float) -> str:
    """``14.2 s``, ``3 min 05 s`` or ``2 h 07 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _write(text: str) -> None:
    """Write ``text`` to stderr; a broken or closed stream ends progress, not the command."""
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (AttributeError, ValueError, OSError):
        pass


def _emit(line: str) -> None:
    """Write ``line`` to stderr, above the live line if one is shown."""
    with _lock:
        if _live_line:
            _write(f"\r\033[K{line}\n{_live_line}")
        else:
            _write(f"{line}\n")


def note(message: str, echo: bool = True) -> None:
    """``[HH:MM:SS] message`` on stderr (unless quiet or ``echo`` is false) and in the command log."""
    line = f"[{timestamp()}] {message}"
    record(line)
    if echo and not _quiet:
        _emit(line)


class Step:
    """A running :func:`step`: :attr:`seconds` so far; set :attr:`detail` to add it to the end line
    in parentheses, or :attr:`outcome` to say something else than ``<name> done``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.detail = ""
        self.outcome = ""
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


@contextmanager
def step(name: str, echo: bool = True) -> Iterator[Step]:
    """Note ``<name> ...`` now and ``<name> done in <elapsed>`` (or ``failed after``) at the end."""
    handle = Step(name)
    note(f"{name} ...", echo)
    try:
        yield handle
    except BaseException as error:
        how = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
        note(f"{name} {how} after {elapsed_text(handle.seconds)}", echo)
        raise
    outcome = f"{handle.outcome} in" if handle.outcome else f"{name} done in"
    detail = f" ({handle.detail})" if handle.detail else ""
    note(f"{outcome} {elapsed_text(handle.seconds)}{detail}", echo)


class Counter:
    """Progress of a loop over ``total`` items (``None``: unknown), named ``name``.

    :meth:`update` or :meth:`set` after each item, with extra figures as keyword arguments
    (``loss=0.41`` shows as ``loss 0.41``); :meth:`close` (or leaving the ``with`` block) writes
    the final line. On a terminal the line is redrawn in place; otherwise a timestamped line is
    written at most every ``interval`` seconds (and kept in the command log either way).
    """

    def __init__(
        self, name: str, total: int | None = None, unit: str = "", interval: float = PLAIN_INTERVAL_S
    ) -> None:
        self.name, self.total, self.unit, self.interval = name, total, unit, interval
        self.done = 0
        self.fields: dict[str, object] = {}
        self.started = time.perf_counter()
        self._plain_at = self.started
        self._drawn_at = -float("inf")
        self._closed = False

    def __enter__(self) -> Counter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if error is None:
            self.close()
        else:
            how = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
            self.close(f"{how} after")

    def update(self, count: int = 1, **fields: object) -> None:
        """``count`` more items done; ``fields`` replace the figures of the same name."""
        self.set(self.done + count, **fields)

    def set(self, done: int, **fields: object) -> None:
        """``done`` items done so far."""
        with _lock:
            self.done = done
            self.fields.update(fields)
            self._show()

    def text(self, bar: bool = False) -> str:
        """``<name> <done>/<total> <unit>  <field> <value> ...  (<elapsed>)``, with ``bar`` a bar of
        ``#`` before the count (when the total is known)."""
        count = f"{self.done}/{self.total}" if self.total is not None else str(self.done)
        if bar and self.total:
            filled = min(20, int(20 * self.done / self.total))
            count = f"[{'#' * filled}{'.' * (20 - filled)}] {count}"
        parts = [f"{self.name} {count}{' ' + self.unit if self.unit else ''}"]
        parts += [f"{key} {_figure(value)}" for key, value in self.fields.items()]
        return "  ".join(parts) + f"  ({elapsed_text(time.perf_counter() - self.started)})"

    def _show(self) -> None:
        global _live_line
        if self._closed:
            return
        now = time.perf_counter()
        shown = live()
        if now - self._plain_at >= self.interval:
            self._plain_at = now
            note(self.text(), echo=not shown)
        if shown and now - self._drawn_at >= LIVE_INTERVAL_S:
            self._drawn_at = now
            columns = shutil.get_terminal_size((100, 24)).columns
            _live_line = self.text(bar=True)[: max(columns - 1, 20)]
            _write(f"\r\033[K{_live_line}")

    def close(self, outcome: str = "") -> None:
        """Clear the live line and write the final line (``<text>``, or ``<name> <outcome> <elapsed>``)."""
        global _live_line
        with _lock:
            if self._closed:
                return
            self._closed = True
            if _live_line:
                _write("\r\033[K")
                _live_line = ""
            if outcome:
                note(f"{self.name} {outcome} {elapsed_text(time.perf_counter() - self.started)}")
            else:
                note(self.text())


def _figure(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# --- the command log ------------------------------------------------------------------------------


@dataclass
class _CommandLog:
    target: Path | None
    lines: list[str] = field(default_factory=list)
    dropped: int = 0


_log: _CommandLog | None = None


def record(line: str) -> None:
    """Keep ``line`` in the open command log (if any); nothing is shown."""
    log = _log
    if log is None:
        return
    with _lock:
        if len(log.lines) < MAX_LOG_LINES:
            log.lines.append(line)
        else:
            log.dropped += 1


class _LogRecords(logging.Handler):
    """Copies :mod:`logging` records into the command log."""

    def emit(self, entry: logging.LogRecord) -> None:
        try:
            message = entry.getMessage()
        except Exception:  # a malformed record must not end the command
            message = str(entry.msg)
        record(f"[{timestamp(entry.created)}] {entry.levelname} {entry.name}: {message}")


@contextmanager
def command_log(command_line: Sequence[str], target: str | os.PathLike[str] | None) -> Iterator[None]:
    """Keep a log of this command (its command line, progress lines and log records) for the output
    folder ``target``: :func:`write_log` writes it into the folder published there."""
    global _log
    previous = _log
    _log = _CommandLog(None if target is None else Path(target).resolve())
    record(f"[{timestamp()}] {shlex.join(command_line)}")
    record(f"[{timestamp()}] working folder {os.getcwd()}")
    handler = _LogRecords(logging.INFO)
    logging.getLogger().addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger().removeHandler(handler)
        _log = previous


def write_log(folder: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path | None:
    """Write the open command log as ``folder/LOG_NAME`` when it was opened for ``target``; return
    the file written (``None``: no log for that target)."""
    log = _log
    if log is None or log.target is None or Path(target).resolve() != log.target:
        return None
    with _lock:
        lines = list(log.lines)
        if log.dropped:
            lines.append(f"[{timestamp()}] ({log.dropped} more lines not kept)")
    path = Path(folder) / LOG_NAME
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
