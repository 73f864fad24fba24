"""Tests for esl_hw.train.vision_data on small files written in the real CIFAR and N-MNIST formats."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from esl_hw.errors import EslError
from esl_hw.train.vision_data import (
    CIFAR10_DVS_CLASSES,
    events_to_frames,
    load_cifar,
    load_cifar10_dvs,
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
