"""One stage of one point of ``esl-hw explore``, run where Ray puts it, its result kept in the stage cache.

:func:`run_stage` is what a Ray task runs (and what a test may call directly): it returns the
cached result of ``(stage, key)`` when there is one, else claims the entry
(:meth:`esl_hw.app.explore_cache.StageCache.claim`), runs the stage in its work folder and commits
it. The stages are the project's own code:

- ``train``: :func:`esl_hw.train.loop.train` (resuming the run a killed task left in the work
  folder), :func:`esl_hw.train.export.export_run`, and the integer reference
  (:func:`esl_hw.reference.predict`) on the whole test set;
- ``cosim``: :func:`esl_hw.sim.run_cosim` on the first ``samples`` test images, checked bit for bit
  against the reference, and :func:`esl_hw.sim.sim_report` (cycles, memory, energy);
- ``synth``: :func:`esl_hw.fpga.synthesize` (Yosys and nextpnr): resources and post-route Fmax; a
  design that does not fit is a result too (``fits: false``).

The request a task gets is plain data: the cache folder, the key and the inputs it was computed
from (the driver computes keys, :mod:`esl_hw.app.explore`), the data folder and the environment
variables of the build cache. Each stage keeps its report in the entry (``sim.json``,
``report.json``), its model artifact (``model/``) and run (``run/``) for ``train``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from esl_hw import progress
from esl_hw.app.explore_cache import Claim, StageCache, write_json_atomic

#: environment variables a task takes over from the driver (the simulator build cache)
PASSED_ENVIRONMENT = ("ESL_HW_CACHE", "ESL_HW_CACHE_MAX_MB", "XDG_CACHE_HOME")
#: co-simulation figures a point keeps (the whole report stays in the entry's ``sim.json``)
COSIM_FIGURES = (
    "simulator",
    "lanes",
    "rtl_samples",
    "rtl_mismatches",
    "rtl_problems",
    "potentials_checked",
    "rtl_accuracy",
    "reference_accuracy_rtl_samples",
    "cycles_per_inference",
    "cycles_p99",
    "cycle_floor",
    "cycles_over_floor",
    "sops_per_inference",
    "energy_per_inference_j",
    "sim_build_seconds",
    "sim_run_seconds",
)


def _dataset(path: str | None):
    from esl_hw.datasets import load_dataset

    return load_dataset(path)


def produce_train(claim: Claim, request: dict[str, Any]) -> dict[str, Any]:
    """Train (or resume) the run of ``request["config"]``, export it and score the integer
    reference on the whole test set."""
    from esl_hw.artifact_io import save_model
    from esl_hw.datasets import check_fits
    from esl_hw.reference import predict
    from esl_hw.train.checkpoint import STATE_FILE, work_folder
    from esl_hw.train.config import config_from_dict
    from esl_hw.train.export import CHECKPOINT_FILE, METRICS_FILE, export_run, load_checkpoint
    from esl_hw.train.loop import train

    raw = json.loads(json.dumps(request["config"]))
    raw["data"]["path"] = request["data_path"]
    config = config_from_dict(raw)
    run_dir = claim.work / "run"
    resumed_after = None
    if not (run_dir / CHECKPOINT_FILE).is_file():  # a killed task may have finished training
        partial = work_folder(run_dir)
        resume = (partial / STATE_FILE).is_file()
        if resume:
            metrics = partial / METRICS_FILE
            resumed_after = len(metrics.read_text().splitlines()) if metrics.is_file() else 0
        else:
            shutil.rmtree(partial, ignore_errors=True)  # ours: the entry's lock is held
            shutil.rmtree(run_dir, ignore_errors=True)
        trained = train(config, run_dir, resume=resume, progress=False)
        train_seconds = trained.seconds
    else:
        train_seconds = None
    checkpoint = load_checkpoint(run_dir)
    model = export_run(run_dir)
    model.metadata["run_dir"] = str((claim.entry / "run").resolve())
    save_model(model, claim.work / "model", overwrite=True)
    data = _dataset(request["data_path"])
    check_fits(data, model.n_inputs, model.n_outputs)
    predictions = predict(model, data.test.images)
    return {
        "accuracy": float(np.mean(predictions == data.test.labels)),
        "test_images": len(data.test),
        "dataset": data.source,
        "val_accuracy": checkpoint["val_accuracy"],
        "float_val_accuracy": checkpoint["float_val_accuracy"],
        "best_epoch": int(checkpoint["epoch"]),
        "sizes": [model.n_inputs, *(layer.n_out for layer in model.layers)],
        "timesteps": model.timesteps,
        "synapses": model.synapses,
        "density": model.density,
        "w_bits": [layer.w_bits for layer in model.layers],
        "train_seconds": train_seconds,
        "resumed_after_epoch": resumed_after,
    }


def produce_cosim(claim: Claim, request: dict[str, Any]) -> dict[str, Any]:
    """Co-simulate the model on the first ``samples`` test images, bit for bit against the
    reference; keep ``sim.json`` in the entry."""
    from esl_hw.artifact_io import load_model
    from esl_hw.sim import run_cosim, sim_report

    inputs = request["inputs"]
    model = load_model(request["model_dir"])
    data = _dataset(request["data_path"])
    count = min(inputs["samples"], len(data.test))
    folder = claim.work / "cosim"
    result = run_cosim(
        model,
        data.test.images[:count],
        simulator=inputs["simulator"],
        build_dir=folder,
        trace_potentials=count <= 1000,
        lanes=inputs["lanes"],
        synapse_memory=inputs["synapse_memory"],
        lane_fifo_depth=inputs["lane_fifo_depth"],
    )
    report = sim_report(model, result, data.test.images, data.test.labels)
    report["potentials_checked"] = count <= 1000
    shutil.rmtree(folder, ignore_errors=True)  # events and traces: large, and checked already
    write_json_atomic(claim.work / "sim.json", report)
    figures = {name: report[name] for name in COSIM_FIGURES}
    figures["memory_bits"] = report["memory_bits"]["total"]
    return figures


def produce_synth(claim: Claim, request: dict[str, Any]) -> dict[str, Any]:
    """Synthesise and place-and-route the core for its target; keep ``report.json`` and
    ``report.md`` in the entry (a design that does not fit included)."""
    from esl_hw.artifact_io import load_model
    from esl_hw.fpga.synth import DoesNotFit, synthesize

    inputs = request["inputs"]
    model = load_model(request["model_dir"])
    build = claim.work / "build"
    shutil.rmtree(build, ignore_errors=True)
    fits, refusal = True, None
    try:
        synthesize(
            model,
            inputs["target"],
            build,
            freq_mhz=inputs["freq_mhz"],
            lanes=inputs["lanes"],
            allow_timing_failure=True,
            rewiring=inputs["rewiring"],
            synapse_memory=inputs["synapse_memory"],
            lane_fifo_depth=inputs["lane_fifo_depth"],
        )
    except DoesNotFit as error:
        fits, refusal = False, str(error)
    if not (build / "report.json").is_file():  # refused before any tool ran (block-memory estimate)
        shutil.rmtree(build, ignore_errors=True)
        return refused_synth(inputs, refusal)
    report = json.loads((build / "report.json").read_text())
    for name in ("report.json", "report.md"):
        if (build / name).is_file():
            shutil.copy2(build / name, claim.work / name)
    shutil.rmtree(build, ignore_errors=True)  # netlists and logs: large; the entry keeps the reports
    utilisation = report["utilisation"]
    return {
        "fits": fits,
        "device": report["device"],
        "fmax_mhz": report["fmax_mhz"],
        "freq_mhz": report["freq_mhz"],
        "timing_met": report["timing_met"],
        "utilisation": utilisation,
        "luts": utilisation.get("luts", {}).get("used"),
        "ffs": utilisation.get("ffs", {}).get("used"),
        "bram": utilisation.get("bram", {}).get("used"),
        "spram": utilisation.get("spram", {}).get("used"),
        "rewiring": report["rewiring"],
        "synapse_memory": report["synapse_memory"],
        "tool_seconds": report["seconds"],
    }


def refused_synth(inputs: dict[str, Any], refusal: str | None) -> dict[str, Any]:
    """The synth result of a design that :func:`~esl_hw.fpga.synth.synthesize` refused before any
    tool ran (its block memories alone exceed the device, so no report was written): a design
    that does not fit, with the refusal's text and no figures."""
    from esl_hw.fpga.targets import get_target

    if refusal is None:
        raise RuntimeError("synthesize wrote no report.json and raised nothing")
    return {
        "fits": False,
        "refusal": refusal,
        "device": get_target(inputs["target"]).device,
        "fmax_mhz": None,
        "freq_mhz": inputs["freq_mhz"],
        "timing_met": None,
        "utilisation": {},
        "luts": None,
        "ffs": None,
        "bram": None,
        "spram": None,
        "rewiring": inputs["rewiring"],
        "synapse_memory": inputs["synapse_memory"],
        "tool_seconds": {},
    }


PRODUCERS = {"train": produce_train, "cosim": produce_cosim, "synth": produce_synth}


def run_stage(stage: str, request: dict[str, Any]) -> dict[str, Any]:
    """Run ``stage`` for ``request`` through the cache; return ``{"result", "computed", "seconds"}``
    (``computed``: this call ran the stage rather than finding it in the cache). Progress is
    silenced and the request's environment set while it runs, both restored after."""
    started = time.perf_counter()
    saved = {name: os.environ.get(name) for name in request.get("environment", {})}
    os.environ.update(request.get("environment", {}))
    quiet = progress.set_quiet(True)
    try:
        cache = StageCache(Path(request["cache"]))
        key = request["key"]
        found = cache.lookup(stage, key)
        if found is None:
            with cache.claim(stage, key, request["deadline_s"]) as claim:
                found = claim.result
                if found is None:
                    result = PRODUCERS[stage](claim, request)
                    result["seconds"] = round(time.perf_counter() - started, 2)
                    result["inputs"] = request["inputs"]
                    payload = cache.commit(claim, result)
                    return {"result": payload, "computed": True, "seconds": result["seconds"]}
        return {"result": found, "computed": False, "seconds": round(time.perf_counter() - started, 2)}
    finally:
        progress.set_quiet(quiet)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
