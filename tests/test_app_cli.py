"""The command line's contract for bad input: one line on stderr, exit status 2, nothing written."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import random_model

from esl_hw.app.cli import HANDLERS, build_parser, handler_name, main
from esl_hw.artifact_io import save_model

PROGRESS_LINE = re.compile(r"\[\d\d:\d\d:\d\d\] ")


def fails_cleanly(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    """Exit status 2 and one error line on stderr, the last one (after progress lines, if any)."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.endswith("\n"), err
    lines = [line for line in err.splitlines() if not PROGRESS_LINE.match(line)]
    assert len(lines) == 1 and err.splitlines()[-1] == lines[0], err
    assert lines[0].startswith("esl-hw: error: ") and message in lines[0], err


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return save_model(random_model(np.random.default_rng(3), (784, 16, 10), timesteps=3), tmp_path / "model")


def test_missing_and_malformed_artifacts(capsys, tmp_path: Path, model_dir: Path) -> None:
    fails_cleanly(capsys, ["eval", str(tmp_path / "nothing")], "is not a folder")
    header = yaml.safe_load((model_dir / "model.yaml").read_text())
    header["format_version"] = 7
    (model_dir / "model.yaml").write_text(yaml.safe_dump(header))
    fails_cleanly(capsys, ["sim", str(model_dir)], "format_version 7 is not supported")
    fails_cleanly(capsys, ["rtl", str(model_dir), "--out", str(tmp_path / "rtl")], "format_version 7")
    assert not (tmp_path / "rtl").exists()


def test_dataset_path_without_files(capsys, tmp_path: Path, model_dir: Path) -> None:
    (tmp_path / "data").mkdir()
    fails_cleanly(capsys, ["eval", str(model_dir), "--data", str(tmp_path / "data")], "lacks train-images")


def test_usage_errors_are_one_line(capsys, model_dir: Path) -> None:
    fails_cleanly(capsys, ["sim", str(model_dir), "--samples", "0"], "expected a positive integer")
    fails_cleanly(capsys, ["sim", str(model_dir), "--simulator", "modelsim"], "invalid choice")
    fails_cleanly(capsys, ["frobnicate"], "invalid choice")
    fails_cleanly(capsys, ["rtl", str(model_dir)], "--out")
    fails_cleanly(capsys, ["sim", str(model_dir), "--e-sop", "-1"], "non-negative energy in pJ")
    fails_cleanly(capsys, ["demo", "--out", "x", "--e-mem", "lots"], "expected an energy in pJ")


def test_sim_refuses_to_stream_into_a_core_without_streaming(capsys, tmp_path: Path, model_dir: Path) -> None:
    out = tmp_path / "sim"
    argv = ["sim", str(model_dir), "--stream", "--no-streaming", "--out", str(out)]
    message = "cannot stream the images (--stream): the core is built without streaming (--no-streaming)"
    fails_cleanly(capsys, argv, message)
    assert not out.exists()


def test_streaming_is_an_option_of_every_command_that_builds_a_core(model_dir: Path) -> None:
    parser = build_parser()
    for command in (["rtl", str(model_dir), "--out", "x"], ["sim", str(model_dir)],
                    ["compare", str(model_dir), "--out", "x"],
                    ["synth", str(model_dir), "--target", "ice40-up5k", "--out", "x"]):  # fmt: skip
        assert parser.parse_args(command).streaming is None  # the default (synth: chosen)
        assert parser.parse_args([*command, "--no-streaming"]).streaming is False
        assert parser.parse_args([*command, "--streaming"]).streaming is True


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: {hiden: [10]}\n", "hiden"),
        ("sparsity: {density: 1.5}\n", "density"),
        ("sparsity: {density: 0}\n", "density"),
        ("colour: blue\n", "colour"),
        ("model: [unclosed\n", "config"),
    ],
)
def test_bad_training_configs_write_nothing(capsys, tmp_path: Path, text: str, message: str) -> None:
    config = write_config(tmp_path, text)
    fails_cleanly(capsys, ["train", str(config), "--out", str(tmp_path / "run")], message)
    assert not (tmp_path / "run").exists()


def test_train_device_flag(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    config = write_config(tmp_path, "train: {epochs: 1}\n")
    out = ["--out", str(tmp_path / "run")]
    fails_cleanly(capsys, ["train", str(config), *out, "--device", "tpu"], "invalid choice")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    fails_cleanly(capsys, ["train", str(config), *out, "--device", "cuda"], "torch sees no CUDA GPU")
    assert not (tmp_path / "run").exists()


def test_existing_output_is_not_overwritten(capsys, tmp_path: Path, model_dir: Path) -> None:
    out = tmp_path / "demo"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    fails_cleanly(capsys, ["demo", "--out", str(out)], "--force")
    assert (out / "keep.txt").read_text() == "mine"


def test_help_works_for_every_subcommand() -> None:
    for command in ("train", "export", "eval", "rtl", "sim", "demo"):
        done = subprocess.run(
            [sys.executable, "-m", "esl_hw", command, "--help"], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0 and "usage: esl-hw " + command in done.stdout


def test_every_default_is_shown_in_help() -> None:
    """An option with a default (or behaviour when left out) says so in its help text."""
    parser = build_parser()
    (commands,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    silent = []
    for name, command in commands.choices.items():
        for action in command._actions:
            if not action.option_strings or action.required or action.nargs == 0:
                continue  # positionals, required options and flags have no default to show
            if "default" not in (action.help or ""):
                silent.append(f"{name} {action.option_strings[0]}")
    assert silent == []


def test_every_subcommand_has_a_handler() -> None:
    import argparse
    import importlib

    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(HANDLERS) == set(subparsers.choices)
    for command, module in HANDLERS.items():
        assert callable(getattr(importlib.import_module(f"esl_hw.app.{module}"), handler_name(command)))


def test_eval_prints_reference_accuracy(capsys, model_dir: Path) -> None:
    assert main(["eval", str(model_dir)]) == 0
    out = capsys.readouterr().out
    assert "int_accuracy" in out and "embedded" in out


def _user_folder(path: Path) -> dict[str, str]:
    path.mkdir()
    files = {"notes.txt": "mine", "results.csv": "1,2,3"}
    for name, text in files.items():
        (path / name).write_text(text)
    return files


def _unchanged(path: Path, files: dict[str, str]) -> bool:
    return {p.name: p.read_text() for p in path.iterdir()} == files


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_sim_and_eval_never_replace_a_folder_of_user_files(capsys, tmp_path: Path, model_dir, force) -> None:
    out = tmp_path / "out"
    files = _user_folder(out)
    fails_cleanly(
        capsys, ["sim", str(model_dir), "--out", str(out), *force], "--force" if not force else "did not"
    )
    fails_cleanly(
        capsys, ["eval", str(model_dir), "--out", str(out), *force], "--force" if not force else "did not"
    )
    assert _unchanged(out, files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "out"]


def test_force_never_replaces_user_files_or_the_input(capsys, tmp_path: Path, model_dir: Path) -> None:
    out = tmp_path / "user"
    files = _user_folder(out)
    fails_cleanly(capsys, ["rtl", str(model_dir), "--out", str(out), "--force"], "esl-hw did not write")
    fails_cleanly(capsys, ["export", str(model_dir), "--out", str(out), "--force"], "esl-hw did not write")
    config = write_config(tmp_path, "train: {epochs: 1}\n")
    fails_cleanly(capsys, ["train", str(config), "--out", str(out), "--force"], "esl-hw did not write")
    assert _unchanged(out, files)
    before = {p.name: p.read_bytes() for p in model_dir.iterdir()}
    for target in (model_dir, tmp_path):
        fails_cleanly(capsys, ["rtl", str(model_dir), "--out", str(target), "--force"], "the input")
        fails_cleanly(capsys, ["sim", str(model_dir), "--out", str(target), "--force"], "the input")
    fails_cleanly(capsys, ["train", str(config), "--out", str(tmp_path), "--force"], "the input")
    assert {p.name: p.read_bytes() for p in model_dir.iterdir()} == before


def test_eval_out_writes_a_report_and_force_replaces_it(capsys, tmp_path: Path, model_dir: Path) -> None:
    import json

    out = tmp_path / "eval"
    assert main(["eval", str(model_dir), "--out", str(out)]) == 0
    first = json.loads((out / "eval.json").read_text())
    assert first["test_images"] == 1000 and 0 <= first["int_accuracy"] <= 1
    fails_cleanly(capsys, ["eval", str(model_dir), "--out", str(out)], "--force")
    assert main(["eval", str(model_dir), "--out", str(out), "--force"]) == 0
    second = json.loads((out / "eval.json").read_text())
    assert first.pop("provenance")["command_line"] == ["esl-hw", "eval", str(model_dir), "--out", str(out)]
    assert second.pop("provenance")["versions"]["esl-hw"] != "not installed"
    assert second == first


def test_a_folder_appearing_at_out_during_the_command_is_kept(
    capsys, tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import esl_hw.rtl_gen as rtl_gen

    out = tmp_path / "rtl"
    emit = rtl_gen.emit_verilog

    def emit_while_someone_writes(*args, **kwargs):
        out.mkdir()
        (out / "theirs.v").write_text("module theirs; endmodule")
        return emit(*args, **kwargs)

    monkeypatch.setattr(rtl_gen, "emit_verilog", emit_while_someone_writes)
    fails_cleanly(capsys, ["rtl", str(model_dir), "--out", str(out)], "result kept in")
    assert sorted(p.name for p in out.iterdir()) == ["theirs.v"]
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("rtl.result-")]
    assert len(kept) == 1 and (kept[0] / "snn_core.v").is_file()


@pytest.mark.parametrize("timeout", ["nan", "inf", "-5", "0", "soon"])
def test_run_timeout_must_be_finite_and_positive(capsys, model_dir: Path, timeout: str) -> None:
    fails_cleanly(capsys, ["run", str(model_dir), "--port", "/dev/null", "--timeout", timeout], "--timeout")


def test_bare_command_prints_help_and_version_lists_the_tools(capsys) -> None:
    assert main([]) == 0
    assert "usage: esl-hw" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines]
    assert names[:4] == ["esl-hw", "numpy", "torch", "amaranth"] and "cocotb" in names and "iverilog" in names
    assert lines[0] != "esl-hw not installed"


def test_verbose_is_accepted_before_and_after_the_subcommand(capsys, model_dir: Path) -> None:
    from esl_hw.app.cli import build_parser

    for argv in (["-v", "eval", str(model_dir)], ["eval", str(model_dir), "-v"]):
        assert build_parser().parse_args(argv).verbose is True
    assert build_parser().parse_args(["eval", str(model_dir)]).verbose is False


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_silences_progress_but_not_results_or_errors(capsys, tmp_path: Path, model_dir, where) -> None:
    out = tmp_path / "rtl"
    argv = ["rtl", str(model_dir), "--out", str(out)]
    argv = ["-q", *argv] if where == "before" else [*argv, "--quiet"]
    assert build_parser().parse_args(argv).quiet is True
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and f"Verilog written to {out}" in captured.out
    log = (out / "esl-hw.log").read_text()
    assert " ".join(["esl-hw", *argv]) in log.splitlines()[0], "the log starts with the command line"
    assert "rtl: Verilog of the 1-lane core done in" in log, "the log keeps the progress -q silenced"
    fails_cleanly(capsys, [*argv[:-1], "-q"] if where == "after" else argv, "pass --force")


def test_progress_goes_to_stderr_and_into_the_log(capsys, tmp_path: Path, model_dir: Path) -> None:
    out = tmp_path / "rtl"
    assert main(["rtl", str(model_dir), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 2 and all(PROGRESS_LINE.match(line) for line in lines), lines
    assert lines[0].endswith("rtl: Verilog of the 1-lane core ...")
    assert re.search(r"rtl: Verilog of the 1-lane core done in \d+\.\d s$", lines[1]), lines
    assert "[" not in captured.out, "stdout carries results only"
    log = (out / "esl-hw.log").read_text().splitlines()
    assert log[0].endswith(f"esl-hw rtl {model_dir} --out {out}") and lines[1] in log
    assert "esl-hw.log" in (out / ".esl-hw-output.json").read_text()
    assert build_parser().parse_args(["rtl", str(model_dir), "--out", str(out)]).quiet is False


def test_command_line_overrides_obey_the_config_limits(capsys, tmp_path: Path) -> None:
    fails_cleanly(capsys, ["demo", "--out", str(tmp_path / "d"), "--hidden", "99999999"], "model.hidden")
    assert not (tmp_path / "d").exists()
