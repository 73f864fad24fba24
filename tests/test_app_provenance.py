"""Provenance of results: command line and tool versions."""

from __future__ import annotations

import argparse
from importlib import metadata

from esl_hw.app.provenance import VERSIONED, provenance, tool_versions, version_text


def test_versions_are_the_installed_ones() -> None:
    versions = tool_versions()
    assert list(versions)[: len(VERSIONED)] == list(VERSIONED) and "iverilog" in versions
    assert versions["esl-hw"] == metadata.version("esl-hw")
    assert versions["numpy"] == metadata.version("numpy")
    assert version_text().splitlines()[0] == f"esl-hw {metadata.version('esl-hw')}"


def test_provenance_names_the_command_line() -> None:
    record = provenance(argparse.Namespace(argv=["eval", "MODEL", "--out", "X"]))
    assert record["command_line"] == ["esl-hw", "eval", "MODEL", "--out", "X"]
    assert record["versions"] == tool_versions()
