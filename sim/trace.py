"""Parse the harness trace and check it bit for bit against ``esl_hw.reference.run``.

A *sample* (one image) mismatches when any of its hidden spikes, tap potentials (when traced),
output accumulators, its prediction or (given the lane count) its performance counters other
than ``cycles`` differ from the reference, or when the trace misses or repeats any of them.

:func:`parse_trace` reads the many ``S``, ``P`` and ``O`` lines in bulk with numpy (a 10,000-image
MNIST trace has millions of spike lines) and every other line, and any line the bulk reader does
not take as well-formed and in range, one at a time, as before: both give the same record.
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
    ``finish_cycles`` ``[N]`` the harness cycle of each image's ``done`` (-1: none);
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
    finish_cycles: np.ndarray | None = None
    timed_out: bool = False
    problems: list[str] = field(default_factory=list)
    rewires: list[tuple[int, int, int]] = field(default_factory=list)
    memory: list[tuple[int, int, int]] = field(default_factory=list)


def _empty_record(model: Model, n_images: int) -> TraceRecord:
    steps, hidden = model.timesteps, model.hidden_layers
    return TraceRecord(
        spikes=[np.zeros((steps, n_images, layer.n_out), dtype=bool) for layer in hidden],
        potentials=[np.zeros((steps, n_images, layer.n_out), dtype=np.int64) for layer in hidden],
        tap_count=[np.zeros((steps, n_images, layer.n_out), dtype=np.int64) for layer in hidden],
        outputs=np.zeros((n_images, model.n_outputs), dtype=np.int64),
        output_count=np.zeros((n_images, model.n_outputs), dtype=np.int64),
        predictions=np.full(n_images, -1, dtype=np.int64),
        counters=[None] * n_images,
        finish_cycles=np.full(n_images, -1, dtype=np.int64),
    )


def parse_trace(path: Path, model: Model, n_images: int) -> TraceRecord:
    """Read the harness trace at ``path`` (format in :mod:`esl_hw.sim.harness`)."""
    record = _empty_record(model, n_images)
    names = counter_names(model)
    data = path.read_bytes()
    lines = None
    if not _BULK_REFUSED[np.frombuffer(data, np.uint8)].any():  # other line breaks, non-ASCII text
        lines = _parse_bulk(data, record)
    if lines is None:  # an S, P or O line the bulk reader refused: read it all as before
        record = _empty_record(model, n_images)
        lines = enumerate(data.decode().splitlines(), start=1)
    for number, line in lines:
        _parse_line(record, names, path.name, number, line)
    return record


def _parse_line(record: TraceRecord, names: list[str], name: str, number: int, line: str) -> None:
    """Enter trace line ``number`` (``line``) into ``record``; a bad line becomes a problem."""
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
        elif kind == "F":
            image, cycle = values
            record.finish_cycles[image] = cycle
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
        record.problems.append(f"{name}:{number}: bad line {line!r} ({error})")


# --- bulk reading of the S, P and O lines ---------------------------------------------------------

#: the kinds read in bulk and their field counts
_BULK_FIELDS = {ord("S"): 4, ord("P"): 5, ord("O"): 3}
#: bytes the bulk reader leaves to ``str.splitlines`` (line breaks other than ``\n``, non-ASCII)
_BULK_REFUSED = np.zeros(256, dtype=bool)
_BULK_REFUSED[[0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, *range(0x80, 0x100)]] = True
#: bytes of trace read in bulk at once (whole lines)
_CHUNK_BYTES = 1 << 22
#: longest number read in bulk (decimal digits; float64 sums stay exact)
_MAX_DIGITS = 15
_NEWLINE, _SPACE, _MINUS = ord("\n"), ord(" "), ord("-")


def _parse_bulk(data: bytes, record: TraceRecord) -> list[tuple[int, str]] | None:
    """Enter the ``S``, ``P`` and ``O`` lines of ``data`` into ``record``; return every other line,
    numbered from 1, in order. ``None`` when one of those lines is not well formed and in range:
    read one at a time after the others, its effect could differ (duplicates: the last one wins)."""
    rest: list[tuple[int, str]] = []
    offset, first_line = 0, 1
    while offset < len(data):
        stop = data.rfind(b"\n", offset, offset + _CHUNK_BYTES) + 1
        if stop <= offset:  # a last line without a newline, or one longer than a chunk
            stop = data.find(b"\n", offset + _CHUNK_BYTES) + 1 or len(data)
        chunk = data[offset:stop]
        chunk += b"" if chunk.endswith(b"\n") else b"\n"
        lines = _parse_chunk(chunk, record, first_line, rest)
        if lines is None:
            return None
        first_line += lines
        offset = stop
    return rest


def _parse_chunk(
    chunk: bytes, record: TraceRecord, first_line: int, rest: list[tuple[int, str]]
) -> int | None:
    """:func:`_parse_bulk` on whole lines ``chunk`` (the first is line ``first_line``); append the
    lines left to :func:`_parse_line` to ``rest``; return the number of lines (``None``: an ``S``,
    ``P`` or ``O`` line refused)."""
    buf = np.frombuffer(chunk, np.uint8)
    newline = buf == _NEWLINE
    ends = np.flatnonzero(newline)
    starts = np.concatenate(([0], ends[:-1] + 1))
    kinds = buf[starts]
    digit = (buf >= ord("0")) & (buf <= ord("9"))
    index = np.arange(len(buf), dtype=np.int32)
    # per byte: the digits after it up to the next space or newline (a digit's decimal place)
    place = (
        np.minimum.accumulate(np.where(newline | (buf == _SPACE), index, len(buf))[::-1])[::-1] - index - 1
    )
    taken = _well_formed(buf, digit, np.where(digit, place, 0), starts, kinds)
    line_of, values = _numbers(buf, digit, place, np.cumsum(newline, dtype=np.int32) - newline, taken)
    if np.isin(kinds[~taken], list(_BULK_FIELDS)).any():
        return None
    for kind, fields in _BULK_FIELDS.items():
        rows = values[kinds[line_of] == kind].reshape(-1, fields)
        if not _in_bounds(record, kind, rows):
            return None
        _enter(record, kind, rows)
    rest.extend(
        (first_line + int(line), chunk[starts[line] : ends[line]].decode()) for line in np.flatnonzero(~taken)
    )
    return len(ends)


def _well_formed(
    buf: np.ndarray, digit: np.ndarray, place: np.ndarray, starts: np.ndarray, kinds: np.ndarray
) -> np.ndarray:
    """Per line: a bulk kind, then its number of fields, each a space and a decimal integer of at
    most :data:`_MAX_DIGITS` digits (optionally negative), then the newline. ``place`` is each
    digit's decimal place."""
    after = np.append(buf[1:], _NEWLINE)
    after_digit = np.append(digit[1:], False)
    before = np.insert(buf[:-1], 0, _NEWLINE)
    fine = digit | (buf == _NEWLINE)
    fine |= (buf == _SPACE) & (after_digit | (after == _MINUS))
    fine |= (buf == _MINUS) & (before == _SPACE) & after_digit
    fine[starts] = True  # the kind
    bad = np.add.reduceat((~fine).astype(np.int32), starts)
    spaces = np.add.reduceat((buf == _SPACE).astype(np.int32), starts)
    expected = np.full(256, -1)
    expected[list(_BULK_FIELDS)] = list(_BULK_FIELDS.values())
    second = buf[np.minimum(starts + 1, len(buf) - 1)]
    longest = np.maximum.reduceat(place, starts) + 1
    return (bad == 0) & (spaces == expected[kinds]) & (second == _SPACE) & (longest <= _MAX_DIGITS)


#: powers of ten up to the largest decimal place read in bulk
_POWERS = 10 ** np.arange(_MAX_DIGITS, dtype=np.int64)


def _numbers(
    buf: np.ndarray, digit: np.ndarray, place: np.ndarray, line_index: np.ndarray, taken: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The line of every number on the ``taken`` lines and its value, in order (``place``: each
    digit's decimal place, ``line_index``: each byte's line)."""
    spaces = np.flatnonzero(buf == _SPACE)
    spaces = spaces[taken[line_index[spaces]]]
    if len(spaces) == 0:
        return spaces, spaces.astype(np.int64)
    digit = digit & taken[line_index]
    worth = np.where(digit, (buf - ord("0")) * _POWERS[np.where(digit, place, 0)], 0)
    values = np.add.reduceat(worth, spaces)
    values[buf[spaces + 1] == _MINUS] *= -1
    return line_index[spaces], values


def _in_bounds(record: TraceRecord, kind: int, rows: np.ndarray) -> bool:
    """Whether every index in ``rows`` (the numbers of lines of ``kind``) is in range."""
    if kind == ord("O"):
        return bool(_in_range((rows[:, 0], rows[:, 1]), record.outputs.shape).all())
    layers = rows[:, 0]
    if ((layers < 0) | (layers >= len(record.spikes))).any():
        return False
    return all(
        _in_range(
            (rows[layers == layer, 2], rows[layers == layer, 1], rows[layers == layer, 3]), spikes.shape
        ).all()
        for layer, spikes in enumerate(record.spikes)
    )


def _enter(record: TraceRecord, kind: int, rows: np.ndarray) -> None:
    """Enter ``rows`` (the numbers of lines of ``kind``, every index in range) into ``record``."""
    if kind == ord("O"):
        at = (rows[:, 0], rows[:, 1])
        record.outputs[at] = rows[:, 2]
        np.add.at(record.output_count, at, 1)
        return
    for layer, spikes in enumerate(record.spikes):
        mine = rows[rows[:, 0] == layer]
        at = (mine[:, 2], mine[:, 1], mine[:, 3])
        if kind == ord("S"):
            spikes[at] = True
        else:
            record.potentials[layer][at] = mine[:, 4]
            np.add.at(record.tap_count[layer], at, 1)


def _in_range(indices: tuple[np.ndarray, ...], shape: tuple[int, ...]) -> np.ndarray:
    """Where every one of ``indices`` is in ``0 .. size-1`` of its axis of ``shape``."""
    ok = np.ones(len(indices[0]), dtype=bool)
    for index, size in zip(indices, shape, strict=True):
        ok &= (index >= 0) & (index < size)
    return ok


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
        finish_cycles=None if record.finish_cycles is None else record.finish_cycles[start:stop],
        timed_out=record.timed_out,
        problems=list(record.problems) if whole else [],
        rewires=list(record.rewires) if whole else [],
        memory=list(record.memory) if whole else [],
    )


def _first_difference(got: np.ndarray, want: np.ndarray) -> str:
    where = tuple(int(axis[0]) for axis in np.nonzero(got != want))
    return f"at {where}: got {got[where]}, expected {want[where]}"


def expected_counters(model: Model, spikes: np.ndarray, reference, lanes: int) -> dict[str, np.ndarray]:
    """Per image the counters the core must report (all but ``cycles``) on ``spikes`` ``[T, N,
    n_in]``, from the ``reference`` run: ``E_l`` events into layer ``l`` (its input spikes),
    ``SOPs_l = Σ E · fan-out``, ``N_l`` neurons of a hidden layer::

        sops = syn_reads = Σ_l SOPs_l            ptr_reads = 2·L·Σ_l E_l
        cur_reads = cur_writes = Σ_hidden SOPs_l + T·N_l          pot_reads = pot_writes = Σ T·N_l
        acc_reads = acc_writes = SOPs_out + n_out                 spikes<l> = Σ spikes of layer l
    """
    inputs = [np.asarray(spikes, dtype=np.int64)]
    inputs += [np.asarray(layer, dtype=np.int64) for layer in reference.spikes]
    sops = [
        (layer_in * np.diff(layer.row_ptr)).sum(axis=(0, 2))
        for layer, layer_in in zip(model.layers, inputs, strict=True)
    ]
    events = sum(layer_in.sum(axis=(0, 2)) for layer_in in inputs)
    hidden_sops = sum(sops[:-1], np.zeros_like(sops[-1]))
    neurons = model.timesteps * sum(layer.n_out for layer in model.hidden_layers)
    counts = {
        "sops": sum(sops),
        "ptr_reads": 2 * lanes * events,
        "syn_reads": sum(sops),
        "cur_reads": hidden_sops + neurons,
        "cur_writes": hidden_sops + neurons,
        "pot_reads": np.full_like(events, neurons),
        "pot_writes": np.full_like(events, neurons),
        "acc_reads": sops[-1] + model.n_outputs,
        "acc_writes": sops[-1] + model.n_outputs,
    }
    for layer, fired in enumerate(inputs[1:]):
        counts[f"spikes{layer}"] = fired.sum(axis=(0, 2))
    return counts


def _counter_table(record: TraceRecord, names: list[str]) -> np.ndarray:
    """``[N, len(names)]`` counters of ``record`` (-1 where an image has none)."""
    table = np.full((len(record.counters), len(names)), -1, dtype=np.int64)
    for image, counters in enumerate(record.counters):
        if counters is not None:
            table[image] = [counters[name] for name in names]
    return table


def compare(
    model: Model,
    images: np.ndarray,
    record: TraceRecord,
    trace_potentials: bool = True,
    lanes: int | None = None,
) -> dict:
    """Check ``record`` against the reference model on ``images``; return a JSON-able report.

    With ``lanes`` (the simulated core's ``L``) every image's counters but ``cycles`` are
    compared with :func:`expected_counters` as well.

    Report keys: ``ok`` (no mismatch and no trace problem), ``samples``, ``mismatches`` (samples
    with any differing bit), ``mismatched`` (their indices), ``details`` (first few differences),
    ``predictions``, ``expected_predictions``,
    ``outputs``, ``counters``, ``counters_checked``, ``finish_cycles`` (the harness cycle of each
    image's ``done``), ``problems``, ``timed_out``.
    """
    n_images = len(images)
    spikes = encode(images, model.timesteps, model.encoder)
    reference = run(model, spikes, record_potentials=trace_potentials)
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
    if lanes is not None:
        expected = expected_counters(model, spikes, reference, lanes)
        names = list(expected)
        got, want = _counter_table(record, names), np.stack([expected[name] for name in names], axis=1)
        for column, name in enumerate(names):
            note(got[:, column] != want[:, column], f"counter {name}", got[:, column], want[:, column])
    finish = record.finish_cycles if record.finish_cycles is not None else np.full(n_images, -1)
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
        "counters_checked": lanes is not None,
        "finish_cycles": finish.tolist(),
        "problems": record.problems,
        "timed_out": record.timed_out,
    }
