"""bench/stream.py: the Markdown table (the Verilator run is the bench; streaming itself is tested in
tests/test_sim_runner.py and tests/test_rtl_core.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_PATH = Path(__file__).resolve().parent.parent / "bench" / "stream.py"
_SPEC = importlib.util.spec_from_file_location("bench_stream", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)
markdown = bench.markdown


def report(fmax: float | None) -> dict:
    rows = [
        {"streamed": streamed, "latency_cycles": latency, "latency_p99": 900.0, "mismatches": 0}
        | {"cycles_between_results": between, "interval_min": 400.0, "interval_max": 1200.0}
        for streamed, latency, between in ((False, 800.0, 812.0), (True, 850.0, 500.0))
    ]
    return {
        "model": "m",
        "timesteps": 8,
        "lanes": 16,
        "samples": 100,
        "data": "d",
        "command": "c",
        "date": "today",
        "fmax_mhz": fmax,
        "fmax_source": "s" if fmax else None,
        "results": rows,
    }


def test_markdown_table_without_fmax() -> None:
    text = markdown(report(None))
    assert "| one at a time (wait for done) | 800.0 | 900 | 812.0 | 400 | 1200 | 0 |" in text
    assert "| streamed | 850.0 | 900 | 500.0 | 400 | 1200 | 0 |" in text
    assert "Fmax" not in text


def test_markdown_table_with_fmax_gives_inferences_per_second() -> None:
    text = markdown(report(100.0))
    assert "| streamed | 850.0 | 900 | 500.0 | 400 | 1200 | 200,000 | 0 |" in text
    assert "Fmax: 100.0 MHz (s)." in text
