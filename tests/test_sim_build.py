"""The simulator builds of esl_hw.sim.build: the key of a build (its sources, simulator, run mode
and options) and the plain Verilator executable of the ``binary`` run mode.

No simulator runs here (``subprocess.call`` replaced); the build cache is tested in
tests/test_sim_build_cache.py and real builds in tests/test_sim_runner.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cache_support import key_of

from esl_hw.errors import EslError
from esl_hw.sim import build, objcache


def test_unknown_simulators_and_run_modes_are_refused() -> None:
    with pytest.raises(EslError, match="unknown simulator 'questa' \\(expected one of verilator, icarus\\)"):
        build.check_simulator("questa")
    with pytest.raises(EslError, match="unknown run mode 'vpi'"):
        build.check_mode("verilator", "vpi")
    with pytest.raises(EslError, match="run mode 'binary' needs Verilator"):
        build.check_mode("icarus", "binary")
    build.check_mode("verilator", "binary")


def test_the_verilator_environment_is_set_then_restored(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(build, "verilator_root", lambda: tmp_path / "verilator")
    before = dict(os.environ)
    with build.simulator_environment("verilator", object_cache=tmp_path / "objects"):
        assert os.environ["VERILATOR_ROOT"] == str(tmp_path / "verilator")
        assert os.environ["PATH"].startswith(f"{tmp_path / 'verilator' / 'bin'}{os.pathsep}")
        assert os.environ["MAKEFLAGS"] == build.VERILATOR_MAKEFLAGS
        assert os.environ[objcache.CACHE_ENV] == str(tmp_path / "objects") and os.environ["OBJCACHE"]
    assert dict(os.environ) == before


def test_a_binary_build_is_built_by_build_binary(tmp_path: Path, monkeypatch) -> None:
    calls: list[tuple] = []
    monkeypatch.setattr(build, "build_binary", lambda *arguments: calls.append(arguments))
    build.build_simulation("verilator", [tmp_path / "top.v"], "top", tmp_path, mode="binary")
    assert calls == [([tmp_path / "top.v"], "top", tmp_path)]
    assert build.binary_path(tmp_path, "top") == tmp_path / "sim" / "top"


def test_the_key_follows_the_verilog_text_and_the_simulator(tmp_path: Path) -> None:
    assert key_of(tmp_path) == key_of(tmp_path), "the same text in another folder is the same build"
    assert key_of(tmp_path, "module top; wire a; endmodule\n") != key_of(tmp_path)
    assert key_of(tmp_path, simulator="verilator") != key_of(tmp_path)


def test_the_key_follows_the_run_mode_its_arguments_and_its_main(tmp_path: Path, monkeypatch) -> None:
    binary = key_of(tmp_path, simulator="verilator", mode="binary")
    assert binary != key_of(tmp_path, simulator="verilator")
    monkeypatch.setattr(build, "VERILATOR_BINARY_ARGS", (*build.VERILATOR_BINARY_ARGS, "-O2"))
    assert key_of(tmp_path, simulator="verilator", mode="binary") != binary
    monkeypatch.undo()
    cocotb = key_of(tmp_path, simulator="verilator")
    monkeypatch.setattr(build, "VERILATOR_BINARY_MAKE_ARGS", ("OPT_FAST=-Os",))
    assert key_of(tmp_path, simulator="verilator", mode="binary") != binary
    assert key_of(tmp_path, simulator="verilator") == cocotb, "make arguments of binary builds only"
    monkeypatch.undo()
    monkeypatch.setattr(build, "BINARY_MAIN", build.BINARY_MAIN + "// another main\n")
    assert key_of(tmp_path, simulator="verilator", mode="binary") != binary


def test_build_binary_verilates_without_vpi_or_timing_then_makes(tmp_path: Path, monkeypatch) -> None:
    commands: list[list[str]] = []

    def call(command, stdout, stderr) -> int:
        commands.append(command)
        return 0

    monkeypatch.setattr(build.subprocess, "call", call)
    build.build_binary([tmp_path / "core.v", tmp_path / "top.v"], "top", tmp_path)
    verilate, make = commands
    assert verilate[:3] == ["verilator", "--cc", "--exe"] and f"-D{build.CLOCK_INPUT}" in verilate
    assert not {"--vpi", "--public-flat-rw", "--timing"} & set(verilate)
    assert verilate[-3:] == [
        str(tmp_path / build.BINARY_MAIN_FILE),
        str(tmp_path / "core.v"),
        str(tmp_path / "top.v"),
    ]
    assert (tmp_path / build.BINARY_MAIN_FILE).read_text() == build.BINARY_MAIN
    assert make[0] == "make" and int(make[2]) >= 1
    assert make[-3:] == ["-f", "Vtop.mk", "OPT_FAST=-O2"], "the per-cycle code at -O2, not -Os"
    assert verilate[verilate.index("--output-split-cfuncs") + 1] == "3000"
    assert "$ verilator --cc" in (tmp_path / "build.log").read_text()


def test_a_failing_binary_build_is_an_error_with_the_log(tmp_path: Path, monkeypatch) -> None:
    def call(command, stdout, stderr) -> int:
        stdout.write("%Error: top.v:3: syntax error\n")
        return 1

    monkeypatch.setattr(build.subprocess, "call", call)
    with pytest.raises(EslError, match="(?s)verilator failed \\(exit status 1\\).*syntax error"):
        build.build_binary([tmp_path / "top.v"], "top", tmp_path)
