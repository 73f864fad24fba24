"""Parse the harness trace and check it bit for bit against ``esl_hw.reference.run``.

A *sample* (one image) mismatches when any of its hidden spikes, tap potentials (when traced),
output accumulators or its prediction differs from the reference, or when the trace misses or
repeats any of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from esl_hw.artifact import Model
from esl_hw.encoding import encode
from esl_hw.reference import run
from esl_hw.rtl_gen import counter_names

#: Mismatch details kept in a report (the count covers all of them).
MAX_DETAILS = 20


@dataclass
class TraceRecord:
    """What the RTL reported for ``n_images`` images.

    ``spikes[l]`` is ``[T, N, n_out]`` bool, ``potentials[l]`` ``[T, N, n_out]`` int64 and
    ``tap_count[l]`` how many tap samples each ``(step, image, neuron)`` got (one expected);
    ``outputs`` is ``[N, n_outputs]`` with ``output_count`` alike; ``predictions`` ``[N]``
    (-1 where the inference never completed); ``counters`` one dict per completed image;
    ``rewires`` the ``(layer, error, state)`` of each rewire request and ``memory`` the
    ``(mem, addr, value)`` of each host-port read, in trace order.
    """

    spikes: list[np.ndarray]
    potentials: list[np.ndarray]
    tap_count: list[np.ndarray]
    outputs: np.ndarray
    output_count: np.ndarray
    predictions: np.ndarray
    counters: list[dict[str, int] | None]
    timed_out: bool = False
    problems: list[str] = field(default_factory=list)
    rewires: list[tuple[int, int, int]] = field(default_factory=list)
    memory: list[tuple[int, int, int]] = field(default_factory=list)


def parse_trace(path: Path, model: Model, n_images: int) -> TraceRecord:
    """Read the harness trace at ``path`` (format in :mod:`esl_hw.sim.harness`)."""
    steps = model.timesteps
    hidden = model.hidden_layers
    names = counter_names(model)
    record = TraceRecord(
        spikes=[np.zeros((steps, n_images, layer.n_out), dtype=bool) for layer in hidden],
        potentials=[np.zeros((steps, n_images, layer.n_out), dtype=np.int64) for layer in hidden],
        tap_count=[np.zeros((steps, n_images, layer.n_out), dtype=np.int64) for layer in hidden],
        outputs=np.zeros((n_images, model.n_outputs), dtype=np.int64),
        output_count=np.zeros((n_images, model.n_outputs), dtype=np.int64),
        predictions=np.full(n_images, -1, dtype=np.int64),
        counters=[None] * n_images,
    )
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        kind, *fields = line.split()
        try:
            values = [int(value) for value in fields]
            if kind == "S":
                layer, image, step, neuron = values
                record.spikes[layer][step, image, neuron] = True
            elif kind == "P":
                layer, image, step, neuron, potential = values
                record.potentials[layer][step, image, neuron] = potential
                record.tap_count[layer][step, image, neuron] += 1
            elif kind == "O":
                image, index, value = values
                record.outputs[image, index] = value
                record.output_count[image, index] += 1
            elif kind == "D":
                image, prediction, *counts = values
                record.predictions[image] = prediction
                record.counters[image] = dict(zip(names, counts, strict=True))
            elif kind == "R":
                layer, error, state = values
                record.rewires.append((layer, error, state))
            elif kind == "M":
                mem, addr, value = values
                record.memory.append((mem, addr, value))
            elif kind == "X":
                record.timed_out = True
                record.problems.append(f"watchdog expired after {values[0]} cycles")
            else:
                raise ValueError(f"unknown record {kind!r}")
        except (ValueError, IndexError) as error:
            record.problems.append(f"{path.name}:{number}: bad line {line!r} ({error})")
    return record


def select_images(record: TraceRecord, start: int, stop: int) -> TraceRecord:
    """The part of ``record`` about images ``start .. stop-1`` (renumbered from 0); problems,
    rewires and memory reads stay with the part that starts at image 0."""
    whole = start == 0
    return TraceRecord(
        spikes=[spikes[:, start:stop] for spikes in record.spikes],
        potentials=[potentials[:, start:stop] for potentials in record.potentials],
        tap_count=[count[:, start:stop] for count in record.tap_count],
        outputs=record.outputs[start:stop],
        output_count=record.output_count[start:stop],
        predictions=record.predictions[start:stop],
        counters=record.counters[start:stop],
        timed_out=record.timed_out,
        problems=list(record.problems) if whole else [],
        rewires=list(record.rewires) if whole else [],
        memory=list(record.memory) if whole else [],
    )


def _first_difference(got: np.ndarray, want: np.ndarray) -> str:
    where = tuple(int(axis[0]) for axis in np.nonzero(got != want))
    return f"at {where}: got {got[where]}, expected {want[where]}"


def compare(model: Model, images: np.ndarray, record: TraceRecord, trace_potentials: bool = True) -> dict:
    """Check ``record`` against the reference model on ``images``; return a JSON-able report.

    Report keys: ``ok`` (no mismatch and no trace problem), ``samples``, ``mismatches`` (samples
    with any differing bit), ``mismatched`` (their indices), ``details`` (first few differences),
    ``predictions``, ``expected_predictions``,
    ``outputs``, ``counters``, ``problems``, ``timed_out``.
    """
    n_images = len(images)
    reference = run(model, encode(images, model.timesteps, model.encoder), record_potentials=trace_potentials)
    bad = np.zeros(n_images, dtype=bool)
    details: list[str] = []

    def note(sample_bad: np.ndarray, what: str, got: np.ndarray, want: np.ndarray) -> None:
        for sample in np.flatnonzero(sample_bad & ~bad):
            if len(details) < MAX_DETAILS:
                details.append(
                    f"image {sample}: {what} differs (first in batch {_first_difference(got, want)})"
                )
        bad[:] |= sample_bad

    for layer in range(len(model.hidden_layers)):
        got, want = record.spikes[layer], reference.spikes[layer]
        note((got != want).any(axis=(0, 2)), f"layer {layer} spike", got, want)
        if trace_potentials:
            count = record.tap_count[layer]
            note((count != 1).any(axis=(0, 2)), f"layer {layer} tap count", count, np.ones_like(count))
            got, want = record.potentials[layer], reference.potentials[layer]
            note((got != want).any(axis=(0, 2)), f"layer {layer} potential", got, want)
    count = record.output_count
    note((count != 1).any(axis=1), "output count", count, np.ones_like(count))
    note((record.outputs != reference.outputs).any(axis=1), "output", record.outputs, reference.outputs)
    note(record.predictions != reference.predictions, "prediction", record.predictions, reference.predictions)
    return {
        "ok": not bad.any() and not record.problems,
        "samples": n_images,
        "mismatches": int(bad.sum()),
        "mismatched": np.flatnonzero(bad).tolist(),
        "details": details,
        "predictions": record.predictions.tolist(),
        "expected_predictions": reference.predictions.tolist(),
        "outputs": record.outputs.tolist(),
        "counters": record.counters,
        "problems": record.problems,
        "timed_out": record.timed_out,
    }
