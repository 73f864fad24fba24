"""The stages of one point of ``esl-hw explore``: their cache keys and requests, and the point's record.

A point needs up to three stages (:mod:`esl_hw.app.explore_stages`): ``train`` (its training
config), then ``cosim`` and, when it names a target, ``synth`` (both of the trained model with the
point's hardware settings). :func:`train_stage` and :func:`hardware_stages` give each one's cache
key (:func:`esl_hw.app.explore_cache.stage_key`) and the request a task runs; the keys hash exactly
what the stage's result depends on, so two points that differ only in hardware share their
training, and a point that differs only in its target shares its co-simulation when the synapse
memory comes out the same. :func:`point_record` turns a point and its stage results into the
record ``front.json`` lists (metrics, details, keys, status).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from esl_hw.app.explore_cache import StageCache, canonical_digest, stage_key
from esl_hw.app.explore_space import METRICS, Point
from esl_hw.artifact import Model
from esl_hw.artifact_io import load_model
from esl_hw.errors import EslError


@dataclasses.dataclass(frozen=True)
class StageRequest:
    """A stage to run: its name, cache key and the request :func:`explore_stages.run_stage` takes."""

    stage: str
    key: str
    request: dict[str, Any]
    gpus: int = 0


def model_digest(model: Model) -> str:
    """Hash of what a core is made from: every layer's arrays and parameters, the time steps, the
    encoder and the rewiring state of the artifact (not its other metadata, such as paths)."""
    digest = hashlib.sha256()
    header = {
        "timesteps": model.timesteps,
        "encoder": dataclasses.asdict(model.encoder),
        "rewiring": model.metadata.get("rewiring"),
    }
    digest.update(json.dumps(header, sort_keys=True, default=str).encode())
    for layer in model.layers:
        for field in dataclasses.fields(layer):
            value = getattr(layer, field.name)
            digest.update(f"\0{field.name}\0".encode())
            if isinstance(value, np.ndarray):
                array = np.ascontiguousarray(value)
                digest.update(f"{array.dtype.str}{array.shape}".encode())
                digest.update(array.data)
            else:
                digest.update(json.dumps(value, default=str).encode())
    return digest.hexdigest()


def _base_request(cache: StageCache, stage: str, key: str, inputs: dict, context: dict) -> StageRequest:
    request = {
        "cache": str(cache.root),
        "key": key,
        "inputs": inputs,
        "deadline_s": context["deadlines"][stage],
        "data_path": context["data_path"],
        "environment": context["environment"],
    }
    return StageRequest(stage, key, request)


def training_device(device: str, cluster_gpus: int) -> tuple[str, int]:
    """``train.device`` on a cluster with ``cluster_gpus`` GPUs (``auto``: ``cuda`` where it has one)
    and the GPUs a training task asks for."""
    if device == "cuda" and not cluster_gpus:
        raise EslError("train.device cuda: the Ray cluster has no GPU (use cpu or auto)")
    if device == "cuda" or (device == "auto" and cluster_gpus):
        return "cuda", 1
    return "cpu", 0


def train_stage(point: Point, cache: StageCache, context: dict[str, Any]) -> StageRequest:
    """The ``train`` stage of ``point``. ``context``: ``data`` (the data's identity), ``data_path``,
    ``gpus`` (the cluster's), ``deadlines``, ``environment``."""
    config = json.loads(json.dumps(point.config))
    config["data"]["path"] = None  # the data enters the key by its identity, not its path
    config["train"]["device"], gpus = training_device(config["train"]["device"], context["gpus"])
    inputs = {"config": config, "data": context["data"]}
    stage = _base_request(cache, "train", stage_key("train", inputs), inputs, context)
    stage.request["config"] = config
    return dataclasses.replace(stage, gpus=gpus)


def resolve_synapse_memory(model: Model, hardware: dict[str, Any]) -> str:
    """``block`` or ``spram`` for the point's ``synapse_memory`` setting (``auto``: SPRAM only where
    the target's block RAM is too small, :func:`esl_hw.fpga.synth.choose_synapse_memory`)."""
    requested, target = hardware["synapse_memory"], hardware["target"]
    if target is None:
        return "block" if requested == "auto" else requested
    from esl_hw.fpga.synth import choose_synapse_memory
    from esl_hw.fpga.targets import get_target

    return choose_synapse_memory(model, get_target(target), hardware["lanes"], requested)


def hardware_stages(
    point: Point, train: dict[str, Any], cache: StageCache, context: dict[str, Any]
) -> list[StageRequest]:
    """The ``cosim`` (and with a target, ``synth``) stage of ``point`` on its trained model
    (``train``: the train stage's result)."""
    model_dir = cache.entry("train", train["key"]) / "model"
    model = load_model(model_dir)
    hardware = point.hardware
    memory = resolve_synapse_memory(model, hardware)
    common = {"model": model_digest(model), "lanes": hardware["lanes"], "synapse_memory": memory}
    common["lane_fifo_depth"] = hardware["lane_fifo_depth"]
    cosim = {**common, "data": context["data"], "samples": hardware["samples"]}
    cosim["simulator"] = hardware["simulator"]
    stages = [_base_request(cache, "cosim", stage_key("cosim", cosim), cosim, context)]
    if hardware["target"] is not None:
        from esl_hw.fpga.targets import get_target

        target = hardware["target"]
        freq = hardware["freq_mhz"] or get_target(target).default_freq_mhz
        rewiring = None if hardware["rewiring"] == "auto" else hardware["rewiring"]
        synth = {**common, "target": target, "freq_mhz": float(freq), "rewiring": rewiring}
        stages.append(_base_request(cache, "synth", stage_key("synth", synth), synth, context))
    for stage in stages:
        stage.request["model_dir"] = str(model_dir)
    return stages


def _status(cosim: dict[str, Any], synth: dict[str, Any] | None) -> str:
    if cosim["rtl_mismatches"] or cosim["rtl_problems"]:
        return "mismatch"
    if synth is not None and not synth["fits"]:
        return "does not fit"
    return "ok"


def point_record(
    number: int, point: Point, results: dict[str, dict[str, Any]], cache: StageCache, session: int
) -> dict[str, Any]:
    """The record of a finished point: its ``metrics`` (:data:`METRICS`), ``details``, stage
    ``keys``, ``status``, the cache folders of its model and run, and the ``session`` that made it."""
    train, cosim, synth = results["train"], results["cosim"], results.get("synth")
    fmax = synth["fmax_mhz"] if synth is not None and synth["fits"] else None
    cycles = cosim["cycles_per_inference"]
    metrics = {name: None for name in METRICS}
    metrics.update(
        accuracy=train["accuracy"],
        cycles=cycles,
        latency_us=None if not fmax else round(cycles / fmax, 4),
        memory_bits=cosim["memory_bits"],
        energy_j=cosim["energy_per_inference_j"],
        synapses=train["synapses"],
    )
    if synth is not None:
        metrics.update(luts=synth["luts"], ffs=synth["ffs"], bram=synth["bram"], fmax_mhz=fmax)
    details = {
        name: train[name]
        for name in ("val_accuracy", "density", "sizes", "timesteps", "w_bits", "test_images", "dataset")
    }
    details.update({name: cosim[name] for name in ("rtl_samples", "rtl_mismatches", "rtl_accuracy")})
    details.update(cycle_floor=cosim["cycle_floor"], cycles_over_floor=cosim["cycles_over_floor"])
    details["synapse_memory"] = cosim["inputs"]["synapse_memory"]
    if synth is not None:
        for name in ("device", "freq_mhz", "timing_met", "rewiring", "spram", "utilisation"):
            details[name] = synth[name]
        if synth.get("refusal"):  # refused before any tool ran: why
            details["refusal"] = synth["refusal"]
    entry = cache.entry("train", train["key"])
    return {
        "number": number,
        "id": point.id,
        "label": point.label(),
        "settings": point.settings,
        "hardware": point.hardware,
        "status": _status(cosim, synth),
        "metrics": metrics,
        "details": details,
        "keys": {stage: result["key"] for stage, result in results.items()},
        "stage_seconds": {stage: result.get("seconds") for stage, result in results.items()},
        "model_dir": str(Path(entry) / "model"),
        "run_dir": str(Path(entry) / "run"),
        "session": session,
        "config_digest": canonical_digest(point.config)[:12],
    }
