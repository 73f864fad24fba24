"""Fuzzing every kind of file a user hands to esl-hw: model artifacts, configs, IDX datasets.

Each damaged input must end in exactly one line ``esl-hw: error: ...`` with exit status 2, or in a
result that an independent oracle accepts (identical to the undamaged input's where the damage
is harmless); no file outside the command's ``--out`` may change, and a failed command leaves no
output behind. The UART reply stream is fuzzed in tests/test_fpga_driver.py.

``ESL_HW_FUZZ_SCALE`` multiplies the number of examples (default 1: about 700 cases, a few
seconds; e.g. ``ESL_HW_FUZZ_SCALE=20 pytest tests/test_fuzz.py`` for a longer run).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import math
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import random_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esl_hw.app.cli import main
from esl_hw.artifact_io import load_model, save_model
from esl_hw.errors import EslError
from esl_hw.reference import predict

SCALE = max(1, int(os.environ.get("ESL_HW_FUZZ_SCALE", "1")))
SIDE = (4, 5)  # images of 4 x 5 = 20 pixels
CLASSES = 4


def _settings(examples: int):
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        derandomize=SCALE == 1,  # the default run is the same on every machine
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# --- fixtures: a small model and a small IDX dataset it fits -------------------------------------


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _dataset_files() -> dict[str, bytes]:
    rng = np.random.default_rng(5)
    arrays = {
        "train_images": rng.integers(0, 256, (12, *SIDE)),
        "train_labels": rng.integers(0, CLASSES, 12),
        "test_images": rng.integers(0, 256, (9, *SIDE)),
        "test_labels": rng.integers(0, CLASSES, 9),
    }
    return {IDX_NAMES[key]: _idx_bytes(value) for key, value in arrays.items()}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("fuzz")
    model = random_model(np.random.default_rng(7), (20, 6, CLASSES), timesteps=3)
    model_dir = save_model(model, root / "model")
    data_dir = root / "data"
    data_dir.mkdir()
    for name, content in _dataset_files().items():
        (data_dir / name).write_bytes(content)
    status, out, err = _cli(["eval", str(model_dir), "--data", str(data_dir)])
    assert status == 0, err
    return {
        "model": model,
        # the first line names the dataset folder, which differs from run to run
        "header": yaml.safe_load((model_dir / "model.yaml").read_text()),
        "yaml": (model_dir / "model.yaml").read_bytes(),
        "npz": (model_dir / "arrays.npz").read_bytes(),
        "idx": _dataset_files(),
        "eval_out": _figures(out),
    }


# --- running the CLI and checking its contract -----------------------------------------------------


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


def _figures(out: str) -> str:
    """What ``esl-hw eval`` printed, less its title line (which names the temporary folder)."""
    return out.split("\n", 1)[-1]


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "/"
        for path in sorted(root.rglob("*"))
    }


def _run_checked(root: Path, argv: list[str]) -> tuple[int, str, str]:
    """Run ``argv`` (whose ``--out`` is ``root/out``); check the error contract and the files."""
    before = _snapshot(root)
    status, out, err = _cli(argv)
    after = {k: v for k, v in _snapshot(root).items() if k != "out" and not k.startswith("out/")}
    assert after == before, "a file outside --out changed"
    if status == 2:
        assert err.count("\n") == 1 and err.startswith("esl-hw: error: "), err
        assert not (root / "out").exists(), "a failed command left output behind"
    else:
        assert status == 0 and err == "", (status, err)
        assert (root / "out" / "eval.json").is_file()
    return status, out, err


def _eval_files(files: dict[str, bytes], data: dict[str, bytes]) -> tuple[int, str, str]:
    """``esl-hw eval`` of an artifact made of ``files`` on the dataset ``data``, in a fresh folder."""
    with tempfile.TemporaryDirectory(prefix="esl-fuzz-") as name:
        root = Path(name)
        (root / "model").mkdir()
        (root / "data").mkdir()
        for file, content in files.items():
            (root / "model" / file).write_bytes(content)
        for file, content in data.items():
            (root / "data" / file).write_bytes(content)
        argv = ["eval", str(root / "model"), "--data", str(root / "data"), "--out", str(root / "out")]
        return _run_checked(root, argv)


# --- byte-level damage -----------------------------------------------------------------------------


@st.composite
def damaged(draw: st.DrawFn, content: bytes) -> bytes:
    """``content`` with a few bytes flipped, inserted, deleted, or cut short."""
    data = bytearray(content)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[position] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and data:
            del data[position : position + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del data[position:]
    return bytes(data)


def _npz_arrays(content: bytes) -> dict[str, np.ndarray] | None:
    """The arrays of an npz archive, read by zipfile (which, like unzip, tolerates bytes before the
    archive) and numpy's format reader; None when that fails."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            return {
                name.removesuffix(".npy"): np.lib.format.read_array(
                    io.BytesIO(archive.read(name)), allow_pickle=False
                )
                for name in archive.namelist()
            }
    except Exception:  # noqa: BLE001 - the oracle only asks "same arrays?"
        return None


def _same_arrays(left: dict[str, np.ndarray] | None, right: dict[str, np.ndarray]) -> bool:
    return (
        left is not None
        and left.keys() == right.keys()
        and all(left[k].dtype == right[k].dtype and np.array_equal(left[k], right[k]) for k in right)
    )


@_settings(120)
@given(data=st.data())
def test_damaged_model_yaml_bytes(workspace: dict[str, Any], data: st.DataObject) -> None:
    text = data.draw(damaged(workspace["yaml"]))
    status, out, err = _eval_files({"model.yaml": text, "arrays.npz": workspace["npz"]}, workspace["idx"])
    if status == 0:
        header = yaml.safe_load(text.decode("utf-8"))
        _assert_no_silent_cast(header)
        if header == workspace["header"]:
            assert _figures(out) == workspace["eval_out"]


@_settings(100)
@given(data=st.data())
def test_damaged_arrays_npz_bytes(workspace: dict[str, Any], data: st.DataObject) -> None:
    blob = data.draw(damaged(workspace["npz"]))
    status, out, err = _eval_files({"model.yaml": workspace["yaml"], "arrays.npz": blob}, workspace["idx"])
    if status == 0:
        original = _npz_arrays(workspace["npz"])
        assert _same_arrays(_npz_arrays(blob), original), "damaged arrays were accepted"
        assert _figures(out) == workspace["eval_out"]


# --- structured damage of the artifact ---------------------------------------------------------------

INTEGER_FIELDS = ["timesteps", "format_version", ("encoder", "phase0")] + [
    ("layers", index, key)
    for index, keys in (
        (0, ("n_in", "n_out", "w_bits", "v_bits", "threshold", "leak_shift")),
        (1, ("n_in", "n_out", "w_bits")),
    )
    for key in keys
]
NOT_AN_INTEGER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).filter(
        lambda x: not float(x).is_integer() or math.isinf(x)
    ),
    st.just(True),
    st.just(False),
    st.text(max_size=5),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
    st.floats(1, 8).map(lambda x: float(round(x))),
)


def _set(header: dict, path: Any, value: Any) -> dict:
    header = yaml.safe_load(yaml.safe_dump(header))
    keys = path if isinstance(path, tuple) else (path,)
    node = header
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return header


def _assert_no_silent_cast(node: Any, path: str = "") -> None:
    """Every field the format defines as an integer is a real int (no bool, float or string)."""
    if not isinstance(node, dict):
        return
    for key in ("timesteps", "format_version", "phase0", "n_in", "n_out", "w_bits", "v_bits", "threshold"):
        if key in node:
            value = node[key]
            assert isinstance(value, int) and not isinstance(value, bool), f"{path}{key}={value!r} accepted"
    for key, value in node.items():
        if key == "metadata":
            continue
        if isinstance(value, dict):
            _assert_no_silent_cast(value, f"{path}{key}.")
        if isinstance(value, list):
            for index, item in enumerate(value):
                _assert_no_silent_cast(item, f"{path}{key}[{index}].")


@_settings(150)
@given(path=st.sampled_from(INTEGER_FIELDS), value=NOT_AN_INTEGER)
def test_integer_fields_refuse_anything_else(workspace: dict[str, Any], path: Any, value: Any) -> None:
    header = _set(workspace["header"], path, value)
    text = yaml.safe_dump(header).encode()
    status, _, err = _eval_files({"model.yaml": text, "arrays.npz": workspace["npz"]}, workspace["idx"])
    assert status == 2, f"{path}={value!r} accepted"


@_settings(60)
@given(
    path=st.sampled_from(INTEGER_FIELDS),
    value=st.one_of(st.integers(-(2**70), -1), st.integers(2**40, 2**70), st.just(0)),
)
def test_integer_fields_refuse_out_of_range_values(workspace: dict[str, Any], path: Any, value: int) -> None:
    header = _set(workspace["header"], path, value)
    text = yaml.safe_dump(header).encode()
    status, _, err = _eval_files({"model.yaml": text, "arrays.npz": workspace["npz"]}, workspace["idx"])
    if path == ("encoder", "phase0") and value == 0:
        assert status == 0  # phase 0 is a valid encoder setting
        return
    assert status == 2, f"{path}={value!r} accepted"


def _npz_with(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


BAD_DTYPES = ["float64", "float32", "bool", "complex128", "uint64", "float16"]


@_settings(80)
@given(
    name=st.sampled_from(["row_ptr_0", "col_0", "weight_0", "row_ptr_1", "col_1", "weight_1"]),
    dtype=st.sampled_from(BAD_DTYPES),
    nudge=st.sampled_from([0.0, 0.25, 0.7]),
)
def test_arrays_of_another_type_are_refused(
    workspace: dict[str, Any], name: str, dtype: str, nudge: float
) -> None:
    arrays = _npz_arrays(workspace["npz"])
    assert arrays is not None
    values = arrays[name].astype(np.float64) + nudge
    if dtype == "uint64":
        values = arrays[name].astype(np.int64).astype(np.uint64) + np.uint64(2**63)
    arrays[name] = values.astype(dtype)
    status, _, err = _eval_files(
        {"model.yaml": workspace["yaml"], "arrays.npz": _npz_with(arrays)}, workspace["idx"]
    )
    assert status == 2, f"{name} as {dtype} accepted"


@_settings(80)
@given(
    name=st.sampled_from(["row_ptr_0", "col_0", "weight_0", "row_ptr_1", "col_1", "weight_1"]),
    index=st.integers(0, 10_000),
    value=st.integers(-(2**40), 2**40),
    shape=st.sampled_from(["same", "2d", "short", "long", "empty", "scalar"]),
)
def test_array_contents_are_checked(
    workspace: dict[str, Any], name: str, index: int, value: int, shape: str
) -> None:
    arrays = _npz_arrays(workspace["npz"])
    assert arrays is not None
    array = arrays[name].astype(np.int64)
    if shape == "same" and len(array):
        array[index % len(array)] = value
    elif shape == "2d":
        array = array.reshape(1, -1)
    elif shape == "short":
        array = array[:-1]
    elif shape == "long":
        array = np.append(array, value)
    elif shape == "empty":
        array = array[:0]
    elif shape == "scalar":
        array = np.int64(value)
    arrays[name] = array
    status, out, err = _eval_files(
        {"model.yaml": workspace["yaml"], "arrays.npz": _npz_with(arrays)}, workspace["idx"]
    )
    if status == 0:
        # accepted: then it must be a valid model, and eval must be what the reference computes
        with tempfile.TemporaryDirectory() as name_dir:
            folder = Path(name_dir)
            (folder / "model.yaml").write_bytes(workspace["yaml"])
            (folder / "arrays.npz").write_bytes(_npz_with(arrays))
            model = load_model(folder)
        layer, row = int(name.rsplit("_", 1)[1]), name.rsplit("_", 1)[0]
        limit = 1 << (model.layers[layer].w_bits - 1)
        if row == "weight":
            assert -limit <= model.layers[layer].weight.min() and model.layers[layer].weight.max() < limit
        images = _read_idx_oracle(workspace["idx"][IDX_NAMES["test_images"]])
        labels = _read_idx_oracle(workspace["idx"][IDX_NAMES["test_labels"]])
        assert images is not None and labels is not None
        pixels = images.reshape(len(images), -1).astype(np.uint8)
        accuracy = float(np.mean(predict(model, pixels) == labels))
        assert re.search(rf"^int_accuracy +{accuracy:.4f}$", out, re.MULTILINE), out


# --- IDX datasets, with an independent parser as the oracle ---------------------------------------


IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_idx_oracle(content: bytes, labels: bool = False) -> np.ndarray | None:
    """A strict, independent IDX reader: exact length; every value an integer 0..255 for images, and
    for labels an integer type with values 0 .. 2^20 - 1 (a layer's neurons); None when the file is
    not valid."""
    if len(content) < 4 or content[0] or content[1] or content[2] not in IDX_TYPES or content[3] == 0:
        return None
    ndim, dtype = content[3], np.dtype(IDX_TYPES[content[2]])
    if len(content) < 4 + 4 * ndim:
        return None
    dims = [int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if math.prod(dims) * dtype.itemsize != len(content) - 4 - 4 * ndim or 0 in dims:
        return None
    values = np.frombuffer(content, dtype=dtype, offset=4 + 4 * ndim).astype(np.float64)
    if labels and dtype.kind not in "iu":
        return None
    if not (np.isfinite(values).all() and (values == np.round(values)).all()):
        return None
    if values.min() < 0 or values.max() > (2**20 - 1 if labels else 255):
        return None
    return values.astype(np.int64).reshape(dims)


def _dataset_oracle(files: dict[str, bytes]) -> np.ndarray | None:
    """Test images ``[N, 20]`` when the four files make a valid dataset for the model, else None:
    images of any shape after ``N``, the same in train and test; the class count (largest label plus
    one, over both) at least 2; test images of the model's 20 pixels, test labels below its outputs."""
    parsed = {key: _read_idx_oracle(files[name], key.endswith("labels")) for key, name in IDX_NAMES.items()}
    if any(value is None for value in parsed.values()):
        return None
    for split in ("train", "test"):
        images, labels = parsed[f"{split}_images"], parsed[f"{split}_labels"]
        if images.ndim < 2 or labels.ndim != 1 or len(images) != len(labels):
            return None
    test = parsed["test_images"]
    if parsed["train_images"].shape[1:] != test.shape[1:]:
        return None
    if math.prod(test.shape[1:]) != SIDE[0] * SIDE[1] or parsed["test_labels"].max() >= CLASSES:
        return None
    if max(parsed["train_labels"].max(), parsed["test_labels"].max()) < 1:  # fewer than 2 classes
        return None
    return test.reshape(len(test), -1)


@_settings(150)
@given(data=st.data(), which=st.sampled_from(sorted(IDX_NAMES.values())), compress=st.booleans())
def test_damaged_idx_files(
    workspace: dict[str, Any], data: st.DataObject, which: str, compress: bool
) -> None:
    files = dict(workspace["idx"])
    original = files[which]
    damaged_bytes = data.draw(damaged(original if not compress else gzip.compress(original, mtime=0)))
    files[which] = damaged_bytes
    if compress:
        try:
            plain = gzip.decompress(damaged_bytes)
        except Exception:  # noqa: BLE001 - the oracle: a damaged gzip is no dataset
            plain = None
        oracle_files = {**files, which: plain if plain is not None else b""}
        files = {(name + ".gz" if name == which else name): content for name, content in files.items()}
    else:
        oracle_files = files
    status, out, err = _eval_files({"model.yaml": workspace["yaml"], "arrays.npz": workspace["npz"]}, files)
    expected = _dataset_oracle(oracle_files)
    if expected is None:
        assert status == 2, f"damaged {which} accepted"
    else:
        assert status == 0, f"valid {which} refused: {err}"


# --- configs -------------------------------------------------------------------------------------------

CONFIG = {
    "seed": 1,
    "data": {"train_samples": 100, "val_fraction": 0.1},
    "model": {"hidden": [16], "timesteps": 4, "threshold": 0.5, "leak_shift": 2},
    "sparsity": {"density": 0.2, "alpha": 0.3, "delta_t": 5, "t_end": 0.75},
    "train": {"epochs": 2, "batch_size": 32, "lr": 0.01},
}
CONFIG_PATHS = [("seed",)] + [
    (section, key) for section, keys in CONFIG.items() if isinstance(keys, dict) for key in keys
]
BAD_NUMBERS = st.sampled_from(
    [math.nan, math.inf, -math.inf, 2**64, -(2**64), 10**12, "1", None, True, [1], {}]
)


@_settings(150)
@given(path=st.sampled_from(CONFIG_PATHS), value=BAD_NUMBERS)
def test_configs_refuse_bad_numbers(tmp_path: Path, path: tuple[str, ...], value: Any) -> None:
    from esl_hw.train.config import config_to_dict, load_config

    raw = yaml.safe_load(yaml.safe_dump(CONFIG))
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    file = tmp_path / "config.yaml"
    file.write_text(yaml.safe_dump(raw))
    try:
        config = load_config(file)
    except EslError as error:
        assert "\n" not in str(error)
        return
    # accepted: only where null means "default/none" for that key; every number must be finite
    valid = value is None or (path == ("model", "hidden") and value == [1])
    assert valid, f"{'.'.join(path)}={value!r} accepted"
    for section in config_to_dict(config).values():
        for item in section.values() if isinstance(section, dict) else [section]:
            assert not (isinstance(item, float) and not math.isfinite(item))


@_settings(60)
@given(data=st.data())
def test_damaged_config_bytes(tmp_path: Path, data: st.DataObject) -> None:
    from esl_hw.train.config import load_config

    text = yaml.safe_dump(CONFIG).encode()
    file = tmp_path / "config.yaml"
    file.write_bytes(data.draw(damaged(text)))
    try:
        load_config(file)
    except EslError as error:
        assert "\n" not in str(error)


def test_duplicate_keys_are_refused_everywhere(tmp_path: Path, workspace: dict[str, Any]) -> None:
    from esl_hw.train.config import load_config

    (tmp_path / "config.yaml").write_text("train: {epochs: 2}\ntrain: {epochs: 3}\n")
    with pytest.raises(EslError, match="duplicate"):
        load_config(tmp_path / "config.yaml")
    text = workspace["yaml"] + b"timesteps: 9\n"
    status, _, err = _eval_files({"model.yaml": text, "arrays.npz": workspace["npz"]}, workspace["idx"])
    assert status == 2
    shutil.rmtree(tmp_path, ignore_errors=True)
