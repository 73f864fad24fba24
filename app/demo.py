"""What ``esl-hw demo`` does: train, export, check against torch, generate and co-simulate in one folder.

``run_demo(args)`` returns the exit status: 1 when the RTL or the torch integer mode differs from the
reference in any bit.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from esl_hw import progress
from esl_hw.app.reports import write_report
from esl_hw.app.stages import (
    EXIT_MISMATCH,
    EXIT_OK,
    core_lanes,
    cosimulate,
    training_config,
    training_report,
    write_rtl,
    write_sim,
)
from esl_hw.app.tables import print_table
from esl_hw.artifact import Model
from esl_hw.artifact_io import save_model
from esl_hw.datasets import load_dataset
from esl_hw.encoding import encode
from esl_hw.outputs import check_writable_target, staged_folder
from esl_hw.reference import Trace, run, sample_mismatches


def compare_torch_integer(
    run_dir: Path, model: Model, images: np.ndarray, batch_size: int = 500
) -> tuple[np.ndarray, np.ndarray, int]:
    """Run the torch integer mode and the numpy reference on ``images``, batch by batch.

    Returns both backends' predictions and the number of samples in which any spike, potential
    (every step, every LIF neuron), output accumulator or prediction differs.
    """
    from esl_hw.train.export import load_run

    net = load_run(run_dir)[0]
    reference, torch_integer, mismatches = [], [], 0
    for start in range(0, len(images), batch_size):
        spikes = encode(images[start : start + batch_size], model.timesteps, model.encoder)
        expected = run(model, spikes)
        got = net.forward_integer(spikes, record=True)
        actual = Trace(
            [tensor.numpy() for tensor in got.spikes],
            [tensor.numpy() for tensor in got.potentials],
            got.outputs.numpy(),
            got.predictions.numpy(),
        )
        mismatches += int(sample_mismatches(expected, actual).sum())
        reference.append(expected.predictions)
        torch_integer.append(actual.predictions)
    return np.concatenate(reference), np.concatenate(torch_integer), mismatches


def _begin(stage: str) -> float:
    """Note that ``stage`` starts; return the time it starts."""
    progress.note(f"demo: {stage} ...")
    return time.perf_counter()


def _end(seconds: dict[str, float], stage: str, start: float) -> None:
    """Record the seconds of ``stage`` and note that it is done."""
    seconds[stage] = time.perf_counter() - start
    progress.note(f"demo: {stage} done in {progress.elapsed_text(seconds[stage])}")


def run_demo(args: argparse.Namespace) -> int:
    state = check_writable_target(args.out, args.force, inputs=[args.config, args.data])
    config = training_config(args.config, args.data, args.hidden)
    data = load_dataset(config.data.path)
    from esl_hw.train.export import evaluate_float, export_run
    from esl_hw.train.loop import train

    seconds: dict[str, float] = {}
    with staged_folder(args.out, state=state) as staging:
        start = _begin("train")
        report = training_report(args, config)
        run_dir = train(config, staging / "run", progress=True, on_complete=report).run_dir
        _end(seconds, "train", start)

        start = _begin("export")
        model = export_run(run_dir)
        model.metadata["run_dir"] = str((args.out / "run").resolve())
        save_model(model, staging / "model")
        _end(seconds, "export", start)

        start = _begin("evaluate")
        reference, torch_integer, torch_mismatches = compare_torch_integer(run_dir, model, data.test.images)
        float_acc = evaluate_float(run_dir, data.test.images, data.test.labels)
        _end(seconds, "evaluate", start)

        start = _begin("rtl")
        (staging / "rtl").mkdir()
        write_rtl(model, staging / "rtl", core_lanes(model, args.lanes), args)
        _end(seconds, "rtl", start)

        start = _begin("cosim")
        cosim = cosimulate(model, data, args.samples, args, staging / "cosim")
        figures = [f"cosim/{name}" for name in write_sim(staging / "cosim", cosim, args)]
        _end(seconds, "cosim", start)

        summary = {
            "dataset": data.source,
            "test_samples": len(data.test),
            "float_accuracy": float_acc,
            "int_accuracy": float(np.mean(reference == data.test.labels)),
            "torch_int_accuracy": float(np.mean(torch_integer == data.test.labels)),
            "torch_reference_mismatches": torch_mismatches,
            **cosim,
            "density": model.density,
            "synapses": model.synapses,
            "layer_density": [layer.density for layer in model.layers],
            "seconds": seconds,
        }
        from esl_hw.train.config import config_to_dict

        summary["figures"] = figures
        title = f"esl-hw demo on {data.source}"
        summary = write_report(
            staging, "demo", title, summary, args, seed=config.seed, config=config_to_dict(config)
        )
    print_table(
        f"esl-hw demo: {summary['dataset']}, written to {args.out}",
        [
            ("float_accuracy", summary["float_accuracy"]),
            ("int_accuracy (reference)", summary["int_accuracy"]),
            ("torch integer vs reference", f"{torch_mismatches} of {len(data.test)} samples differ"),
            (
                f"accuracy on the {summary['rtl_samples']} RTL images",
                f"RTL {summary['rtl_accuracy']:.4f}, "
                f"reference {summary['reference_accuracy_rtl_samples']:.4f}",
            ),
            ("rtl samples / mismatches", f"{summary['rtl_samples']} / {summary['rtl_mismatches']}"),
            ("synapses (density)", f"{summary['synapses']} ({summary['density']:.4f})"),
            ("cycles per inference", summary["cycles_per_inference"]),
            ("cycle floor (ratio)", f"{summary['cycle_floor']:.1f} ({summary['cycles_over_floor']:.3f})"),
            ("memory bits", summary["memory_bits"]["total"]),
            ("energy per inference (J)", summary["energy_per_inference_j"]),
            ("total seconds", sum(seconds.values())),
        ],
    )
    ok = summary["rtl_mismatches"] == 0 and not summary["rtl_problems"] and torch_mismatches == 0
    return EXIT_OK if ok else EXIT_MISMATCH
