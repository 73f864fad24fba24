"""Compile cache wrapper: runtime sources outside the build folder compile once, model sources always."""

from __future__ import annotations

import sys
from pathlib import Path

from esl_hw.sim import objcache

FAKE_COMPILER = """
import sys
from pathlib import Path
args = sys.argv[1:]
output = Path(args[args.index("-o") + 1])
output.write_text("object of " + args[-1])
output.with_suffix(".d").write_text("deps")
counter = Path(args[-1]).with_suffix(".count")
counter.write_text(str(int(counter.read_text()) + 1 if counter.exists() else 1))
"""


def compile_command(tmp_path: Path, source: Path, output: str) -> list[str]:
    compiler = tmp_path / "fakecc.py"
    compiler.write_text(FAKE_COMPILER)
    return [sys.executable, str(compiler), "-Os", "-c", "-o", output, str(source)]


def compiles(source: Path) -> int:
    counter = source.with_suffix(".count")
    return int(counter.read_text()) if counter.exists() else 0


def test_runtime_sources_compile_once_across_build_folders(tmp_path) -> None:
    runtime = tmp_path / "include" / "verilated.cpp"
    runtime.parent.mkdir()
    runtime.write_text("int x;")
    cache = tmp_path / "cache"
    for name in ("build1", "build2"):
        work = tmp_path / name
        work.mkdir()
        (work / "Vtop.h").write_text("class Vtop;")
        assert objcache.run(compile_command(tmp_path, runtime, "verilated.o"), str(cache), work) == 0
        assert (work / "verilated.o").read_text() == f"object of {runtime}"
        assert (work / "verilated.d").read_text() == "deps"
    assert compiles(runtime) == 1


def test_changed_source_or_header_misses_the_cache(tmp_path) -> None:
    runtime = tmp_path / "main.cpp"
    runtime.write_text("int main;")
    work = tmp_path / "build"
    work.mkdir()
    header = work / "Vtop.h"
    header.write_text("class Vtop;")
    command = compile_command(tmp_path, runtime, "main.o")
    objcache.run(command, str(tmp_path / "cache"), work)
    header.write_text("class Vtop { int port; };")
    objcache.run(command, str(tmp_path / "cache"), work)
    runtime.write_text("int main2;")
    objcache.run(command, str(tmp_path / "cache"), work)
    assert compiles(runtime) == 3


def test_model_sources_and_uncached_runs_always_compile(tmp_path) -> None:
    work = tmp_path / "build"
    work.mkdir()
    model = work / "Vtop__ALL.cpp"
    model.write_text("int y;")
    for _ in range(2):
        objcache.run(compile_command(tmp_path, model, "Vtop__ALL.o"), str(tmp_path / "cache"), work)
    outside = tmp_path / "other.cpp"
    outside.write_text("int z;")
    for _ in range(2):
        objcache.run(compile_command(tmp_path, outside, "other.o"), None, work)
    assert compiles(model) == 2 and compiles(outside) == 2
    assert not (tmp_path / "cache").exists()


def test_wrapper_command_runs_this_module() -> None:
    command = objcache.wrapper_command()
    assert command.startswith(sys.executable) and command.endswith("objcache.py")
