"""Benchmark: co-simulation speed on Verilator and the reference model's speed on MNIST.

Usage::

    python bench/cosim_speed.py [--model MODEL] [--data DIR] [--samples N] [--lanes 1 16]
                                [--jobs J] [--note TEXT] [--out docs/benchmarks]

Runs ``N`` MNIST test images through the RTL on Verilator (spikes, outputs, predictions and
counters checked bit for bit; potentials not traced) and reports simulated cycles per second,
images per second (end to end: simulator start, simulation, trace check) and the projected time
of the whole 10,000-image test set; with ``--jobs J`` the images are split over ``J`` simulator
processes running at once (one build). Then it times the integer reference model on the whole
test set.
Without ``--model`` the network is the random 784-800-10 model of ``bench/cycles.py``.
Writes ``cosim_speed.json`` and ``cosim_speed.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from esl_hw.artifact import load_model
from esl_hw.datasets import load_mnist
from esl_hw.reference import predict

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cycles import paper_shaped_model  # noqa: E402

TEST_SET = 10_000


def _cosim(arguments: tuple) -> object:
    from esl_hw.sim import run_cosim

    model, images, build_dir, lanes = arguments
    return run_cosim(model, images, "verilator", build_dir, trace_potentials=False, lanes=lanes)


def cosim_jobs(model, images: np.ndarray, build_dir: Path, lanes: int, jobs: int) -> dict:
    """Run ``images`` split over ``jobs`` processes at once; return merged figures.

    ``run_seconds`` is the longest process's run (simulation and check, after its build).
    """
    from concurrent.futures import ProcessPoolExecutor

    chunks = [chunk for chunk in np.array_split(images, jobs) if len(chunk)]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(_cosim, [(model, chunk, build_dir, lanes) for chunk in chunks]))
    wall = time.perf_counter() - started
    return {
        # a chunk's event memory depth is part of its build: chunks may build once each, in parallel
        "build_seconds": max(result.build_seconds for result in results),
        "run_seconds": max(result.run_seconds for result in results),
        "wall_seconds_with_builds": wall,
        "samples": sum(result.samples for result in results),
        "mismatches": sum(result.mismatches for result in results),
        "predictions": [p for result in results for p in result.predictions],
        "cycles": [c for result in results for c in result.cycles],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--data", type=Path, help="MNIST IDX folder (default: embedded subset)")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--build-dir", type=Path)
    parser.add_argument("--jobs", type=int, default=1, help="simulator processes at once")
    parser.add_argument("--note", default="", help="a line added to the Markdown (e.g. machine load)")
    args = parser.parse_args()

    model = paper_shaped_model() if args.model is None else load_model(args.model)
    data = load_mnist(args.data)
    started = time.perf_counter()
    predictions = predict(model, data.test.images)
    reference_seconds = time.perf_counter() - started
    images = data.test.images[: args.samples]
    rows = []
    with tempfile.TemporaryDirectory(prefix="esl-speed-") as temporary:
        build_dir = args.build_dir or Path(temporary)
        for lanes in args.lanes:
            result = cosim_jobs(model, images, build_dir, lanes, args.jobs)
            cycles = float(np.sum(result["cycles"]))
            per_image = result["run_seconds"] / result["samples"]
            rows.append(
                {
                    "lanes": lanes,
                    "jobs": args.jobs,
                    "samples": result["samples"],
                    "mismatches": result["mismatches"],
                    "predictions_match_reference": result["predictions"]
                    == predictions[: result["samples"]].tolist(),
                    "cycles_per_inference": cycles / result["samples"],
                    "build_seconds": result["build_seconds"],
                    "run_seconds": result["run_seconds"],
                    "wall_seconds_with_builds": result["wall_seconds_with_builds"],
                    "simulated_cycles_per_second": cycles / result["run_seconds"],
                    "images_per_second": 1.0 / per_image,
                    "projected_test_set_minutes": TEST_SET * per_image / 60,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    report = {
        "model": str(args.model) if args.model else "random 784-800-10 (bench/cycles.py paper_shaped_model)",
        "synapses": model.synapses,
        "data": data.source,
        "test_images": len(data.test),
        "reference_seconds_whole_test_set": reference_seconds,
        "reference_accuracy": float(np.mean(predictions == data.test.labels)),
        "command": " ".join(
            [
                "python bench/cosim_speed.py",
                *(["--model", str(args.model)] if args.model else []),
                *(["--data", str(args.data)] if args.data else []),
                f"--samples {args.samples} --lanes {' '.join(map(str, args.lanes))} --jobs {args.jobs}",
            ]
        ),
        "date": time.strftime("%Y-%m-%d"),
        "results": rows,
    }
    lines = [
        "# Co-simulation and reference speed",
        "",
        f"Model: {report['model']} ({report['synapses']} synapses); data {report['data']}; "
        f"generated by `{report['command']}` on {report['date']}, {args.jobs} simulator process(es) "
        "on a 2-core machine.",
        "",
        *([args.note, ""] if args.note else []),
        f"Reference model (numpy) on the whole test set ({report['test_images']} images): "
        f"{reference_seconds:.2f} s.",
        "",
        "Verilator, potentials not traced (spikes, outputs, predictions, counters checked):",
        "",
        "| L | images | mismatches | cycles/inference | simulated cycles/s (all jobs) | images/s | "
        "projected 10,000 images (min) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['lanes']} | {row['samples']} | {row['mismatches']} | "
            f"{row['cycles_per_inference']:.0f} | "
            f"{row['simulated_cycles_per_second']:.3g} | {row['images_per_second']:.1f} | "
            f"{row['projected_test_set_minutes']:.1f} |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cosim_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "cosim_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
