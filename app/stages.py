"""What ``esl-hw train``, ``export``, ``eval``, ``rtl``, ``sim`` and ``compare`` do; the parser lives in
:mod:`esl_hw.app.cli`.

Each ``run_<command>(args)`` returns the exit status. The training, RTL and simulation stages are
imported inside the functions that need them, so a command loads only the stages it uses.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from esl_hw import progress
from esl_hw.app.reports import write_report
from esl_hw.app.tables import compare_markdown, neurobench_markdown, print_table
from esl_hw.artifact import Model
from esl_hw.artifact_io import load_model, save_model
from esl_hw.datasets import Dataset, check_fits, load_dataset
from esl_hw.errors import EslError
from esl_hw.metrics import EnergyConstants, confusion_matrix
from esl_hw.neurobench_metrics import evaluate as neurobench_evaluate
from esl_hw.outputs import TargetState, check_writable_target, staged_folder
from esl_hw.reference import predict

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_MISMATCH = 1


def training_config(
    path: Path | None, data: Path | None, hidden: int | None = None, device: str | None = None
):
    """The training config at ``path`` (default: the built-in demo) with the command's overrides,
    validated again as a whole (an override such as ``--hidden`` obeys the config's limits)."""
    from esl_hw.train.config import config_from_dict, config_to_dict, default_config, load_config

    config = default_config() if path is None else load_config(path)
    if device is not None:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, device=device))
    if data is not None:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, path=str(data)))
    if hidden is not None:
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, hidden=(hidden,)))
    return config_from_dict(config_to_dict(config))


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """``payload`` as indented JSON with a final newline."""
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")


def run_train(args: argparse.Namespace) -> int:
    config = training_config(args.config, args.data, device=args.device)
    from esl_hw.train.loop import train

    result = train(
        config,
        args.out,
        force=args.force,
        progress=True,
        resume=args.resume,
        inputs=[args.config],
        on_complete=training_report(args, config),
    )
    validation = "n/a" if result.val_accuracy is None else f"{result.val_accuracy:.4f}"
    print(
        f"trained run written to {result.run_dir} (best epoch {result.best_epoch}, "
        f"validation accuracy {validation}, {result.seconds:.1f} s)"
    )
    return EXIT_OK


def training_report(args: argparse.Namespace, config: Any) -> Callable[[Path], None]:
    """The ``on_complete`` of a training run (:func:`esl_hw.train.loop.train`): the curves
    (:func:`esl_hw.app.plots.write_training_curves`) and ``train.json``/``train.md`` in the run."""

    def complete(folder: Path) -> None:
        from esl_hw.app.plots import read_metrics, write_training_curves
        from esl_hw.train.config import config_to_dict
        from esl_hw.train.export import METRICS_FILE, load_checkpoint

        records = read_metrics(folder / METRICS_FILE)
        best = load_checkpoint(folder)
        updates = [update for record in records for update in record["esl_updates"]]
        results = {
            "epochs": len(records),
            "best_epoch": best["epoch"],
            "val_accuracy": best["val_accuracy"],
            "float_val_accuracy": best["float_val_accuracy"],
            "train_accuracy": best["train_accuracy"],
            "final_loss": records[-1]["loss"],
            "layer_density": records[-1]["density"],
            "overall_density": records[-1]["overall_density"],
            "esl_updates": len(updates),
            "connections_rewired": sum(layer["pruned"] for update in updates for layer in update["layers"]),
            "epoch_seconds": sum(record["seconds"] for record in records),
            "figures": write_training_curves(folder, records),
        }
        sizes = "-".join(str(size) for size in best["sizes"])
        title = f"Training run: {sizes} network, {len(records)} epochs"
        write_report(folder, "train", title, results, args, seed=config.seed, config=config_to_dict(config))

    return complete


def run_export(args: argparse.Namespace) -> int:
    from esl_hw.train.export import export_run

    state = check_writable_target(args.out, args.force, inputs=[args.run])
    model = export_run(args.run, args.w_bits)
    model.metadata["run_dir"] = str(args.run.resolve())
    with staged_folder(args.out, state=state) as staging:
        save_model(model, staging / "model", overwrite=True)
        for entry in (staging / "model").iterdir():
            entry.rename(staging / entry.name)
        (staging / "model").rmdir()
        results = {
            "sizes": [model.n_inputs, *(layer.n_out for layer in model.layers)],
            "timesteps": model.timesteps,
            "synapses": model.synapses,
            "density": model.density,
            "layer_density": [layer.density for layer in model.layers],
            "w_bits": [layer.w_bits for layer in model.layers],
            "run_dir": model.metadata["run_dir"],
        }
        write_report(staging, "export", f"Model artifact exported from {args.run.name}", results, args)
    print(f"model artifact written to {args.out} ({model.synapses} synapses, density {model.density:.4f})")
    return EXIT_OK


def optional_target(args: argparse.Namespace, *inputs: Path | None) -> TargetState | None:
    """The output rule applied to an optional ``--out`` (``None`` when the command only prints)."""
    if args.out is None:
        return None
    return check_writable_target(args.out, args.force, inputs=inputs)


def run_eval(args: argparse.Namespace) -> int:
    state = optional_target(args, args.model, args.data)
    model = load_model(args.model)
    data = load_dataset(args.data)
    _check_inputs(model, data)
    neurobench, predictions = neurobench_evaluate(model, data.test.images)
    accuracy = float(np.mean(predictions == data.test.labels))
    if state is not None:
        report = {
            "dataset": data.source,
            "test_images": len(data.test),
            "int_accuracy": accuracy,
            "neurobench": neurobench,
        }
        with staged_folder(args.out, state=state) as staging:
            title = f"Integer reference on {data.source}"
            write_report(staging, "eval", title, report, args, body=neurobench_markdown(neurobench))
    operations = neurobench["SynapticOperations"]
    print_table(
        f"integer reference on {data.source}",
        [
            ("test images", len(data.test)),
            ("int_accuracy", accuracy),
            ("NeuroBench ActivationSparsity", neurobench["ActivationSparsity"]),
            ("NeuroBench Effective_ACs per image", operations["Effective_ACs"]),
        ],
    )
    return EXIT_OK


def core_streaming(args: argparse.Namespace) -> bool | None:
    """``--streaming`` (True) or ``--no-streaming`` (False) of a command, ``None`` when neither
    was given (the default: :class:`~esl_hw.rtl_gen.hardware.HardwareConfig`'s, on)."""
    return getattr(args, "streaming", None)


def core_lanes(model: Model, requested: int | None) -> int:
    """``requested`` lanes, or the lanes ``model`` was trained for (else 1), validated once."""
    from esl_hw.rtl_gen.hardware import HardwareConfig

    return HardwareConfig.for_model(model, requested).lanes


def run_rtl(args: argparse.Namespace) -> int:
    state = check_writable_target(args.out, args.force, inputs=[args.model])
    model = load_model(args.model)
    lanes = core_lanes(model, args.lanes)
    with staged_folder(args.out, state=state) as staging:
        verilog = write_rtl(model, staging, lanes, args)
    print(f"Verilog written to {args.out / verilog.name}")
    return EXIT_OK


def write_rtl(model: Model, folder: Path, lanes: int, args: argparse.Namespace) -> Path:
    """What ``esl-hw rtl`` writes into ``folder``: the Verilog of the ``lanes``-lane core,
    ``memory_bits.json`` and the ``rtl`` report; return the Verilog's path."""
    from esl_hw.rtl_gen import emit_verilog, memory_bits
    from esl_hw.rtl_gen.plan import dense_memory_bits

    with progress.step(f"rtl: Verilog of the {lanes}-lane core"):
        verilog = emit_verilog(model, folder, lanes=lanes, streaming=core_streaming(args))
    bits = memory_bits(model, lanes=lanes)
    write_json(folder / "memory_bits.json", bits)
    streaming = core_streaming(args) is not False
    results = {"verilog": verilog.name, "lanes": lanes, "streaming": streaming, "memory_bits": bits}
    results["memory_bits_dense"] = dense_memory_bits(model)
    write_report(folder, "rtl", f"Verilog of the {lanes}-lane core", results, args)
    return verilog


def write_sim(folder: Path, report: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """What ``esl-hw sim --out`` writes into ``folder`` beside the co-simulation's runs: its
    figures and the ``sim`` report; return the figures' names."""
    from esl_hw.app.plots import write_cosim_figures

    figures = write_cosim_figures(folder, report)
    title = f"RTL co-simulation ({report['simulator']})"
    body = neurobench_markdown(report["neurobench"])
    write_report(folder, "sim", title, {**report, "figures": figures}, args, body=body)
    return figures


def _check_inputs(model: Model, data: Dataset) -> None:
    check_fits(data, model.n_inputs, model.n_outputs)


#: Above this many images the potentials are not traced (the trace would grow to gigabytes);
#: spikes, outputs and predictions are still checked bit for bit.
POTENTIAL_TRACE_LIMIT = 1000


def energy_constants(args: argparse.Namespace) -> EnergyConstants:
    """The ``--e-sop``/``--e-mem`` options (picojoules) as :class:`EnergyConstants` (joules)."""
    return EnergyConstants(e_sop=args.e_sop * 1e-12, e_mem_access=args.e_mem * 1e-12)


def cosimulate(
    model: Model, data: Dataset, samples: int, args: argparse.Namespace, build_dir: Path
) -> dict[str, Any]:
    """Co-simulate ``samples`` test images with ``args.simulator``, ``args.lanes`` and the energy options."""
    from esl_hw.sim import run_cosim, sim_report

    count = min(samples, len(data.test))
    trace_potentials = count <= POTENTIAL_TRACE_LIMIT
    result = run_cosim(
        model,
        data.test.images[:count],
        simulator=args.simulator,
        build_dir=build_dir,
        trace_potentials=trace_potentials,
        lanes=core_lanes(model, args.lanes),
        stream=bool(getattr(args, "stream", False)),
        streaming=core_streaming(args),
    )
    report = sim_report(
        model, result, data.test.images, data.test.labels, energy_constants=energy_constants(args)
    )
    report["potentials_checked"] = trace_potentials
    labels = data.test.labels[: result.samples]
    report["classes"] = model.n_outputs
    report["confusion_rtl"] = confusion_matrix(labels, result.predictions, model.n_outputs).tolist()
    reference = confusion_matrix(labels, result.expected_predictions, model.n_outputs)
    report["confusion_reference"] = reference.tolist()
    report["neurobench"] = neurobench_evaluate(model, data.test.images[: result.samples])[0]
    return report


def _print_cosim(report: dict[str, Any]) -> None:
    from esl_hw.sim import report_rows

    print_table(f"RTL co-simulation ({report['simulator']})", report_rows(report))


def run_sim(args: argparse.Namespace) -> int:
    from esl_hw.sim.runner import STREAM_REFUSAL

    if args.stream and core_streaming(args) is False:
        raise EslError(STREAM_REFUSAL)
    state = optional_target(args, args.model, args.data)
    model = load_model(args.model)
    data = load_dataset(args.data)
    _check_inputs(model, data)
    if state is None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="esl-hw-sim-") as build:
            report = cosimulate(model, data, args.samples, args, Path(build))
    else:
        with staged_folder(args.out, state=state) as staging:
            report = cosimulate(model, data, args.samples, args, staging / "cosim")
            write_sim(staging, report, args)
    _print_cosim(report)
    return EXIT_OK if report["rtl_mismatches"] == 0 and not report["rtl_problems"] else EXIT_MISMATCH


def _float_accuracy(model: Model, run_dir: Path | None, data: Dataset) -> tuple[float | None, str]:
    """Accuracy of the float network of ``run_dir`` (or of the run the artifact names, if present).

    A run given explicitly must exist, and any run must have trained the model's network
    (same layer sizes): a float accuracy of another network is refused, not shown.
    """
    explicit = run_dir is not None
    run_dir = run_dir or (Path(model.metadata["run_dir"]) if model.metadata.get("run_dir") else None)
    if run_dir is None or not run_dir.is_dir():
        if explicit:
            raise EslError(f"--run {run_dir} is not a training run folder")
        return None, f"no training run at {run_dir}" if run_dir else "the artifact names no training run"
    from esl_hw.train.export import evaluate_float, load_checkpoint

    trained = [str(size) for size in load_checkpoint(run_dir)["sizes"]]
    network = [str(model.n_inputs)] + [str(layer.n_out) for layer in model.layers]
    if trained != network:
        raise EslError(
            f"training run {run_dir} trained a {'-'.join(trained)} network, the model is {'-'.join(network)}"
        )
    return evaluate_float(run_dir, data.test.images, data.test.labels), str(run_dir)


def run_compare(args: argparse.Namespace) -> int:
    state = check_writable_target(args.out, args.force, inputs=[args.model, args.data, args.run])
    model = load_model(args.model)
    data = load_dataset(args.data)
    _check_inputs(model, data)
    float_acc, float_source = _float_accuracy(model, args.run, data)
    reference = predict(model, data.test.images)
    count = min(args.samples or len(data.test), len(data.test))
    with staged_folder(args.out, state=state) as staging:
        cosim = cosimulate(model, data, count, args, staging / "cosim")
        report = {
            "dataset": data.source,
            "float_accuracy": float_acc,
            "float_source": float_source,
            "int_accuracy": float(np.mean(reference == data.test.labels)),
            "int_samples": len(data.test),
            "int_accuracy_rtl_samples": float(np.mean(reference[:count] == data.test.labels[:count])),
            **cosim,
        }
        from esl_hw.app.plots import write_cosim_figures

        report["figures"] = write_cosim_figures(staging, report)
        title = f"Float, integer and RTL accuracy on {data.source}"
        body = compare_markdown(report) + "\n" + neurobench_markdown(report["neurobench"])
        write_report(staging, "compare", title, report, args, body=body)
    print(compare_markdown(report), end="")
    return EXIT_OK if report["rtl_mismatches"] == 0 and not report["rtl_problems"] else EXIT_MISMATCH
