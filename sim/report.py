"""The ``sim.json`` report of a co-simulation: bit-exactness, cycles against the floor, memory, energy.

:func:`sim_report` turns a :class:`~esl_hw.sim.runner.CosimResult` into the dictionary that
``esl-hw sim`` writes to ``DIR/sim.json`` (the key names are those of the demo's
``summary.json``), and :func:`report_rows` into the rows of the printed table.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from esl_hw.artifact import Model
from esl_hw.encoding import encode
from esl_hw.metrics import (
    EnergyConstants,
    cycle_floor,
    energy_per_inference,
    lane_busy_cycles,
    serial_cycle_floor,
    synaptic_ops,
)
from esl_hw.reference import run
from esl_hw.rtl_gen.plan import CorePlan, as_plan, dense_memory_bits, plan_model


def sim_report(
    model: CorePlan | Model,
    result: Any,
    images: np.ndarray,
    labels: np.ndarray,
    energy_constants: EnergyConstants | None = None,
) -> dict[str, Any]:
    """The ``sim.json`` dictionary for ``result`` (run on the first ``result.samples`` images) of
    the core of ``model`` (its plan; or the model, planned with the result's configuration).

    Keys: ``simulator``, ``lanes``, ``rtl_samples``, ``rtl_mismatches``, ``rtl_problems``,
    ``rtl_accuracy``, ``reference_accuracy_rtl_samples`` (the reference on the same images),
    ``cycles_per_inference`` (mean), ``cycles_p99``, ``cycle_floor``
    (``max_l (SOPs_l + T·N_l) / L``, mean), ``cycles_over_floor``, ``cycle_floor_serial``,
    ``sops_per_inference``, ``sops_per_layer``, ``sops_counter_matches_reference``,
    ``spikes_per_inference`` (per LIF layer), ``memory_reads_per_inference`` and
    ``memory_writes_per_inference`` (per memory kind), ``memory_bits`` (per memory, this core),
    ``memory_bits_dense`` (a dense design of the same network), ``energy_per_inference_j``,
    ``energy_breakdown``, ``sim_build_seconds``, ``sim_run_seconds``,
    ``lane_busy_cycles_per_step`` (``[layer][step][lane]``, mean over the images: the cycles each
    lane is busy in each step, from the reference's events, :func:`esl_hw.metrics.lane_busy_cycles`;
    the core counts only totals per inference), ``streaming`` (the core is built with streamed
    inferences, :class:`~esl_hw.rtl_gen.hardware.HardwareConfig`), ``streamed`` (the images were
    streamed back to back, consecutive inferences overlapping) and ``cycles_between_results``
    (mean cycles from one image's ``done`` to the next: the steady-state cost per inference of the
    stream; in a run that waits for each ``done`` the latency plus the harness's turnaround;
    ``None`` for one image).
    """
    plan = _plan_of(model, result)
    model, lanes = plan.model, plan.lanes
    cycles = np.asarray(result.cycles, dtype=np.float64)
    sops = np.asarray(result.sops, dtype=np.float64)
    reads = {kind: float(np.mean(counts)) for kind, counts in result.memory_reads.items()}
    writes = {kind: float(np.mean(counts)) for kind, counts in result.memory_writes.items()}
    accesses = sum(reads.values()) + sum(writes.values())
    images = images[: result.samples]
    spikes = encode(images, model.timesteps, model.encoder)
    trace = run(model, spikes, record_potentials=False)
    layer_sops = synaptic_ops(model, spikes, trace)
    lane_busy = lane_busy_cycles(model, spikes, trace, lanes).mean(axis=0)
    floors = np.array([cycle_floor(model, counts, lanes) for counts in layer_sops])
    serial = np.array([serial_cycle_floor(model, count, lanes) for count in sops])
    energy = energy_per_inference(float(sops.mean()), accesses, energy_constants)
    hidden_spikes = np.asarray(result.spikes, dtype=np.float64).reshape(len(cycles), -1)
    return {
        "simulator": result.simulator,
        "lanes": lanes,
        "rtl_samples": result.samples,
        "rtl_mismatches": result.mismatches,
        "rtl_problems": list(result.problems),
        "rtl_accuracy": float(np.mean(np.asarray(result.predictions) == labels[: result.samples])),
        "reference_accuracy_rtl_samples": float(
            np.mean(np.asarray(result.expected_predictions) == labels[: result.samples])
        ),
        "cycles_per_inference": float(cycles.mean()),
        "cycles_p99": float(np.percentile(cycles, 99)),
        "cycle_floor": float(floors.mean()),
        "cycles_over_floor": float(cycles.mean() / floors.mean()),
        "cycle_floor_serial": float(serial.mean()),
        "sops_per_inference": float(sops.mean()),
        "sops_per_layer": layer_sops.mean(axis=0).tolist(),
        "sops_counter_matches_reference": bool(np.array_equal(layer_sops.sum(axis=1), result.sops)),
        "spikes_per_inference": hidden_spikes.mean(axis=0).tolist(),
        "memory_reads_per_inference": reads,
        "memory_writes_per_inference": writes,
        "memory_bits": plan.memory_bits(),
        "memory_bits_dense": dense_memory_bits(model),
        "energy_per_inference_j": energy["total_j"],
        "energy_breakdown": energy,
        "sim_build_seconds": result.build_seconds,
        "sim_run_seconds": result.run_seconds,
        "lane_busy_cycles_per_step": lane_busy.tolist(),
        "streaming": plan.config.streaming,
        "streamed": bool(getattr(result, "stream", False)),
        "cycles_between_results": getattr(result, "cycles_between_results", None),
    }


def _plan_of(model: CorePlan | Model, result: Any) -> CorePlan:
    """The plan of the simulated core: ``model`` itself, or the model under the result's
    configuration (``result.config``; else its ``lanes``)."""
    config = getattr(result, "config", None)
    if isinstance(model, Model) and config is not None:
        return plan_model(model, config)
    return as_plan(model, getattr(result, "lanes", None))


def _between(report: dict[str, Any]) -> str:
    """``cycles_between_results`` for the table (``-`` when there is none)."""
    value = report.get("cycles_between_results")
    return "-" if value is None else f"{value:.1f}"


def report_rows(report: dict[str, Any]) -> list[tuple[str, Any]]:
    """Rows ``(name, value)`` of the table ``esl-hw sim`` prints for a :func:`sim_report` dict."""
    return [
        ("lanes", report["lanes"]),
        ("core streams inferences", report.get("streaming", False)),
        ("samples", report["rtl_samples"]),
        ("mismatching samples", report["rtl_mismatches"]),
        (
            "accuracy: RTL / reference, same images",
            f"{report['rtl_accuracy']:.4f} / {report['reference_accuracy_rtl_samples']:.4f}",
        ),
        ("cycles per inference (p99)", f"{report['cycles_per_inference']:.1f} ({report['cycles_p99']:.0f})"),
        ("cycles between results" + (" (streamed)" if report.get("streamed") else ""), _between(report)),
        ("cycle floor (ratio)", f"{report['cycle_floor']:.1f} ({report['cycles_over_floor']:.3f})"),
        ("synaptic ops per inference", report["sops_per_inference"]),
        ("spikes per inference", ", ".join(f"{count:.1f}" for count in report["spikes_per_inference"])),
        (
            "memory bits (dense design)",
            f"{report['memory_bits']['total']} ({report['memory_bits_dense']['total']})",
        ),
        ("energy per inference (J)", report["energy_per_inference_j"]),
    ]
