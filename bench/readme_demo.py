"""Write the README's demo table from a fresh ``esl-hw demo`` run.

Usage::

    python bench/readme_demo.py [--readme README.md] [--check]

Runs ``esl-hw demo --out demo-out`` (the built-in config on the embedded MNIST subset) in a
temporary folder, with an empty build cache so the time includes the Verilator build, and writes
what it printed between the markers :data:`START` and :data:`END` of the README, together with the
torch version, the CPU (its model and the kernels torch picks for it: float training gives other
figures on other kernels), the load average before the run and the wall time. ``--check`` writes nothing and
exits 1 when the README's table differs from the fresh one in any row but the seconds.
``tests/test_readme.py`` runs the same comparison in the test suite.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START = "<!-- demo-table: written by bench/readme_demo.py, checked by tests/test_readme.py -->"
END = "<!-- /demo-table -->"
#: rows whose value is a time: they differ from run to run and are not compared
TIMED_ROWS = ("total seconds",)
DEMO_TIMEOUT_S = 1800


def run_demo(workdir: Path) -> tuple[str, float]:
    """Run the default demo in ``workdir`` (an empty build cache inside it); return its table
    (stdout) and its wall time in seconds."""
    env = {**os.environ, "ESL_HW_CACHE": str(workdir / "cache"), "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "esl_hw", "demo", "--out", "demo-out"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"esl-hw demo failed ({done.returncode}): {done.stderr[-2000:]}")
    return table_of(done.stdout), seconds


def table_of(stdout: str) -> str:
    """The demo's table: from its ``esl-hw demo:`` title line to the last line printed."""
    lines = stdout.rstrip("\n").splitlines()
    for index, line in enumerate(lines):
        if line.startswith("esl-hw demo:"):
            return "\n".join(lines[index:])
    raise ValueError("no 'esl-hw demo:' table in the demo's output")


def rows_of(table: str) -> dict[str, str]:
    """``{label: value}`` of a demo table (label and value are separated by two or more spaces),
    without the title, the rule and the rows of :data:`TIMED_ROWS`."""
    rows = {}
    for line in table.splitlines()[1:]:
        if set(line.strip()) <= {"-"}:
            continue
        label, _, value = line.partition("  ")
        if label.strip() not in TIMED_ROWS:
            rows[label.strip()] = value.strip()
    return rows


def cpu_signature() -> str:
    """This machine's CPU as the README names it: its model (``/proc/cpuinfo``; the machine type
    elsewhere) and the kernels torch picks for it (``AVX512``, ``AVX2``, ...)."""
    import torch

    model = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}; torch's {torch.backends.cpu.get_cpu_capability()} kernels"


def block(table: str, seconds: float, load: float) -> str:
    """The README text between the markers."""
    import torch

    return (
        f"What the demo printed in a fresh run (torch {torch.__version__}, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPU cores [{cpu_signature()}], load average "
        f"{load:.2f} before the "
        f"run; {seconds:.0f} s in all, Verilator build included; the RTL and the reference are scored "
        "on the same co-simulated images):\n\n```\n" + table + "\n```"
    )


def readme_block(text: str) -> str:
    """The text between :data:`START` and :data:`END` of the README ``text``."""
    if START not in text or END not in text:
        raise ValueError("the README has no demo-table markers")
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n")


def readme_table(text: str) -> str:
    """The fenced demo table inside the README's block."""
    inner = readme_block(text)
    return inner.split("```\n", 1)[1].split("\n```", 1)[0]


def readme_torch(text: str) -> str:
    """The torch version the README's table was made with."""
    return readme_block(text).split("(torch ", 1)[1].split(",", 1)[0]


def readme_cpu(text: str) -> str:
    """The CPU the README's table was made on (:func:`cpu_signature`; empty if not recorded)."""
    inner = readme_block(text)
    return inner.split("CPU cores [", 1)[1].split("]", 1)[0] if "CPU cores [" in inner else ""


def replace_block(text: str, new_block: str) -> str:
    """``text`` with the block between the markers replaced by ``new_block``."""
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    return f"{before}{START}\n{new_block}\n{END}{after}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=Path(__file__).resolve().parents[1] / "README.md")
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on a difference")
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="esl-readme-demo-") as workdir:
        table, seconds = run_demo(Path(workdir))
    print(table)
    if args.check:
        same = rows_of(readme_table(text)) == rows_of(table)
        print("README table matches" if same else "README table differs from the fresh demo")
        return 0 if same else 1
    args.readme.write_text(replace_block(text, block(table, seconds, load)))
    print(f"wrote the demo table into {args.readme} (load average {load:.2f}, {seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
