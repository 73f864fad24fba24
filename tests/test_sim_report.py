"""sim.json report from a co-simulation result (a stand-in result: no simulator needed)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from rtl_support import random_model

from esl_hw.encoding import encode
from esl_hw.metrics import EnergyConstants, lane_busy_cycles, synaptic_ops
from esl_hw.reference import run
from esl_hw.rtl_gen.hardware import HardwareConfig
from esl_hw.rtl_gen.plan import dense_memory_bits, memory_bits, plan_model
from esl_hw.sim.report import report_rows, sim_report


def fake_result(model, images, lanes: int):
    spikes = encode(images, model.timesteps, model.encoder)
    trace = run(model, spikes, record_potentials=False)
    sops = synaptic_ops(model, spikes, trace).sum(axis=1).tolist()
    return SimpleNamespace(
        simulator="icarus",
        lanes=lanes,
        samples=len(images),
        mismatches=0,
        problems=[],
        predictions=trace.predictions.tolist(),
        expected_predictions=trace.predictions.tolist(),
        cycles=[100 + index for index in range(len(images))],
        sops=sops,
        spikes=[[int(layer[:, sample].sum()) for layer in trace.spikes] for sample in range(len(images))],
        memory_reads={"syn": sops, "ptr": [2 * lanes] * len(images)},
        memory_writes={"cur": [3] * len(images)},
        build_seconds=1.0,
        run_seconds=2.0,
    )


def test_report_keys_and_values() -> None:
    rng = np.random.default_rng(0)
    model = random_model(rng, [12, 8, 4], timesteps=3)
    images = rng.integers(0, 256, (5, 12), dtype=np.uint8)
    result = fake_result(model, images, lanes=4)
    labels = np.asarray(result.predictions)
    report = sim_report(model, result, images, labels, EnergyConstants(e_sop=1.0, e_mem_access=0.0))
    assert report["lanes"] == 4 and report["rtl_samples"] == 5 and report["rtl_accuracy"] == 1.0
    labels_off = (labels + 1) % 4  # the reference on the same images is scored on its own predictions
    other = sim_report(model, result, images, labels_off)
    expected = np.mean(np.asarray(result.expected_predictions) == labels_off)
    assert other["reference_accuracy_rtl_samples"] == expected
    assert report["cycles_per_inference"] == 102.0
    assert report["sops_counter_matches_reference"]
    assert report["memory_bits"] == memory_bits(model, lanes=4)
    assert report["memory_bits_dense"] == dense_memory_bits(model)
    assert report["energy_per_inference_j"] == np.mean(result.sops)
    assert report["cycle_floor"] > 0 and report["cycles_over_floor"] == 102.0 / report["cycle_floor"]
    names = [name for name, _ in report_rows(report)]
    assert "cycle floor (ratio)" in names and "memory bits (dense design)" in names
    spikes = encode(images, model.timesteps, model.encoder)
    busy = lane_busy_cycles(model, spikes, run(model, spikes, record_potentials=False), lanes=4)
    assert np.array_equal(report["lane_busy_cycles_per_step"], busy.mean(axis=0))
    assert np.shape(report["lane_busy_cycles_per_step"]) == (2, 3, 4)  # layers, steps, lanes
    assert report["streaming"] is True and report["streamed"] is False
    assert ("core streams inferences", True) in report_rows(report)
    result.config = HardwareConfig(lanes=4, streaming=False)  # a core built without streaming
    plain = sim_report(model, result, images, labels)
    assert plain["streaming"] is False and ("core streams inferences", False) in report_rows(plain)
    assert plain["memory_bits"] == report["memory_bits"]


def test_memory_bits_are_those_of_the_simulated_plan() -> None:
    # The report's memory figures are the simulated core's: its whole configuration, not only lanes.
    rng = np.random.default_rng(0)
    model = random_model(rng, [12, 8, 4], timesteps=3)
    images = rng.integers(0, 256, (2, 12), dtype=np.uint8)
    config = HardwareConfig(lanes=2, lane_fifo_depth=4, fifo_depth=8)
    result = fake_result(model, images, lanes=2)
    result.config = config
    labels = np.asarray(result.predictions)
    expected = plan_model(model, config).memory_bits()
    assert expected != memory_bits(model, lanes=2)
    assert sim_report(model, result, images, labels)["memory_bits"] == expected
    del result.config
    assert sim_report(plan_model(model, config), result, images, labels)["memory_bits"] == expected
