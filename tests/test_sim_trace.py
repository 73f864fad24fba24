"""Trace parser and checker: a faithful trace passes, any corrupted bit is reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rtl_support import random_model

from esl_hw.encoding import encode
from esl_hw.reference import run
from esl_hw.rtl_gen import counter_names
from esl_hw.sim.trace import compare, expected_counters, parse_trace


def reference_trace(model, images: np.ndarray, potentials: bool = True) -> list[str]:
    """The trace lines a correct core writes (in a scrambled but valid order)."""
    trace = run(model, encode(images, model.timesteps, model.encoder))
    lines = []
    for layer in range(len(model.hidden_layers)):
        for step, image, neuron in zip(*np.nonzero(trace.spikes[layer]), strict=True):
            lines.append(f"S {layer} {image} {step} {neuron}")
        if potentials:
            for (step, image, neuron), value in np.ndenumerate(trace.potentials[layer]):
                lines.append(f"P {layer} {image} {step} {neuron} {value}")
    counters = " ".join("7" for _ in counter_names(model))
    for image, outputs in enumerate(trace.outputs):
        lines += [f"O {image} {index} {value}" for index, value in enumerate(outputs)]
        lines.append(f"D {image} {trace.predictions[image]} {counters}")
    return lines[::-1]


@pytest.fixture
def setup(tmp_path: Path):
    rng = np.random.default_rng(0)
    model = random_model(rng, [10, 8, 6, 4], density=0.6, timesteps=4, threshold=20)
    images = rng.integers(0, 256, (5, 10), dtype=np.uint8)
    return model, images, tmp_path / "trace.txt"


def check(model, images, path: Path, lines: list[str], potentials: bool = True) -> dict:
    path.write_text("\n".join(lines) + "\n")
    return compare(model, images, parse_trace(path, model, len(images)), trace_potentials=potentials)


@pytest.mark.parametrize("potentials", [True, False])
def test_faithful_trace_passes(setup, potentials) -> None:
    model, images, path = setup
    report = check(model, images, path, reference_trace(model, images, potentials), potentials)
    assert report["ok"] and report["mismatches"] == 0 and report["samples"] == 5
    assert report["counters"][0] == dict.fromkeys(counter_names(model), 7)
    assert report["predictions"] == report["expected_predictions"]


@pytest.mark.parametrize(
    ("kind", "edit"),
    [
        ("S", lambda fields: fields[:4] + [str(int(fields[4]) ^ 1)]),  # spike moved to another neuron
        ("P", lambda fields: fields[:5] + [str(int(fields[5]) + 1)]),  # potential off by one
        ("O", lambda fields: fields[:3] + [str(int(fields[3]) - 1)]),  # output off by one
        ("D", lambda fields: fields[:2] + [str(int(fields[2]) + 1)] + fields[3:]),  # prediction
        ("P", lambda fields: None),  # a missing tap sample
    ],
)
def test_each_corruption_is_one_mismatching_sample(setup, kind, edit) -> None:
    model, images, path = setup
    lines = reference_trace(model, images)
    position = next(
        index for index, line in enumerate(lines) if line.startswith(f"{kind} ") and " 2 " in line[:6]
    )
    fields = lines[position].split()
    image = int(fields[2] if kind in "SP" else fields[1])
    changed = edit(fields)
    if changed is None:
        del lines[position]
    else:
        lines[position] = " ".join(changed)
    report = check(model, images, path, lines)
    assert report["mismatches"] == 1 and not report["ok"]
    assert report["mismatched"] == [image]
    assert report["details"] and report["details"][0].startswith(f"image {image}:")


def test_incomplete_and_malformed_traces(setup) -> None:
    model, images, path = setup
    lines = [line for line in reference_trace(model, images) if not line.startswith(("O 4", "D 4"))]
    lines += ["X 12345", "Q 1 2", "S 0 x 1 1"]
    report = check(model, images, path, lines)
    assert report["timed_out"] and report["mismatched"] == [4]
    assert len(report["problems"]) == 3 and not report["ok"]


def test_rewire_and_memory_records_and_image_selection(setup) -> None:
    from esl_hw.sim.trace import select_images

    model, images, path = setup
    lines = reference_trace(model, images)
    path.write_text("\n".join(["R 1 0 4294967295", "M 3 7 255", *lines, "R 0 1 44"]) + "\n")
    record = parse_trace(path, model, len(images))
    assert not record.problems
    assert record.rewires == [(1, 0, 4294967295), (0, 1, 44)]
    assert record.memory == [(3, 7, 255)]
    first, rest = select_images(record, 0, 2), select_images(record, 2, 5)
    assert compare(model, images[:2], first)["ok"] and compare(model, images[2:], rest)["ok"]
    assert first.rewires == record.rewires and rest.rewires == [] and rest.memory == []
    np.testing.assert_array_equal(rest.outputs, record.outputs[2:])
    assert [layer.shape[1] for layer in rest.spikes] == [3] * len(model.hidden_layers)


def line_by_line(path: Path, model, n_images: int):
    """The record of reading ``path`` one line at a time (what the bulk reader must equal)."""
    from esl_hw.sim import trace

    record = trace._empty_record(model, n_images)
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        trace._parse_line(record, counter_names(model), path.name, number, line)
    return record


def assert_same_record(got, want) -> None:
    for name in ("spikes", "potentials", "tap_count"):
        for got_layer, want_layer in zip(getattr(got, name), getattr(want, name), strict=True):
            np.testing.assert_array_equal(got_layer, want_layer, err_msg=name)
    for name in ("outputs", "output_count", "predictions"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    for name in ("counters", "timed_out", "problems", "rewires", "memory"):
        assert getattr(got, name) == getattr(want, name), name


@pytest.mark.parametrize("chunk_bytes", [1 << 22, 64, 7])
def test_bulk_reading_equals_reading_line_by_line(setup, monkeypatch, chunk_bytes) -> None:
    """Well-formed, malformed, out-of-range and negative lines, across chunk boundaries and
    without a final newline: the bulk reader gives the record (and problems) of the plain loop."""
    from esl_hw.sim import trace

    monkeypatch.setattr(trace, "_CHUNK_BYTES", chunk_bytes)
    model, images, path = setup
    odd = ["S 0 1 2", "S 0 99 0 0", "P 0 0 0 0 -17", "O 0 1 x", "S 0 0 0 -1", "O -1 0 5", "Q 1"]
    odd += ["S 0 +1 0 0", "S  0 1 0 0", "O 1 0 1234567890123456", "O 1 1 -", "P 0 1 2 3 4 5", "S 0 1 0 3 "]
    odd += ["O 2 0 -123456789012345", "S 7 0 0 0", "X 99", "P 1 4 3 2 -0", "O 3 2 0099"]
    lines = reference_trace(model, images)
    lines[5:5] = odd
    path.write_text("\n".join(lines))
    assert_same_record(parse_trace(path, model, len(images)), line_by_line(path, model, len(images)))
    assert any("bad line 'O 0 1 x'" in problem for problem in parse_trace(path, model, len(images)).problems)


def test_other_line_breaks_are_read_as_before(setup) -> None:
    model, images, path = setup
    lines = reference_trace(model, images)
    path.write_bytes(("\n".join(lines[:10]) + "\r\n" + "\r".join(lines[10:])).encode())
    assert_same_record(parse_trace(path, model, len(images)), line_by_line(path, model, len(images)))


def test_counters_are_checked_against_the_reference_given_the_lanes(setup) -> None:
    """With ``lanes`` every counter but ``cycles`` is compared: the reference's counts pass, one
    SOP more in one image is that image's mismatch; ``F`` lines give the finish cycles."""
    model, images, path = setup
    spikes = encode(images, model.timesteps, model.encoder)
    expected = expected_counters(model, spikes, run(model, spikes), lanes=2)
    names = counter_names(model)
    lines = [line for line in reference_trace(model, images) if not line.startswith("D ")]
    predictions = run(model, spikes).predictions
    for image in range(len(images)):
        counts = [123 if name == "cycles" else int(expected[name][image]) for name in names]
        lines.append(f"D {image} {predictions[image]} {' '.join(map(str, counts))}")
        lines.append(f"F {image} {100 * image + 50}")
    report = check(model, images, path, lines)
    assert report["ok"] and report["counters_checked"] is False
    assert report["finish_cycles"] == [50, 150, 250, 350, 450]
    path.write_text("\n".join(lines) + "\n")
    record = parse_trace(path, model, len(images))
    assert compare(model, images, record, lanes=2)["ok"]
    assert not compare(model, images, record, lanes=4)["ok"], "ptr_reads depend on the lanes"
    sops = names.index("sops")
    bad = [
        " ".join(fields[: 3 + sops] + [str(int(fields[3 + sops]) + 1)] + fields[4 + sops :])
        if line.startswith("D 3 ")
        else line
        for line in lines
        for fields in [line.split()]
    ]
    path.write_text("\n".join(bad) + "\n")
    report = compare(model, images, parse_trace(path, model, len(images)), lanes=2)
    assert report["mismatched"] == [3] and "counter sops" in report["details"][0]
