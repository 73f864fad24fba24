"""Artifact folder: round trip, committed artifacts, and one refusal per kind of malformed file."""

from __future__ import annotations

import dataclasses
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import random_layer, random_model

from esl_hw.artifact import ARRAY_NAMES, FORMAT_VERSION, Model
from esl_hw.artifact_io import load_model, save_model
from esl_hw.errors import EslError

REPO = Path(__file__).resolve().parents[1]


def test_round_trip_keeps_every_array_and_parameter(saved: tuple[Model, Path]) -> None:
    model, path = saved
    loaded = load_model(path)
    assert loaded.timesteps == model.timesteps and loaded.encoder == model.encoder
    for a, b in zip(model.layers, loaded.layers, strict=True):
        assert a.header() == b.header()
        for name in ("row_ptr", "col", "weight"):
            assert np.array_equal(getattr(a, name), getattr(b, name))
    header = yaml.safe_load((path / "model.yaml").read_text())
    assert header["format_version"] == FORMAT_VERSION


def test_save_refuses_to_overwrite(saved: tuple[Model, Path]) -> None:
    model, path = saved
    with pytest.raises(EslError, match="exists"):
        save_model(model, path)
    save_model(model, path, overwrite=True)
    assert load_model(path).synapses == model.synapses


def _edit_yaml(path: Path, edit) -> None:
    header = yaml.safe_load((path / "model.yaml").read_text())
    edit(header)
    (path / "model.yaml").write_text(yaml.safe_dump(header))


def _edit_arrays(path: Path, edit) -> None:
    with np.load(path / "arrays.npz") as archive:
        arrays = {name: archive[name].copy() for name in archive.files}
    edit(arrays)
    np.savez(path / "arrays.npz", **arrays)


def _set_weight_out_of_range(arrays: dict) -> None:
    arrays["weight_0"][0] = 1000


def _repeat_column(arrays: dict) -> None:
    start = int(arrays["row_ptr_0"][1])
    arrays["col_0"][start + 1] = arrays["col_0"][start]


def _break_monotonic(arrays: dict) -> None:
    arrays["row_ptr_0"][2] = arrays["row_ptr_0"][3] + 1


MALFORMED = {
    "version": (lambda h: h.update(format_version=99), None, "format_version 99"),
    "format": (lambda h: h.update(format="other"), None, "not an esl-hw-model"),
    "chain": (lambda h: h["layers"][1].update(n_in=5), None, "n_in=5"),
    "threshold": (lambda h: h["layers"][0].update(threshold=0), None, "threshold=0"),
    "leak": (lambda h: h["layers"][0].update(leak_shift=40), None, "leak_shift=40"),
    "kind": (lambda h: h["layers"][0].update(kind="output"), None, "kind is .output., expected .lif."),
    "missing_key": (lambda h: h["layers"][0].pop("w_bits"), None, "missing key 'w_bits'"),
    "weight": (None, _set_weight_out_of_range, "weight 1000 outside the 6-bit range"),
    "column": (None, lambda a: a["col_0"].__setitem__(0, 8), "column index 8 out of range"),
    "monotonic": (None, _break_monotonic, "not monotonic"),
    "duplicate": (None, _repeat_column, "same column twice"),
    "missing_array": (None, lambda a: a.pop("weight_1"), "missing array weight_1"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_artifacts_are_refused_with_a_named_problem(saved: tuple[Model, Path], name: str) -> None:
    _, path = saved
    edit_yaml, edit_arrays, message = MALFORMED[name]
    if edit_yaml:
        _edit_yaml(path, edit_yaml)
    if edit_arrays:
        _edit_arrays(path, edit_arrays)
    with pytest.raises(EslError, match=message):
        load_model(path)


def test_missing_folder_and_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(EslError, match="not a folder"):
        load_model(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EslError, match="lacks model.yaml"):
        load_model(tmp_path / "empty")
    (tmp_path / "empty" / "model.yaml").write_text(": : :\n- [")
    (tmp_path / "empty" / "arrays.npz").write_bytes(b"junk")
    with pytest.raises(EslError, match="not valid YAML"):
        load_model(tmp_path / "empty")


# ---------------------------------------------------------------- committed artifacts

COMMITTED = sorted(path.parent for path in (REPO / "bench" / "models").glob("*/model.yaml"))


def test_there_are_committed_artifacts() -> None:
    assert len(COMMITTED) >= 4


@pytest.mark.parametrize("folder", COMMITTED, ids=lambda path: path.name)
def test_every_committed_artifact_loads_and_round_trips(folder: Path, tmp_path: Path) -> None:
    model = load_model(folder)
    again = load_model(save_model(model, tmp_path / "copy"))
    assert again.header() == model.header()
    for a, b in zip(model.layers, again.layers, strict=True):
        assert all(np.array_equal(getattr(a, name), getattr(b, name)) for name in ARRAY_NAMES)


# ---------------------------------------------------------------- damaged model.yaml

DAMAGED_HEADERS = {
    "version_true": (
        lambda h: h.update(format_version=True),
        "format_version must be the integer 1 or 2, got True",
    ),
    "version_float": (
        lambda h: h.update(format_version=1.0),
        "format_version must be the integer 1 or 2, got 1.0",
    ),
    "version_string": (
        lambda h: h.update(format_version="1"),
        "format_version must be the integer 1 or 2, got '1'",
    ),
    "phase0_string": (
        lambda h: h["encoder"].update(phase0="x"),
        "phase0 must be an integer in 0..255, got 'x'",
    ),
    "phase0_range": (
        lambda h: h["encoder"].update(phase0=256),
        "phase0 must be an integer in 0..255, got 256",
    ),
    "encoder_kind": (lambda h: h["encoder"].update(kind="poisson"), "encoder: kind 'poisson' unknown"),
    "encoder_kind_list": (lambda h: h["encoder"].update(kind=["rate"]), r"encoder: kind \['rate'\] unknown"),
    "encoder_key": (lambda h: h["encoder"].update(phase=3), "encoder: unknown key 'phase'"),
    "encoder_list": (lambda h: h.update(encoder=[1]), r"encoder: must be a mapping, got \[1\]"),
    "layer_kind_list": (lambda h: h["layers"][0].update(kind=["lif"]), r"kind is \['lif'\], expected 'lif'"),
    "layer_list": (lambda h: h["layers"].__setitem__(0, [1]), r"layer 0: must be a mapping, got \[1\]"),
    "n_in_string": (lambda h: h["layers"][0].update(n_in="12"), "n_in must be an integer, got '12'"),
    "w_bits_float": (lambda h: h["layers"][0].update(w_bits=6.0), "w_bits must be an integer, got 6.0"),
    "threshold_bool": (
        lambda h: h["layers"][0].update(threshold=True),
        "threshold must be an integer, got True",
    ),
    "leak_list": (
        lambda h: h["layers"][0].update(leak_shift=[2]),
        r"leak_shift must be an integer, got \[2\]",
    ),
    "n_out_huge": (lambda h: h["layers"][1].update(n_out=10**9), "n_out=1000000000 outside 1..1048576"),
    "n_in_huge": (lambda h: h["layers"][0].update(n_in=2**21), "n_in=2097152 outside 1..1048576"),
    "n_out_zero": (lambda h: h["layers"][1].update(n_out=0), "n_out=0 outside 1..1048576"),
    "timesteps_huge": (lambda h: h.update(timesteps=10**30), "timesteps=10+ outside 1..4096"),
    "timesteps_float": (lambda h: h.update(timesteps=4.0), "timesteps must be an integer, got 4.0"),
    "too_many_layers": (
        lambda h: h.update(layers=[dict(entry) for entry in h["layers"] * 40]),
        "80 layers exceed the limit 64",
    ),
    "unknown_top_key": (lambda h: h.update(timestep=4), "unknown key 'timestep'"),
    "output_with_lif_keys": (
        lambda h: h["layers"][1].update(threshold=3),
        "layer 1: unknown key 'threshold'",
    ),
    "metadata_list": (lambda h: h.update(metadata=[1]), r"metadata must be a mapping, got \[1\]"),
    "run_dir_int": (
        lambda h: h["metadata"].update(run_dir=5),
        "metadata.run_dir must be a path .a string., got 5",
    ),
    "rewiring_list": (
        lambda h: h["metadata"].update(rewiring=[1]),
        "metadata.rewiring must be a mapping of lanes",
    ),
    "rewiring_lanes": (
        lambda h: h["metadata"].update(rewiring={"lanes": 3, "lfsr_states": [1, 2]}),
        "metadata.rewiring.lanes must be a power of two, got 3",
    ),
    "rewiring_lanes_bool": (
        lambda h: h["metadata"].update(rewiring={"lanes": True, "lfsr_states": [1, 2]}),
        "metadata.rewiring.lanes must be an integer in 1..64, got True",
    ),
    "rewiring_states_count": (
        lambda h: h["metadata"].update(rewiring={"lanes": 2, "lfsr_states": [1]}),
        r"metadata.rewiring.lfsr_states must list 2 LFSR states \(one per layer\), got \[1\]",
    ),
    "rewiring_state_zero": (
        lambda h: h["metadata"].update(rewiring={"lanes": 2, "lfsr_states": [1, 0]}),
        r"metadata.rewiring.lfsr_states\[1\] must be an integer in 1..4294967295, got 0",
    ),
    "rewiring_state_string": (
        lambda h: h["metadata"].update(rewiring={"lanes": 2, "lfsr_states": ["x", 1]}),
        r"lfsr_states\[0\] must be an integer in 1..4294967295, got 'x'",
    ),
    "requantised": (
        lambda h: h["metadata"].update(requantised={"trained_w_bits": "6", "w_bits": 4}),
        "metadata.requantised.trained_w_bits must be an integer in 2..32, got '6'",
    ),
}


@pytest.mark.parametrize("name", sorted(DAMAGED_HEADERS))
def test_damaged_headers_are_refused_in_one_line(saved: tuple[Model, Path], name: str) -> None:
    _, path = saved
    edit, message = DAMAGED_HEADERS[name]
    _edit_yaml(path, edit)
    started = time.perf_counter()
    with pytest.raises(EslError, match=message) as error:
        load_model(path)
    assert "\n" not in str(error.value)
    assert time.perf_counter() - started < 2.0  # refused from the header, nothing large allocated


def _edit_text(path: Path, edit) -> None:
    (path / "model.yaml").write_bytes(edit((path / "model.yaml").read_bytes()))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text + b"# \xff\xfe\n", r"model .*model.yaml: not UTF-8 text \(byte 0xff at offset"),
        (
            lambda text: text.replace(b"timesteps: 4", b"timesteps: 4\ntimesteps: 5"),
            "duplicate key 'timesteps' at line 4",
        ),
        (lambda text: text + b"x: &a [1]\ny: *a\n", r"aliases are not supported \(found \*a\)"),
        (
            lambda text: text.replace(b"timesteps: 4", b"timesteps: 4" + b"0" * 5000),
            "not valid YAML .cannot read .* as int .Exceeds the limit",
        ),
    ],
    ids=["non_utf8", "duplicate_key", "alias", "huge_int_literal"],
)
def test_header_text_problems_are_one_line(saved: tuple[Model, Path], edit, message: str) -> None:
    _, path = saved
    _edit_text(path, edit)
    with pytest.raises(EslError, match=message) as error:
        load_model(path)
    assert "\n" not in str(error.value)


def test_header_that_is_a_folder_is_refused(saved: tuple[Model, Path]) -> None:
    _, path = saved
    (path / "model.yaml").unlink()
    (path / "model.yaml").mkdir()
    with pytest.raises(EslError, match="model.yaml: is not a regular file"):
        load_model(path)


def test_save_writes_what_load_accepts(rng: np.random.Generator, tmp_path: Path) -> None:
    base = random_model(rng, (6, 4, 2))
    shared = [1, 2, 3]
    layers = tuple(dataclasses.replace(layer, w_bits=np.int64(layer.w_bits)) for layer in base.layers)
    metadata = {
        "a": shared,
        "b": shared,
        "rewiring": {"lanes": 2, "lfsr_states": [7, 9]},
        "run_dir": "runs/x",
    }
    model = Model(layers, np.int64(3), metadata=metadata)
    loaded = load_model(save_model(model, tmp_path / "m"))
    assert loaded.metadata == metadata and loaded.timesteps == 3
    assert "*" not in (tmp_path / "m" / "model.yaml").read_text()


def test_save_refuses_metadata_that_is_not_plain_data(rng: np.random.Generator, tmp_path: Path) -> None:
    model = random_model(rng, (6, 4, 2))
    model.metadata["when"] = object()
    with pytest.raises(EslError, match="the header cannot be written as YAML"):
        save_model(model, tmp_path / "m")
    model.metadata.pop("when")
    model.metadata["run_dir"] = Path("runs")
    with pytest.raises(EslError, match="metadata.run_dir must be a path"):
        save_model(model, tmp_path / "m")
    assert not (tmp_path / "m").exists()


# ---------------------------------------------------------------- format version 2: bias, reset, cubalif


@pytest.fixture
def saved_v2(tmp_path: Path, rng: np.random.Generator) -> tuple[Model, Path]:
    """A model using every v2 field: a biased lif layer with subtractive reset, a cubalif layer
    with and one without synaptic decay, a biased output layer."""
    first = random_layer(rng, 12, 9, bias=True, reset="subtract")
    second = random_layer(rng, 9, 7, kind="cubalif", syn_shift=2)
    third = random_layer(rng, 7, 5, kind="cubalif", syn_shift=None, bias=True, leak_shift=None)
    output = random_layer(rng, 5, 3, kind="output", bias=True)
    model = Model((first, second, third, output), 4)
    return model, save_model(model, tmp_path / "v2")


def test_v2_round_trip_keeps_bias_reset_and_kind(saved_v2: tuple[Model, Path]) -> None:
    model, path = saved_v2
    header = yaml.safe_load((path / "model.yaml").read_text())
    assert header["format_version"] == 2
    assert [entry["bias"] for entry in header["layers"]] == [True, False, True, True]
    assert header["layers"][0]["reset"] == "subtract" and header["layers"][1]["syn_shift"] == 2
    loaded = load_model(path)
    for want, got in zip(model.layers, loaded.layers, strict=True):
        assert (want.kind, want.reset, want.syn_shift, want.leak_shift) == (
            got.kind,
            got.reset,
            got.syn_shift,
            got.leak_shift,
        )
        assert (want.bias is None) == (got.bias is None)
        if want.bias is not None:
            np.testing.assert_array_equal(want.bias, got.bias)
    with zipfile.ZipFile(path / "arrays.npz") as archive:
        assert sorted(name for name in archive.namelist() if name.startswith("bias")) == [
            "bias_0.npy",
            "bias_2.npy",
            "bias_3.npy",
        ]


def test_a_version_1_artifact_still_loads_as_lif_without_bias(saved: tuple[Model, Path]) -> None:
    model, path = saved

    def to_version_1(header: dict) -> None:
        header["format_version"] = 1
        for entry in header["layers"]:
            del entry["bias"]
            entry.pop("reset", None)

    _edit_yaml(path, to_version_1)
    loaded = load_model(path)
    assert all(layer.bias is None for layer in loaded.layers)
    assert all(layer.reset == "zero" and layer.kind == "lif" for layer in loaded.hidden_layers)
    for want, got in zip(model.layers, loaded.layers, strict=True):
        np.testing.assert_array_equal(want.weight, got.weight)


V2_DAMAGE = {
    "v1_with_bias_key": (lambda h: h.update(format_version=1), "unknown key 'bias'"),
    "cubalif_in_v1": (
        lambda h: (
            h.update(format_version=1),
            [entry.pop(key, None) for entry in h["layers"] for key in ("bias", "reset")],
            h["layers"][1].pop("syn_shift"),
        ),
        "layer 1: kind is 'cubalif', expected 'lif'",
    ),
    "bias_not_bool": (lambda h: h["layers"][0].update(bias=1), "bias must be true or false, got 1"),
    "bias_missing": (lambda h: h["layers"][0].pop("bias"), "layer 0: missing key 'bias'"),
    "reset_unknown": (lambda h: h["layers"][0].update(reset="hard"), "reset 'hard' unknown"),
    "reset_missing": (lambda h: h["layers"][0].pop("reset"), "layer 0: missing key 'reset'"),
    "reset_on_output": (lambda h: h["layers"][3].update(reset="zero"), "layer 3: unknown key 'reset'"),
    "syn_shift_on_lif": (lambda h: h["layers"][0].update(syn_shift=1), "layer 0: unknown key 'syn_shift'"),
    "syn_shift_range": (lambda h: h["layers"][1].update(syn_shift=10), r"syn_shift=10 outside 1\.\.9"),
    "syn_shift_bool": (lambda h: h["layers"][1].update(syn_shift=True), "syn_shift must be an integer"),
    "bias_member_missing": (lambda h: h["layers"][1].update(bias=True), "missing array bias_1"),
    "bias_member_extra": (lambda h: h["layers"][0].update(bias=False), "unexpected member 'bias_0.npy'"),
    "output_as_cubalif": (
        lambda h: h["layers"][3].update(kind="cubalif"),
        "layer 3: kind is 'cubalif', expected 'output'",
    ),
}


@pytest.mark.parametrize("name", sorted(V2_DAMAGE))
def test_v2_header_problems_are_refused_in_one_line(saved_v2: tuple[Model, Path], name: str) -> None:
    _, path = saved_v2
    edit, message = V2_DAMAGE[name]
    _edit_yaml(path, edit)
    with pytest.raises(EslError, match=message) as error:
        load_model(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.update(bias_0=a["bias_0"][:-1]), "bias_0: 8 entries, but the layer has 9 neurons"),
        (lambda a: a.update(bias_0=np.full(9, 1 << 31)), r"bias 2147483648 outside the 32-bit range"),
        (lambda a: a.update(bias_2=a["bias_2"].astype(np.float32)), "must be an integer array"),
        (lambda a: a.update(bias_3=np.zeros((3, 1), np.int64)), "must be a 1-D array"),
    ],
)
def test_damaged_bias_arrays_are_refused_in_one_line(
    saved_v2: tuple[Model, Path], change, message: str
) -> None:
    _, path = saved_v2
    _edit_arrays(path, change)
    with pytest.raises(EslError, match=message) as error:
        load_model(path)
    assert "\n" not in str(error.value)
