"""Artifact format v1: round trip, derived widths, and one refusal per kind of malformed file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import random_model

from esl_hw.artifact import (
    FORMAT_VERSION,
    Model,
    layer_from_dense,
    load_model,
    save_model,
    signed_bits_for,
)
from esl_hw.errors import EslError


@pytest.fixture
def saved(tmp_path: Path, rng: np.random.Generator) -> tuple[Model, Path]:
    model = random_model(rng, (12, 8, 3), timesteps=4)
    return model, save_model(model, tmp_path / "model")


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


def test_layer_from_dense_keeps_masked_zero_weights() -> None:
    dense = np.array([[0, 3], [-2, 0]])
    mask = np.array([[True, True], [True, False]])
    layer = layer_from_dense(dense, "output", 4, mask=mask)
    assert layer.row_ptr.tolist() == [0, 2, 3]
    assert layer.col.tolist() == [0, 1, 0] and layer.weight.tolist() == [0, 3, -2]
    assert np.array_equal(layer.dense_weight(), dense)


def test_widths_bound_the_extreme_currents() -> None:
    dense = np.array([[7, -8], [7, -8], [-8, 7]])
    layer = layer_from_dense(dense, "output", 4)
    assert layer.current_range() == (-16, 14)
    assert layer.current_bits() == 5
    hidden = layer_from_dense(np.ones((2, 3), dtype=int), "lif", 4, 8, 3, 1)
    model = Model((hidden, layer), timesteps=5)
    assert model.acc_bits() == signed_bits_for(-80, 70) == 8
    assert signed_bits_for(-1, 0) == 1 and signed_bits_for(0, 1) == 2


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
