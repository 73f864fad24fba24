"""Progress lines on stderr: plain timestamped lines off a terminal, a live line on one, silence when
quiet, and the command log written into the published output folder."""

from __future__ import annotations

import io
import logging
import re
import sys
from pathlib import Path

import pytest

from esl_hw import progress
from esl_hw.outputs import OUTPUT_MARKER, staged_folder

STAMP = r"\[\d\d:\d\d:\d\d\]"


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def use_stderr(monkeypatch, stream: io.StringIO) -> io.StringIO:
    """Make ``stream`` stderr (in the test body: pytest's capture resets stderr after fixtures)."""
    monkeypatch.setattr(sys, "stderr", stream)
    return stream


@pytest.fixture(autouse=True)
def loud():
    previous = progress.set_quiet(False)
    yield
    progress.set_quiet(previous)


class Clock:
    """A ``time.perf_counter`` the test moves forward."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(progress.time, "perf_counter", clock)
    return clock


def test_step_prints_start_and_end_with_elapsed(monkeypatch, clock) -> None:
    stderr = use_stderr(monkeypatch, io.StringIO())
    with progress.step("build: verilator") as shown:
        clock.now += 14.25
        shown.detail = "cached"
    lines = stderr.getvalue().splitlines()
    assert re.fullmatch(rf"{STAMP} build: verilator \.\.\.", lines[0]), lines
    assert re.fullmatch(rf"{STAMP} build: verilator done in 14\.2 s \(cached\)", lines[1]), lines
    assert len(lines) == 2


def test_step_outcome_and_failure(monkeypatch, clock) -> None:
    stderr = use_stderr(monkeypatch, io.StringIO())
    with progress.step("build: icarus") as shown:
        shown.outcome = "build: reused cached build icarus-abc"
    with pytest.raises(ValueError), progress.step("yosys"):
        clock.now += 125
        raise ValueError("boom")
    lines = stderr.getvalue().splitlines()
    assert lines[1].endswith("] build: reused cached build icarus-abc in 0.0 s")
    assert lines[3].endswith("] yosys failed after 2 min 05 s")


def test_elapsed_text() -> None:
    assert progress.elapsed_text(0.04) == "0.0 s"
    assert progress.elapsed_text(59.94) == "59.9 s"
    assert progress.elapsed_text(61) == "1 min 01 s"
    assert progress.elapsed_text(3 * 3600 + 7 * 60) == "3 h 07 min"


def test_counter_off_a_terminal_writes_rate_limited_plain_lines(monkeypatch, clock) -> None:
    stderr = use_stderr(monkeypatch, io.StringIO())
    with progress.Counter("cosim: icarus", total=20, unit="images", interval=10) as counter:
        for _ in range(9):  # 9 images in 4.5 s: no line yet
            clock.now += 0.5
            counter.update()
        assert stderr.getvalue() == ""
        clock.now += 6  # 10.5 s: one line
        counter.update()
        for _ in range(5):
            counter.update()
        clock.now += 3
        counter.set(20, mismatches=0)
    lines = stderr.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert re.fullmatch(rf"{STAMP} cosim: icarus 10/20 images  \(10\.5 s\)", lines[0]), lines
    assert re.fullmatch(rf"{STAMP} cosim: icarus 20/20 images  mismatches 0  \(13\.5 s\)", lines[1]), lines
    assert "\r" not in stderr.getvalue()


def test_counter_on_a_terminal_redraws_one_line_then_keeps_the_last(monkeypatch, clock) -> None:
    terminal = use_stderr(monkeypatch, Terminal())
    counter = progress.Counter("train", total=4, unit="it")
    for _ in range(4):
        clock.now += 0.2
        counter.update(loss=0.25)
    progress.note("a line in between")
    counter.close()
    text = terminal.getvalue()
    assert text.count("\r\033[K") >= 4
    assert "train [#####...............] 1/4 it  loss 0.25  (0.2 s)" in text
    assert "train [####################] 4/4 it" in text
    kept = [line for line in text.replace("\r\033[K", "\n").split("\n") if line]
    assert re.fullmatch(rf"{STAMP} train 4/4 it  loss 0.25  \(0\.8 s\)", kept[-1]), kept
    assert re.search(rf"\n{STAMP} a line in between\n", text.replace("\r\033[K", "\n"))
    assert progress.live()


def test_quiet_silences_everything_but_the_log(monkeypatch, clock, tmp_path: Path) -> None:
    terminal = use_stderr(monkeypatch, Terminal())
    progress.set_quiet(True)
    assert not progress.live()
    out = tmp_path / "out"
    with progress.command_log(["esl-hw", "sim", "m"], out), staged_folder(out) as staging:
        with progress.step("build: verilator"), progress.Counter("cosim", 2) as counter:
            counter.update(2)
        progress.note("one line")
        (staging / "sim.json").write_text("{}")
    assert terminal.getvalue() == ""
    log = (out / progress.LOG_NAME).read_text()
    assert "esl-hw sim m" in log.splitlines()[0]
    assert "build: verilator done in" in log and "cosim 2/2" in log and "one line" in log


def test_command_log_goes_only_into_its_own_folder(tmp_path: Path) -> None:
    out, other = tmp_path / "out", tmp_path / "other"
    with progress.command_log(["esl-hw", "demo", "--out", str(out)], out):
        logging.getLogger("esl_hw.test").warning("a log record")
        with staged_folder(other) as staging:
            (staging / "a").write_text("")
        with staged_folder(out) as staging:
            (staging / "summary.json").write_text("{}")
    assert not (other / progress.LOG_NAME).exists()
    log = (out / progress.LOG_NAME).read_text()
    assert re.search(rf"{STAMP} WARNING esl_hw.test: a log record", log)
    assert progress.LOG_NAME in (out / OUTPUT_MARKER).read_text()
    with staged_folder(tmp_path / "later") as staging:  # no log open: none written
        (staging / "a").write_text("")
    assert not (tmp_path / "later" / progress.LOG_NAME).exists()


def test_no_log_without_a_command_log(tmp_path: Path) -> None:
    progress.record("nowhere")
    assert progress.write_log(tmp_path, tmp_path) is None
