"""What ``esl-hw import-nir`` and ``esl-hw export-nir`` do; the parser lives in :mod:`esl_hw.app.cli`.

``import-nir`` reads a NIR graph (:mod:`esl_hw.interchange.nir_read`), makes it a discrete-time float
network (:mod:`esl_hw.interchange.nir_float`), calibrates on the training images of ``--data`` when
given, quantises (:mod:`esl_hw.interchange.nir_quantise`) and writes a model artifact with
``import_nir.json``; with ``--data`` it scores the float network and the integer reference on the
test images, both fed the same rate-encoded spikes. ``export-nir`` writes a model as a NIR graph
file (:mod:`esl_hw.interchange.nir_write`), atomically; with ``--data`` it runs the written file in
snnTorch (``snntorch.import_from_nir``) beside the integer reference. docs/nir.md has the mapping.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from esl_hw import limits, progress
from esl_hw.app.reports import write_report
from esl_hw.app.tables import print_table
from esl_hw.artifact import Encoder
from esl_hw.artifact_io import load_model, save_model
from esl_hw.datasets import Dataset, check_fits, load_dataset
from esl_hw.errors import EslError
from esl_hw.interchange.nir_float import SNNTORCH_DT, discretise, run_float
from esl_hw.interchange.nir_quantise import quantise
from esl_hw.interchange.nir_read import NirNetwork, read_nir
from esl_hw.outputs import check_writable_target, staged_folder
from esl_hw.reference import predict

EXIT_OK = 0
#: time steps of an imported graph that names none (the project's default)
DEFAULT_TIMESTEPS = 8


def warn(message: str) -> None:
    """``esl-hw: warning: <message>`` on stderr (also with ``-q``) and in the command's log."""
    progress.record(f"[{progress.timestamp()}] warning: {message}")
    print(f"esl-hw: warning: {message}", file=sys.stderr)


def _dt(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise EslError(f"the graph's esl_hw metadata dt must be a positive number, got {limits.shown(value)}")
    return float(value)


def _encoder(network: NirNetwork) -> Encoder:
    entry = network.esl_hw.get("encoder")
    if entry is None:
        return Encoder()
    if not isinstance(entry, dict) or entry.get("kind") != "rate":
        raise EslError(f"the graph's esl_hw metadata encoder is not a rate encoder: {limits.shown(entry)}")
    return Encoder(phase0=limits.check_range(entry.get("phase0", 128), *limits.PHASE0, "encoder phase0"))


def _accuracies(float_net, model, data: Dataset) -> dict[str, Any]:
    """Float and integer accuracy on the test images, and how often the two predict alike."""
    images, labels = data.test.images, data.test.labels
    with progress.step(f"import-nir: float network on {len(images)} test images"):
        float_predictions = run_float(float_net, images, model.timesteps, model.encoder).predictions
    with progress.step(f"import-nir: integer reference on {len(images)} test images"):
        int_predictions = predict(model, images)
    return {
        "dataset": data.source,
        "test_images": len(images),
        "float_accuracy": float(np.mean(float_predictions == labels)),
        "int_accuracy": float(np.mean(int_predictions == labels)),
        "agreement": float(np.mean(float_predictions == int_predictions)),
    }


def _layer_rows(reports: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    rows = []
    for index, report in enumerate(reports):
        if "scale" not in report:
            rows.append((f"layer {index}", report["source"]))
            continue
        text = f"{report['kind']}, scale {report['scale']:.4g} ({report['limited_by']})"
        if report["kind"] != "output":
            text += f", threshold {report['threshold']}, leak_shift {report['leak_shift']}"
            text += f" (1-β off {100 * report['leak_error']:.1f}%), reset {report['reset']}"
        rows.append((f"layer {index}", text))
    return rows


def run_import_nir(args: argparse.Namespace) -> int:
    state = check_writable_target(args.out, args.force, inputs=[args.graph, args.data])
    network = read_nir(args.graph)
    # --timesteps and --dt, else what esl-hw's export recorded in the graph, else the defaults
    timesteps = (
        args.timesteps if args.timesteps is not None else network.esl_hw.get("timesteps", DEFAULT_TIMESTEPS)
    )
    limits.check_range(timesteps, *limits.TIMESTEPS, "time steps (--timesteps or the graph's metadata)")
    dt = args.dt if args.dt is not None else _dt(network.esl_hw.get("dt", SNNTORCH_DT))
    encoder = _encoder(network)
    float_net = discretise(network, dt, args.reset)
    data = None
    activity = None
    if args.data is not None:
        data = load_dataset(args.data)
        check_fits(data, float_net.n_inputs, float_net.n_outputs)
        images = data.train.images[: args.calibration_images]
        with progress.step(f"import-nir: calibration on {len(images)} training images"):
            activity = run_float(float_net, images, timesteps, encoder).activity
    source = {"source": "esl-hw import-nir", "nir_file": str(Path(args.graph).resolve())}
    quantised = quantise(
        float_net,
        args.w_bits,
        args.v_bits,
        timesteps,
        activity,
        encoder,
        {**source, "nir_version": network.version},
    )
    for warning in quantised.warnings:
        warn(warning)
    model = quantised.model
    results: dict[str, Any] = {
        "graph": str(args.graph),
        "nir_version": network.version,
        "sizes": [model.n_inputs, *(layer.n_out for layer in model.layers)],
        "timesteps": timesteps,
        "dt": dt,
        "readout": float_net.readout,
        "synapses": model.synapses,
        "density": model.density,
        "calibration_images": 0 if activity is None else int(min(args.calibration_images, len(data.train))),
        "layers": quantised.layers,
        "warnings": quantised.warnings,
    }
    if data is not None:
        results.update(_accuracies(float_net, model, data))
    with staged_folder(args.out, state=state) as staging:
        save_model(model, staging / "model", overwrite=True)
        for entry in (staging / "model").iterdir():
            entry.rename(staging / entry.name)
        (staging / "model").rmdir()
        write_report(
            staging, "import-nir", f"Model artifact imported from {Path(args.graph).name}", results, args
        )
    rows: list[tuple[str, Any]] = [
        ("graph", f"{args.graph} (nir {network.version or 'unknown'})"),
        ("sizes", "-".join(str(size) for size in results["sizes"])),
        ("timesteps / dt", f"{timesteps} / {dt:g} s"),
        *_layer_rows(quantised.layers),
        ("synapses (density)", f"{model.synapses} ({model.density:.4f})"),
    ]
    if data is not None:
        rows += [
            ("float_accuracy (NIR graph)", results["float_accuracy"]),
            ("int_accuracy (reference)", results["int_accuracy"]),
            ("agreement float vs integer", results["agreement"]),
        ]
    print_table(f"esl-hw import-nir: model artifact written to {args.out}", rows)
    return EXIT_OK


# ---------------------------------------------------------------- export


def check_file_target(target: Path, force: bool, inputs: list[Path | None]) -> None:
    """The output rule for a single file: an existing ``target`` is replaced only with ``force``
    and only when it is a NIR file esl-hw wrote; never a link, a folder or an input."""
    from esl_hw.interchange.nir_write import written_by_esl_hw

    for given in inputs:
        if given is not None and Path(given).resolve() == target.resolve():
            raise EslError(f"--out {target} is the input {given}; choose another output file")
    if not os.path.lexists(target):
        if not target.parent.is_dir():
            raise EslError(f"--out {target}: the folder {target.parent} does not exist")
        return
    if target.is_symlink() or not target.is_file():
        raise EslError(
            f"{target} exists and is not a regular file; esl-hw writes only its own NIR file there"
        )
    if not force:
        raise EslError(f"{target} exists; pass --force to replace a NIR file esl-hw wrote")
    if not written_by_esl_hw(target):
        raise EslError(f"{target} is not a NIR file esl-hw wrote; refusing to replace it even with --force")


def run_export_nir(args: argparse.Namespace) -> int:
    from esl_hw.interchange.nir_write import model_to_graph, write_nir

    check_file_target(args.out, args.force, [args.model, args.data])
    model = load_model(args.model)
    graph = model_to_graph(model, args.dt)
    if any(layer.reset == "subtract" for layer in model.hidden_layers):
        warn(
            "the model resets by subtraction; snnTorch's import_from_nir resets every neuron to zero and "
            "readers of nir >= 1.0.5 take the missing v_reset as 0 (docs/nir.md)"
        )
    data = None
    if args.data is not None:
        data = load_dataset(args.data)
        check_fits(data, model.n_inputs, model.n_outputs)
    write_nir(graph, args.out)
    rows: list[tuple[str, Any]] = [
        ("model", f"{args.model} ({model!r})"),
        ("nodes", ", ".join(f"{name} ({type(node).__name__})" for name, node in graph.nodes.items())),
        ("dt", f"{args.dt:g} s"),
        ("resets", ", ".join(layer.reset for layer in model.hidden_layers) or "-"),
    ]
    if data is not None:
        from esl_hw.interchange.nir_snntorch import snntorch_predictions

        images, labels = data.test.images, data.test.labels
        with progress.step(f"export-nir: snnTorch on {len(images)} test images"):
            imported = snntorch_predictions(args.out, images, model.timesteps, model.encoder)
        reference = predict(model, images)
        rows += [
            ("test images", f"{len(images)} ({data.source})"),
            ("int_accuracy (reference)", float(np.mean(reference == labels))),
            ("snntorch_accuracy (import_from_nir)", float(np.mean(imported == labels))),
            ("agreement snnTorch vs integer", float(np.mean(imported == reference))),
        ]
    print_table(f"esl-hw export-nir: NIR graph written to {args.out}", rows)
    return EXIT_OK
