"""Tests for esl_hw.train.vision_data on small files written in the real CIFAR and N-MNIST formats."""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import shlex
import struct
from pathlib import Path

import numpy as np
import pytest

from esl_hw.errors import EslError
from esl_hw.train.vision_data import (
    CIFAR10_DVS_CLASSES,
    events_to_frames,
    load_cifar,
    load_cifar10_dvs,
    load_images,
    load_nmnist,
)


def _write_batch(path: Path, count: int, label_key: bytes, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
    with path.open("wb") as handle:
        batch = {b"data": data, label_key: list(rng.integers(0, 10, count)), b"batch_label": b"x"}
        pickle.dump(batch, handle)
    return data


def test_cifar10_batches_load_channel_major(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    first = _write_batch(folder / "data_batch_1", 3, b"labels", 0)
    for index in range(2, 6):
        _write_batch(folder / f"data_batch_{index}", 2, b"labels", index)
    _write_batch(folder / "test_batch", 4, b"labels", 9)
    train, test = load_cifar(tmp_path, 10)
    assert train.inputs.shape == (11, 3, 32, 32) and len(test) == 4
    assert np.array_equal(train.inputs[0, 1].reshape(-1), first[0, 1024:2048])  # green plane
    (folder / "data_batch_4").unlink()
    with pytest.raises(EslError, match="data_batch_4 is missing"):
        load_cifar(folder, 10)


def test_cifar100_uses_fine_labels_and_names_bad_files(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    _write_batch(folder / "train", 5, b"fine_labels", 0)
    (folder / "test").write_bytes(b"not a pickle")
    with pytest.raises(EslError, match="test: not a CIFAR python batch"):
        load_cifar(tmp_path, 100)
    _write_batch(folder / "test", 2, b"coarse_labels", 1)
    with pytest.raises(EslError, match="lacks fine_labels"):
        load_cifar(tmp_path, 100)
    with pytest.raises(EslError, match="is not a folder"):
        load_cifar(tmp_path / "nowhere", 10)


def _nmnist_bytes(events: list[tuple[int, int, int, int]]) -> bytes:
    """N-MNIST .bin: 5 bytes per event, x, y, polarity in bit 7 and a 23-bit timestamp (µs)."""
    out = bytearray()
    for x, y, polarity, stamp in events:
        out += bytes([x, y, (polarity << 7) | (stamp >> 16), (stamp >> 8) & 255, stamp & 255])
    return bytes(out)


def test_nmnist_recordings_become_time_binned_frames(tmp_path: Path) -> None:
    for split in ("Train", "Test"):
        for digit in (3, 7):
            folder = tmp_path / "NMNIST" / split / str(digit)
            folder.mkdir(parents=True)
            events = [(1, 2, 1, 0), (1, 2, 1, 10), (5, 6, 0, 20), (33, 33, 1, 99)]
            (folder / "00001.bin").write_bytes(_nmnist_bytes(events))
    train, test = load_nmnist(tmp_path, timesteps=2)
    assert train.inputs.shape == (2, 2, 2, 34, 34) and train.labels.tolist() == [3, 7]
    frames = train.inputs[0]
    assert frames[0, 1, 2, 1] == 2  # two ON events at x=1, y=2 in the first half
    assert frames[0, 0, 6, 5] == 1  # an OFF event at x=5, y=6
    assert frames.sum() == 3  # tonic's ToFrame leaves out the events at the last time stamp
    for recording in (tmp_path / "NMNIST" / "Test").rglob("*.bin"):
        recording.unlink()
    with pytest.raises(EslError, match="Test holds no <digit>/\\*.bin recordings"):
        load_nmnist(tmp_path, timesteps=2)
    with pytest.raises(EslError, match="Train is missing"):
        load_nmnist(tmp_path / "NMNIST" / "Test", timesteps=2)


def test_dvs_cifar10_needs_every_class_folder_and_splits_per_class(tmp_path: Path) -> None:
    with pytest.raises(EslError, match="airplane is missing"):
        load_cifar10_dvs(tmp_path, 4)
    for name in CIFAR10_DVS_CLASSES:
        (tmp_path / name).mkdir()
        for index in range(10):
            (tmp_path / name / f"{index:02d}.aedat4").write_bytes(b"")
    dtype = np.dtype([("t", np.uint64), ("x", np.uint16), ("y", np.uint16), ("p", bool)])

    def reader(path: Path) -> np.ndarray:
        return np.array([(0, 3, 4, True), (1000, 100, 120, False)], dtype=dtype)

    train, test = load_cifar10_dvs(tmp_path, 4, reader=reader)
    assert len(train) == 90 and len(test) == 10
    assert train.inputs.shape[1:] == (4, 2, 128, 128)
    assert sorted(set(test.labels.tolist())) == list(range(10))
    empty = events_to_frames(np.zeros(0, dtype=dtype), (128, 128, 2), 3)
    assert empty.shape == (3, 2, 128, 128) and not empty.any()


def _string(value: bytes) -> bytes:
    """Python 2's ``str`` in a protocol-2 pickle: SHORT_BINSTRING or BINSTRING."""
    if len(value) < 256:
        return b"U" + bytes([len(value)]) + value
    return b"T" + struct.pack("<i", len(value)) + value


def _int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)  # BININT


def _python2_batch(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch pickled the way the CIFAR python batches were (cPickle, protocol 2, ``numpy.core``)."""
    dtype = b"cnumpy\ndtype\n" + _string(b"u1") + _int(0) + _int(1) + b"\x87R"
    dtype_state = b"(" + _int(3) + _string(b"|") + b"NNN" + _int(-1) + _int(-1) + _int(0) + b"tb"
    array = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + _int(0) + b"\x85" + _string(b"b")
    array += b"\x87R(" + _int(1) + _int(data.shape[0]) + _int(data.shape[1]) + b"\x86" + dtype + dtype_state
    array += b"\x89" + _string(data.tobytes()) + b"tb"
    label_list = b"](" + b"".join(_int(label) for label in labels) + b"e"
    items = _string(b"batch_label") + _string(b"training batch 1 of 5") + _string(b"data") + array
    items += _string(b"labels") + label_list + _string(b"filenames") + b"](" + _string(b"a.png") + b"e"
    return b"\x80\x02}(" + items + b"u."


def test_a_batch_pickled_like_the_real_cifar_files_loads(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    batches = {}
    for name in [f"data_batch_{index}" for index in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (2, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, 2).tolist()
        (tmp_path / name).write_bytes(_python2_batch(data, labels))
        batches[name] = data, labels
    assert "numpy.core.multiarray _reconstruct" in _disassembly(tmp_path / "test_batch")
    train, test = load_cifar(tmp_path, 10)
    assert np.array_equal(test.inputs.reshape(2, -1), batches["test_batch"][0])
    assert test.labels.tolist() == batches["test_batch"][1] and len(train) == 10


def _disassembly(path: Path) -> str:
    out = io.StringIO()
    pickletools.dis(path.read_bytes(), out)
    return out.getvalue()


class _RunsAShellCommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


class _CallsEval:
    def __reduce__(self) -> tuple:
        return eval, ("1 + 1",)


def test_a_crafted_batch_cannot_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    crafted = pickle.dumps({b"data": _RunsAShellCommand(marker), b"labels": [0]})
    assert b"system" in crafted
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{index}" for index in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(crafted)
    with pytest.raises(
        EslError,
        match=rf"data_batch_1: refused to unpickle {os.system.__module__}\.system "
        r"\(only CIFAR batch contents are read\)$",
    ):
        load_cifar(tmp_path, 10)
    assert not marker.exists()
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": [_CallsEval()], b"labels": [0]}))
    with pytest.raises(EslError, match=r"refused to unpickle builtins\.eval"):
        load_cifar(tmp_path, 10)


def _pickled(batch: object, protocol: int = 4) -> bytes:
    return pickle.dumps(batch, protocol=protocol)


PIXELS = np.zeros((2, 3072), dtype=np.uint8)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a CIFAR python batch"),
        (_pickled({b"data": PIXELS, b"labels": [1, 2]})[:-30], "not a CIFAR python batch"),
        (_pickled([PIXELS, [1, 2]]), "holds a list, not a dict"),
        (_pickled({b"data": PIXELS}), "lacks labels"),
        (_pickled({"data": PIXELS, "labels": [1, 2]}), "lacks data"),
        (_pickled({b"data": PIXELS, b"labels": b"\x01\x02"}), "labels is a bytes, not a list"),
        (_pickled({b"data": PIXELS, b"labels": []}), r"labels have shape \(0,\)"),
        (_pickled({b"data": PIXELS, b"labels": [1, 10]}), "label 10 at index 1 is outside 0..9"),
        (_pickled({b"data": PIXELS, b"labels": [1, -1]}), "label -1 at index 1 is outside 0..9"),
        (_pickled({b"data": PIXELS, b"labels": [1.0, 2.0]}), "labels must be integers, got float64"),
        (_pickled({b"data": PIXELS, b"labels": [1, 2**70]}), "labels must be integers, got object"),
        (_pickled({b"data": PIXELS, b"labels": [1, [2]]}), "labels is not a regular array"),
        (
            _pickled({b"data": PIXELS, b"labels": [1, 2, 3]}),
            r"data has shape \(2, 3072\), expected \(3, 3072\)",
        ),
        (_pickled({b"data": PIXELS.tobytes(), b"labels": [1, 2]}), "data is a bytes"),
        (
            _pickled({b"data": PIXELS.astype(np.float32) + 0.5, b"labels": [1, 2]}),
            r"found 0.5 at index \(0, 0\)",
        ),
        (_pickled({b"data": PIXELS.astype(np.int16) - 1, b"labels": [1, 2]}), r"found -1 at index \(0, 0\)"),
        (_pickled({b"data": [[300] * 3072, [0] * 3072], b"labels": [1, 2]}), r"found 300 at index \(0, 0\)"),
        (_pickled({b"data": PIXELS.astype(bool), b"labels": [1, 2]}), "got type bool"),
        (_pickled({b"data": PIXELS, b"labels": [1, 2]}, protocol=5), r"refused to unpickle numpy\._core"),
        (_pickled({b"data": PIXELS, b"labels": [1, 2]}, protocol=2), r"refused to unpickle _codecs\.encode"),
    ],
)
def test_a_damaged_batch_is_one_error_naming_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    _cifar10_folder(folder)
    (folder / "data_batch_3").write_bytes(content)
    with pytest.raises(EslError, match=f"data_batch_3: .*{message}"):
        load_cifar(tmp_path, 10)


def _cifar10_folder(folder: Path) -> None:
    folder.mkdir()
    for index in range(1, 6):
        _write_batch(folder / f"data_batch_{index}", 2, b"labels", index)
    _write_batch(folder / "test_batch", 2, b"labels", 0)


def test_an_array_larger_than_its_file_is_refused_untouched(tmp_path: Path) -> None:
    class _Empty:
        def __reduce__(self) -> tuple:
            return np.ndarray, ((1 << 20, 3072), np.dtype(np.uint8))  # 3 GiB never written to the file

    folder = tmp_path / "cifar-10-batches-py"
    _cifar10_folder(folder)
    for data in (_Empty(), [_Empty()]):
        (folder / "test_batch").write_bytes(pickle.dumps({b"data": data, b"labels": [0]}))
        with pytest.raises(EslError, match=r"test_batch: CIFAR batch entry b'data' is larger than the file"):
            load_cifar(tmp_path, 10)


@pytest.mark.parametrize("classes", [10, 100])
def test_the_binary_distribution_loads(tmp_path: Path, classes: int) -> None:
    rng = np.random.default_rng(classes)
    label_bytes = 1 if classes == 10 else 2
    folder = tmp_path / ("cifar-10-batches-bin" if classes == 10 else "cifar-100-binary")
    folder.mkdir()
    names = (
        [f"data_batch_{index}" for index in range(1, 6)] + ["test_batch"]
        if classes == 10
        else ["train", "test"]
    )
    records = {}
    for name in names:
        rows = rng.integers(0, 256, (3, label_bytes + 3072), dtype=np.uint8)
        rows[:, :label_bytes] = rng.integers(0, 20 if label_bytes == 2 else 10, (3, label_bytes))
        rows[:, label_bytes - 1] = rng.integers(0, classes, 3)
        (folder / f"{name}.bin").write_bytes(rows.tobytes())
        records[name] = rows
    train, test = load_cifar(tmp_path, classes)
    expected = records[names[-1]]
    assert test.labels.tolist() == expected[:, label_bytes - 1].tolist()  # CIFAR-100: the fine label
    assert np.array_equal(test.inputs, expected[:, label_bytes:].reshape(3, 3, 32, 32))
    assert len(train) == 3 * (len(names) - 1)
    (folder / f"{names[-1]}.bin").write_bytes(expected.tobytes()[:-1])
    with pytest.raises(
        EslError, match=f"{names[-1]}.bin: .* not whole CIFAR records of {label_bytes + 3072}"
    ):
        load_cifar(tmp_path, classes)
    bad = expected.copy()
    bad[1, label_bytes - 1] = classes
    (folder / f"{names[-1]}.bin").write_bytes(bad.tobytes())
    with pytest.raises(EslError, match=f"label {classes} at index 1 is outside 0..{classes - 1}"):
        load_cifar(tmp_path, classes)


def test_damaged_event_recordings_are_one_error(tmp_path: Path) -> None:
    for split in ("Train", "Test"):
        folder = tmp_path / split / "1"
        folder.mkdir(parents=True)
        (folder / "00001.bin").write_bytes(_nmnist_bytes([(1, 2, 1, 0), (3, 4, 0, 50)]))
    recording = tmp_path / "Train" / "1" / "00001.bin"
    recording.write_bytes(_nmnist_bytes([(1, 2, 1, 0)]) + b"\x01\x02")
    with pytest.raises(EslError, match="00001.bin: 7 bytes are not whole N-MNIST events of 5 bytes"):
        load_nmnist(tmp_path, timesteps=2)
    recording.write_bytes(_nmnist_bytes([(200, 4, 0, 0), (1, 2, 1, 50)]))  # x outside the 34×34 sensor
    with pytest.raises(EslError, match="00001.bin: damaged event recording \\(IndexError"):
        load_nmnist(tmp_path, timesteps=2)
    for name in CIFAR10_DVS_CLASSES:
        (tmp_path / "dvs" / name).mkdir(parents=True)
        (tmp_path / "dvs" / name / "0.aedat4").write_bytes(b"")

    def reader(path: Path) -> np.ndarray:
        raise RuntimeError("bad packet header")

    with pytest.raises(
        EslError, match="airplane/0.aedat4: damaged event recording \\(RuntimeError: bad packet"
    ):
        load_cifar10_dvs(tmp_path / "dvs", 2, reader=reader)


def test_event_data_without_tonic_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from esl_hw.train.vision_data import load_cifar10_dvs, load_nmnist

    monkeypatch.setitem(sys.modules, "tonic", None)
    for load in (load_nmnist, load_cifar10_dvs):
        with pytest.raises(EslError, match=r"pip install 'esl-hw\[events\]'"):
            load(tmp_path, 4)


def _npz_images(folder: Path, train: np.ndarray, test: np.ndarray) -> Path:
    folder.mkdir(parents=True)
    for name, images in (("train", train), ("test", test)):
        labels = np.arange(len(images)) % 3
        np.savez(folder / f"{name}.npz", x=images, y=labels)
    return folder


def test_images_become_channels_first_with_classes_from_the_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (6, 20, 24), dtype=np.uint8)
    train, test, classes = load_images(_npz_images(tmp_path / "grey", grey, grey[:4]))
    assert train.inputs.shape == (6, 1, 20, 24) and test.inputs.shape == (4, 1, 20, 24)
    assert np.array_equal(train.inputs[:, 0], grey) and train.inputs.dtype == np.uint8
    assert classes == 3 and train.labels.tolist() == [0, 1, 2, 0, 1, 2]
    rgb = rng.integers(0, 256, (5, 16, 18, 3), dtype=np.uint8)
    train, _, _ = load_images(_npz_images(tmp_path / "rgb", rgb, rgb))
    assert train.inputs.shape == (5, 3, 16, 18)
    assert np.array_equal(train.inputs[2, 1], rgb[2, :, :, 1])  # channel 1 of image 2, every pixel


def test_idx_images_load_like_the_mlps(tmp_path: Path) -> None:
    import gzip

    tmp_path.joinpath("idx").mkdir()
    for prefix, count in (("train", 3), ("t10k", 2)):
        pixels = np.arange(count * 16 * 17, dtype=np.uint32).astype(np.uint8).tobytes()
        images = struct.pack(">BBBBIII", 0, 0, 8, 3, count, 16, 17) + pixels
        labels = struct.pack(">BBBBI", 0, 0, 8, 1, count) + bytes([1, 0, 4][:count])
        (tmp_path / "idx" / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
        (tmp_path / "idx" / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    train, test, classes = load_images(tmp_path / "idx")
    assert train.inputs.shape == (3, 1, 16, 17) and test.inputs.shape == (2, 1, 16, 17)
    assert train.inputs[1, 0, 0, :3].tolist() == [16 * 17 % 256, (16 * 17 + 1) % 256, (16 * 17 + 2) % 256]
    assert classes == 5


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((4, 30), r"images of shape 30 are neither \[H, W\] nor channels-last \[H, W, C\] with C <= 4"),
        ((4, 16, 16, 5), "images of shape 16x16x5 are neither"),
        ((4, 2, 16, 16, 1), "images of shape 2x16x16x1 are neither"),
        ((1, 1025, 1024), "images of 1049600 pixels, more than a model's 1048576 inputs"),
    ],
)
def test_image_shapes_a_conv_net_cannot_take_are_refused_by_name(
    tmp_path: Path, shape: tuple[int, ...], message: str
) -> None:
    images = np.zeros(shape, np.uint8)
    folder = tmp_path / "data"
    folder.mkdir()
    for name in ("train", "test"):
        np.savez(folder / f"{name}.npz", x=images, y=np.arange(len(images)) % 2 + (len(images) == 1))
    with pytest.raises(EslError, match=message) as error:
        load_images(folder)
    assert "\n" not in str(error.value) and str(folder) in str(error.value)
