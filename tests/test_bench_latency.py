"""bench/latency.py: the target rule, the table and the rows kept between runs (synthesis is the bench)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parent.parent / "bench" / "latency.py"
_SPEC = importlib.util.spec_from_file_location("bench_latency", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)


def make_row(**changes) -> dict:
    row = {
        "name": "r",
        "model": "bench/models/m",
        "dataset": "idx:mnist",
        "accuracy": 0.9813,
        "accuracy_images": 10000,
        "timesteps": 4,
        "synapses": 10,
        "target": "LFE5U-85F",
        "lanes": 32,
        "constraint_mhz": 70.0,
        "fmax_mhz": 74.0,
        "fmax_margin": round(74.0 / 70.0, 3),
        "cycles_per_inference": 1000.0,
        "cycles_source": "verilator co-simulation",
        "latency_us": round(1000.0 / 70.0, 3),
        "latency_at_fmax_us": round(1000.0 / 74.0, 3),
        "inferences_per_s": round(70e6 / 1000.0, 1),
        "energy_uj": 1.0,
        "lut": 30000,
        "ff": 20000,
        "ebr": 200,
        "rewiring": True,
        "command": "esl-hw synth ...",
        "date": "2026-12-05",
    }
    return {**row, **changes}


def test_within_target_needs_accuracy_latency_and_margin() -> None:
    assert bench.within_target(make_row())
    assert not bench.within_target(make_row(accuracy=0.9799))
    assert not bench.within_target(make_row(latency_us=15.01))
    assert not bench.within_target(make_row(fmax_margin=1.049))
    assert not bench.within_target(make_row(fmax_margin=None, fmax_mhz=None))


def test_markdown_has_every_row_and_the_published_designs() -> None:
    results = {
        "samples": 100,
        "first_date": "2026-12-05",
        "last_date": "2026-12-05",
        "load_start": "1.00, 1.00, 1.00",
        "rows": [
            make_row(load_average="0.50, 0.40, 0.30"),
            make_row(name="s", accuracy=0.97, fmax_mhz=None, latency_at_fmax_us=None),
        ],
        "prior_art": list(bench.PRIOR_ART),
    }
    text = bench.markdown(results)
    table = [line for line in text.splitlines() if line.startswith("| `bench/models/m`")]
    assert len(table) == 2
    assert "| 98.13% | 32 | 70 | 74.00 | 1,000 | 14.29 (13.51) | 70,000 |" in table[0]
    assert table[0].endswith("| met |") and table[1].endswith("| not met |")
    assert "Skydiver" in text and "Spiker+" in text
    sources = [line for line in text.splitlines() if line.startswith("- ")]
    assert "load average at its start 0.50, 0.40, 0.30)" in sources[0]
    assert "load average at its start not recorded)" in sources[1]


def test_rows_not_remeasured_are_kept(tmp_path: Path) -> None:
    (tmp_path / "latency.json").write_text(json.dumps({"rows": [make_row(name="kept")]}))
    assert list(bench.load_previous(tmp_path / "latency.json")) == ["kept"]
    assert bench.load_previous(tmp_path / "absent.json") == {}


def test_adopt_merges_rows_of_a_side_by_side_run_without_measuring(tmp_path: Path, monkeypatch) -> None:
    first, second = (name for name, *_ in bench.ROWS[:2])
    out, other = tmp_path / "out", tmp_path / "other"
    out.mkdir()
    other.mkdir()
    (out / "latency.json").write_text(json.dumps({"rows": [make_row(name=first, lut=1)]}))
    (other / "latency.json").write_text(json.dumps({"rows": [make_row(name=second, lut=2)]}))

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured a row")

    monkeypatch.setattr(bench, "measure", no_measuring)
    argv = [
        "latency.py",
        "--data",
        str(tmp_path),
        "--out",
        str(out),
        "--only",
        "--adopt",
        str(other / "latency.json"),
    ]
    monkeypatch.setattr("sys.argv", argv)
    bench.main()
    rows = json.loads((out / "latency.json").read_text())["rows"]
    assert [(row["name"], row["lut"]) for row in rows] == [(first, 1), (second, 2)]
    assert second in (out / "latency.md").read_text()


def test_rows_of_the_page_pass_the_row_check() -> None:
    assert bench.check_row(make_row()) == make_row()
    assert bench.check_row(make_row(fmax_mhz=None, fmax_margin=None, latency_at_fmax_us=None))


def _adopt_refused(folder: Path, adopted: Path, monkeypatch) -> None:
    argv = ["latency.py", "--data", str(folder), "--out", str(folder), "--only", "--adopt", str(adopted)]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as exit_:
        bench.main()
    assert exit_.value.code == 2
    assert not (folder / "latency.json").exists()


def test_adopting_a_missing_file_is_refused(tmp_path: Path, monkeypatch) -> None:
    _adopt_refused(tmp_path, tmp_path / "none.json", monkeypatch)


NOT_LATENCY_JSON = [
    "not json",
    "[1]",
    json.dumps({"no rows": []}),
    json.dumps({"rows": [{"x": 1}]}),
    json.dumps({"rows": [1]}),
    json.dumps({"rows": [{"name": "r"}]}),
    json.dumps({"rows": [make_row(lut="many")]}),
    json.dumps({"rows": [make_row(fmax_mhz=True)]}),
    json.dumps({"rows": [{key: value for key, value in make_row().items() if key != "latency_us"}]}),
]


@pytest.mark.parametrize("text", NOT_LATENCY_JSON)
def test_adopting_a_file_of_something_else_is_refused(tmp_path: Path, monkeypatch, text: str) -> None:
    other = tmp_path / "other.json"
    other.write_text(text)
    _adopt_refused(tmp_path, other, monkeypatch)
