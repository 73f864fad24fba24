"""Compile cache for the model-independent part of a Verilator build (its ``OBJCACHE`` hook).

Verilator's makefiles run every compile as ``$(OBJCACHE) c++ … -c -o X.o SOURCE.cpp``. Run as that
wrapper, this script serves the objects of sources *outside* the build folder (Verilator's
runtime library and cocotb's ``verilator.cpp`` main) from a cache folder, keyed by the compile
command, the source text and the generated ``Vtop.h`` (the harness top has no ports, so it is the
same for every model). Model sources, inside the build folder, are always compiled. Those
runtime objects are about three quarters of a build's compile time (~20 s of ~26 s here).

Usage (what :func:`esl_hw.sim.runner.run_cosim` sets up): environment ``OBJCACHE`` =
``<python> <this file>`` and ``ESL_OBJCACHE_DIR`` = the cache folder.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CACHE_ENV = "ESL_OBJCACHE_DIR"


def wrapper_command() -> str:
    """The ``OBJCACHE`` value that runs this file with the current interpreter."""
    return " ".join(shlex.quote(part) for part in (sys.executable, str(Path(__file__).resolve())))


def _output(command: list[str], source: str) -> Path:
    if "-o" in command[:-1]:
        return Path(command[command.index("-o") + 1])
    return Path(Path(source).stem + ".o")


def cache_key(command: list[str], source: Path, work: Path) -> str:
    """Hash of the compile command, the source text and the build folder's ``Vtop.h``."""
    digest = hashlib.sha256("\0".join(command).encode())
    digest.update(source.read_bytes())
    header = work / "Vtop.h"
    if header.is_file():
        digest.update(header.read_bytes())
    return digest.hexdigest()[:24]


#: Deadline of one C++ compile, seconds (a large Verilated model compiles in well under a minute).
COMPILE_TIMEOUT_S = 3600.0


def _compile(command: list[str], work: Path) -> int:
    """Run the compiler; a compile that outlives :data:`COMPILE_TIMEOUT_S` is killed (status 124)."""
    try:
        return subprocess.call(command, cwd=work, timeout=COMPILE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return 124


def run(command: list[str], cache_dir: str | None, work: Path) -> int:
    """Compile with ``command`` (a compiler invocation), through the cache when it applies."""
    sources = [argument for argument in command if argument.endswith((".cpp", ".cc"))]
    if not cache_dir or "-c" not in command or len(sources) != 1:
        return _compile(command, work)
    source = Path(sources[0])
    resolved = (work / source).resolve()
    if resolved.is_relative_to(work.resolve()) or not resolved.is_file():
        return _compile(command, work)
    output = _output(command, sources[0])
    depend = output.with_suffix(".d")
    entry = Path(cache_dir) / cache_key(command, resolved, work)
    cached_object, cached_depend = entry / "object.o", entry / "object.d"
    if cached_object.is_file():
        shutil.copyfile(cached_object, work / output)
        if cached_depend.is_file():
            shutil.copyfile(cached_depend, work / depend)
        return 0
    status = _compile(command, work)
    if status == 0 and (work / output).is_file():
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".entry-", dir=cache_dir))
        shutil.copyfile(work / output, staging / "object.o")
        if (work / depend).is_file():
            shutil.copyfile(work / depend, staging / "object.d")
        try:
            os.replace(staging, entry)
        except OSError:  # another build stored the same entry first
            shutil.rmtree(staging, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:], os.environ.get(CACHE_ENV), Path.cwd()))
