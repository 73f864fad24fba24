"""Latency benchmark: MNIST models on the LFE5U-85F, post-route, against the published FPGA SNNs.

Each row is one committed model artifact at one lane count and one clock constraint:

1. accuracy: the integer reference (bit-exact with the RTL) on every test image of ``--data``;
2. cycles per inference: a bit-exact Verilator co-simulation of the first ``--samples`` test images
   of ``--data`` (any mismatch fails the row);
3. resources and Fmax: :func:`esl_hw.fpga.synthesize` (Yosys + nextpnr) at the constraint, whole core
   with the rewiring unit.

``latency_us`` = cycles / constraint: the time an inference takes on a clock the placed design meets
with margin (a row is "within target" when Fmax >= 1.05 x the constraint); ``latency_at_fmax_us`` =
cycles / Fmax is the figure ``esl-hw synth`` prints. ``inferences_per_s`` = 10^6 / ``latency_us`` (one
inference in flight at a time). Any row is reproduced by
``esl-hw synth MODEL --target ecp5-85k --lanes L --freq F --data MNIST --samples N``.

    python bench/latency.py --data ../shared/data/mnist [--only NAME ...] [--samples 100]

writes docs/benchmarks/latency.json and .md; rows not named by ``--only`` are kept from the last run.
Rows measured side by side (each process with its own ``--out`` and ``--work``) are merged with

    python bench/latency.py --data ../shared/data/mnist --only --adopt OUT1/latency.json OUT2/latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from esl_hw.artifact_io import load_model
from esl_hw.datasets import load_dataset
from esl_hw.errors import EslError
from esl_hw.reference import predict

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "benchmarks"
TARGET = "ecp5-85k"
#: the margin a row's Fmax must have over its constraint to count
FMAX_MARGIN = 1.05
#: the issue's latency target for a >= 98 % MNIST model, in µs
LATENCY_TARGET_US = 15.0
ACCURACY_TARGET = 0.98

#: name, model folder (repository-relative), lanes, clock constraint in MHz
ROWS = (
    ("d0.05-L4-100", "bench/models/mnist_d0.05", 4, 100.0),
    ("d0.1-L16-80", "bench/models/mnist_d0.1", 16, 80.0),
    ("d0.1-L32-70", "bench/models/mnist_d0.1", 32, 70.0),
    ("T4-d0.1-L16-80", "bench/models/mnist_T4_d0.1", 16, 80.0),
    ("T4-d0.1-L32-70", "bench/models/mnist_T4_d0.1", 32, 70.0),
    ("T2-d0.05-L8-85", "bench/models/mnist_T2_d0.05", 8, 85.0),
    ("T2-d0.05-L16-70", "bench/models/mnist_T2_d0.05", 16, 70.0),
)

#: Published FPGA SNN designs for MNIST, figures as their authors report them.
PRIOR_ART = (
    {
        "design": "Skydiver (Chen, Gao, Fang, Luan, 2022, arXiv:2203.07516)",
        "device": "Xilinx Zynq XC7Z045",
        "accuracy": 0.985,
        "latency_us": 44.2,  # 1 / 22.6k frames/s
        "inferences_per_s": 22600,
        "resources": "not comparable (a much larger device)",
        "note": "22.6k frames/s, 42.4 µJ per image; latency = 1 / throughput",
    },
    {
        "design": "Spiker+ (Carpegna et al., 2024, arXiv:2401.01141)",
        "device": "Xilinx Artix-7",
        "accuracy": 0.9385,
        "latency_us": 780.0,
        "inferences_per_s": None,
        "resources": "7,612 LC, 18 BRAM",
        "note": "",
    },
    {
        "design": "snn-fpga (Artix-7 MNIST SNN, reported in the project's brief)",
        "device": "Xilinx Artix-7",
        "accuracy": None,
        "latency_us": 520.0,
        "inferences_per_s": None,
        "resources": "6,358 LUT",
        "note": "",
    },
)


def code_version() -> str:
    """The commit the row was measured on (``+changes`` when the tree differs from it)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout

    commit = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    return commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no").strip() else "")


def accuracy(model_dir: Path, data: Path) -> tuple[float, int, str]:
    """Integer-reference accuracy of the artifact on every test image of ``data``, their count and
    the dataset's source."""
    dataset = load_dataset(data)
    predictions = predict(load_model(model_dir), dataset.test.images)
    return float(np.mean(predictions == dataset.test.labels)), len(dataset.test), dataset.source


def measure(name: str, model_dir: str, lanes: int, freq: float, data: Path, samples: int, work: Path) -> dict:
    """One row: accuracy, co-simulated cycles and the synthesis report of ``model_dir``."""
    from esl_hw.app.fpga import measure_cycles
    from esl_hw.fpga import synthesize

    model = load_model(ROOT / model_dir)
    measured = measure_cycles(model, samples, "verilator", lanes, data)
    if measured["mismatches"]:
        raise EslError(f"{name}: co-simulation mismatches the reference")
    report = synthesize(
        model, TARGET, work / name, freq_mhz=freq, lanes=lanes, allow_timing_failure=True,
        cycles_per_inference=measured["cycles"], cycles_source=measured["source"],
    ).to_dict()  # fmt: skip
    model_accuracy, images, source = accuracy(ROOT / model_dir, data)
    used = {kind: report["utilisation"][kind]["used"] for kind in ("luts", "ffs", "bram")}
    cycles = float(measured["cycles"])
    fmax = report["fmax_mhz"]
    latency = cycles / freq
    return {
        "name": name,
        "model": model_dir,
        "dataset": source,
        "accuracy": model_accuracy,
        "accuracy_images": images,
        "timesteps": model.timesteps,
        "synapses": int(sum(layer.nnz for layer in model.layers)),
        "target": report["device"],
        "lanes": lanes,
        "constraint_mhz": freq,
        "fmax_mhz": fmax,
        "fmax_margin": None if fmax is None else round(fmax / freq, 3),
        "cycles_per_inference": cycles,
        "cycles_source": measured["source"],
        "latency_us": round(latency, 3),
        "latency_at_fmax_us": None if not fmax else round(cycles / fmax, 3),
        "inferences_per_s": round(1e6 / latency, 1),
        "energy_uj": round(measured["energy_j"] * 1e6, 3),
        "lut": used["luts"],
        "ff": used["ffs"],
        "ebr": used["bram"],
        "rewiring": report.get("rewiring"),
        "code": code_version(),
        "command": f"esl-hw synth {model_dir} --target {TARGET} --lanes {lanes} --freq {freq:g} "
        f"--data MNIST --samples {samples} --out OUT --allow-timing-failure",
    }


def within_target(row: dict) -> bool:
    """>= 98 % at <= 15 µs with Fmax >= 1.05x its constraint."""
    margin = row["fmax_margin"] is not None and row["fmax_margin"] >= FMAX_MARGIN
    return row["accuracy"] >= ACCURACY_TARGET and row["latency_us"] <= LATENCY_TARGET_US and margin


def markdown(results: dict[str, Any]) -> str:
    """The Markdown page of ``results``."""
    lines = [
        "# Latency per inference on the LFE5U-85F",
        "",
        f"Generated by `python bench/latency.py --data MNIST --samples {results['samples']}` (rows last "
        f"measured between {results['first_date']} and {results['last_date']}; load average at the start of "
        f"the last run of the script, which may only have merged rows, {results['load_start']}). Yosys and "
        "nextpnr from PyPI, post-route Fmax (seed 1); "
        "whole core with the rewiring unit, in the two-pin synthesis shim.",
        "",
        "Accuracy: the integer reference, bit-exact with the RTL, on every test image. Cycles: mean of a "
        "bit-exact Verilator co-simulation of the first test images (count in the notes). Latency = cycles "
        "/ clock constraint (the clock the core is built for); at Fmax in brackets. Inferences/s: one "
        "inference in flight at a time (streamed back to back, overlapping: `bench/stream.py`, "
        "docs/benchmarks/stream.md).",
        "",
        "| model | T | accuracy | lanes | constraint MHz | Fmax MHz | cycles | latency µs | inferences/s "
        "| LUT | FF | EBR | target |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in results["rows"]:
        fmax = "-" if row["fmax_mhz"] is None else f"{row['fmax_mhz']:.2f}"
        at_fmax = "" if row["latency_at_fmax_us"] is None else f" ({row['latency_at_fmax_us']:.2f})"
        lines.append(
            f"| `{row['model']}` | {row['timesteps']} | {100 * row['accuracy']:.2f}% | {row['lanes']} | "
            f"{row['constraint_mhz']:g} | {fmax} | {row['cycles_per_inference']:,.0f} | "
            f"{row['latency_us']:.2f}{at_fmax} | {row['inferences_per_s']:,.0f} | {row['lut']:,} | "
            f"{row['ff']:,} | {row['ebr']} | {'met' if within_target(row) else 'not met'} |"
        )
    lines += [
        "",
        f"Target (issue 15): >= {100 * ACCURACY_TARGET:.0f}% at <= {LATENCY_TARGET_US:g} µs with Fmax >= "
        f"{FMAX_MARGIN}x the constraint.",
        "",
        "## Published FPGA SNN designs for MNIST",
        "",
        "| design | device | accuracy | latency µs | inferences/s | resources | note |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for design in results["prior_art"]:
        acc = "-" if design["accuracy"] is None else f"{100 * design['accuracy']:.2f}%"
        rate = "-" if design["inferences_per_s"] is None else f"{design['inferences_per_s']:,}"
        lines.append(
            f"| {design['design']} | {design['device']} | {acc} | {design['latency_us']:g} | {rate} | "
            f"{design['resources']} | {design['note']} |"
        )
    lines += ["", "## Rows: sources and commands", ""]
    for row in results["rows"]:
        lines.append(
            f"- {row['name']} ({row['date']}, code {row.get('code', 'not recorded')}, load average at its "
            f"start {row.get('load_average', 'not recorded')}): accuracy on "
            f"{row['accuracy_images']:,} test images of "
            f"{row['dataset']}; cycles: {row['cycles_source']}; `{row['command']}`"
        )
    return "\n".join(lines) + "\n"


#: What the page prints of a row, and the types it must have (``None``: may be missing, null).
ROW_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "model": (str,),
    "dataset": (str,),
    "date": (str,),
    "command": (str,),
    "cycles_source": (str,),
    "timesteps": (int,),
    "lanes": (int,),
    "accuracy_images": (int,),
    "lut": (int,),
    "ff": (int,),
    "ebr": (int,),
    "accuracy": (int, float),
    "constraint_mhz": (int, float),
    "cycles_per_inference": (int, float),
    "latency_us": (int, float),
    "inferences_per_s": (int, float),
    "fmax_mhz": (int, float, type(None)),
    "fmax_margin": (int, float, type(None)),
    "latency_at_fmax_us": (int, float, type(None)),
}


def check_row(row: object) -> dict:
    """``row`` if it has every field of :data:`ROW_FIELDS` with its type; ValueError names the
    first that does not."""
    if not isinstance(row, dict):
        raise ValueError("a row is not an object")
    for field, types in ROW_FIELDS.items():
        value = row.get(field)
        if field not in row or isinstance(value, bool) or not isinstance(value, types):
            raise ValueError(f"row {row.get('name', '?')!r}: field {field!r} missing or of the wrong type")
    return row


def load_previous(path: Path) -> dict[str, dict]:
    """Rows of the last run, by name (none if there is no file); ValueError, KeyError or
    TypeError when the file is not such a list of rows (:func:`check_row`)."""
    if not path.is_file():
        return {}
    return {row["name"]: row for row in map(check_row, json.loads(path.read_text())["rows"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="MNIST IDX folder")
    parser.add_argument("--samples", type=int, default=100, help="test images co-simulated per row")
    parser.add_argument(
        "--only", nargs="*", help="rows to (re)measure (none: only merge --adopt); the others are kept"
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/esl-bench-latency"))
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--render", action="store_true", help="measure nothing: rewrite the Markdown")
    parser.add_argument(
        "--adopt",
        type=Path,
        nargs="+",
        default=[],
        help="latency.json files written by other runs of this script (e.g. side by side, each with its own "
        "--out): rows not measured now are taken from them before the last run's",
    )
    args = parser.parse_args()
    if args.render:
        results = json.loads((args.out / "latency.json").read_text())
        (args.out / "latency.md").write_text(markdown(results))
        return
    load_start = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    previous = load_previous(args.out / "latency.json")
    for path in args.adopt:
        if not path.is_file():
            parser.error(f"--adopt {path}: no such file")
        try:
            previous.update(load_previous(path))
        except (ValueError, KeyError, TypeError) as error:
            parser.error(f"--adopt {path}: not a latency.json written by this script ({error})")
    names = {name for name, *_ in ROWS}
    unknown = sorted(set(args.only or ()) - names)
    if unknown:
        parser.error(f"unknown rows {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    rows = []
    for name, model_dir, lanes, freq in ROWS:
        if args.only is not None and name not in args.only:
            if name in previous:
                rows.append(previous[name])
            continue
        if not (ROOT / model_dir / "model.yaml").is_file():
            print(f"{name}: {model_dir} is not there; skipped", flush=True)
            continue
        began = time.perf_counter()
        row_load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        row = measure(name, model_dir, lanes, freq, args.data, args.samples, args.work)
        row["date"] = time.strftime("%Y-%m-%d")
        row["load_average"] = row_load
        row["seconds"] = round(time.perf_counter() - began, 1)
        rows.append(row)
        print(
            f"{name}: {row['latency_us']} µs, Fmax {row['fmax_mhz']} MHz, {100 * row['accuracy']:.2f}%",
            flush=True,
        )
        write(args, rows, load_start)
    write(args, rows, load_start)


def write(args: argparse.Namespace, rows: list[dict], load_start: str) -> None:
    """Write docs/benchmarks/latency.json and .md."""
    dates = sorted(row["date"] for row in rows) or [time.strftime("%Y-%m-%d")]
    results = {
        "samples": args.samples,
        "first_date": dates[0],
        "last_date": dates[-1],
        "load_start": load_start,
        "rows": rows,
        "prior_art": list(PRIOR_ART),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latency.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "latency.md").write_text(markdown(results))


if __name__ == "__main__":
    main()
