"""CIFAR-10/100 (the standard python batches) and event-camera data (N-MNIST, DVS-CIFAR10) from disk.

Nothing is downloaded: every loader takes a local path and raises :class:`EslError` naming the first
missing file or folder.

- CIFAR-10: ``<path>/data_batch_1 … data_batch_5`` and ``test_batch`` (the ``cifar-10-batches-py``
  folder, or its parent), pickled dicts with ``b"data"`` ``[N, 3072]`` uint8 (channel-major 32×32) and
  ``b"labels"``.
- CIFAR-100: ``<path>/train`` and ``test`` (``cifar-100-python``), ``b"data"`` and ``b"fine_labels"``.
- N-MNIST: ``<path>/Train/<digit>/*.bin`` and ``Test/…`` (tonic's layout), read with
  ``tonic.io.read_mnist_file``; sensor 34×34×2.
- DVS-CIFAR10: ``<path>/<class name>/*.aedat4`` (tonic's layout), read with ``tonic.io.read_aedat4``
  (needs the ``aedat`` package); sensor 128×128×2. It has no official split: the first
  ``round(0.9 · n)`` recordings of each class (sorted by name) train, the rest test.

Event recordings become frames ``[T, 2, H, W]`` with ``tonic.transforms.ToFrame(n_time_bins=T)``:
the recording is cut into ``T`` equal time bins and each frame counts the events per polarity and
pixel (tonic leaves out the events at the recording's very last time stamp).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from esl_hw.errors import EslError

CIFAR10_DVS_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
NMNIST_SENSOR = (34, 34, 2)
CIFAR10_DVS_SENSOR = (128, 128, 2)


@dataclass(frozen=True)
class ArraySplit:
    """``inputs`` (images ``[N, C, H, W]`` uint8, or frames ``[N, T, 2, H, W]``) and ``labels`` ``[N]``."""

    inputs: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def _folder(path: str | os.PathLike[str], *candidates: str) -> Path:
    root = Path(path)
    if not root.is_dir():
        raise EslError(f"dataset path {root} is not a folder")
    for name in candidates:
        if (root / name).is_dir():
            return root / name
    return root


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise EslError(f"dataset file {path} is missing")
    try:
        with path.open("rb") as handle:
            return pickle.load(handle, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise EslError(f"{path}: not a CIFAR python batch ({error})") from None


def _cifar_split(paths: list[Path], label_key: bytes) -> ArraySplit:
    images, labels = [], []
    for path in paths:
        batch = _unpickle(path)
        if b"data" not in batch or label_key not in batch:
            raise EslError(
                f"{path}: CIFAR batch lacks {'data' if b'data' not in batch else label_key.decode()}"
            )
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3072:
            raise EslError(f"{path}: CIFAR data has shape {data.shape}, expected [N, 3072]")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[label_key], dtype=np.int64))
    return ArraySplit(np.concatenate(images), np.concatenate(labels))


def load_cifar(path: str | os.PathLike[str], classes: int = 10) -> tuple[ArraySplit, ArraySplit]:
    """``(train, test)`` of CIFAR-10 or CIFAR-100 from the standard python batches."""
    if classes == 10:
        folder = _folder(path, "cifar-10-batches-py")
        train = [folder / f"data_batch_{index}" for index in range(1, 6)]
        return _cifar_split(train, b"labels"), _cifar_split([folder / "test_batch"], b"labels")
    if classes == 100:
        folder = _folder(path, "cifar-100-python")
        return _cifar_split([folder / "train"], b"fine_labels"), _cifar_split(
            [folder / "test"], b"fine_labels"
        )
    raise EslError(f"CIFAR has 10 or 100 classes, not {classes}")


# ---------------------------------------------------------------- event data


def events_to_frames(events: np.ndarray, sensor_size: tuple[int, int, int], timesteps: int) -> np.ndarray:
    """Frames ``[T, 2, H, W]`` (float32 event counts) of one recording, ``T`` equal time bins (tonic)."""
    from tonic.transforms import ToFrame

    if len(events) == 0:
        return np.zeros((timesteps, sensor_size[2], sensor_size[1], sensor_size[0]), dtype=np.float32)
    frames = ToFrame(sensor_size=sensor_size, n_time_bins=timesteps)(events)
    return np.asarray(frames, dtype=np.float32)


def _recordings(folder: Path, suffix: str) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.suffix == suffix)


def _frames(
    files: list[tuple[Path, int]],
    reader: Callable[[Path], np.ndarray],
    sensor: tuple[int, int, int],
    steps: int,
) -> ArraySplit:
    if not files:
        return ArraySplit(
            np.zeros((0, steps, sensor[2], sensor[1], sensor[0]), np.float32), np.zeros(0, np.int64)
        )
    frames = [events_to_frames(reader(path), sensor, steps) for path, _ in files]
    return ArraySplit(np.stack(frames), np.array([label for _, label in files], dtype=np.int64))


def read_nmnist(path: Path) -> np.ndarray:
    """Events of one N-MNIST ``.bin`` recording (``tonic.io.read_mnist_file``)."""
    from tonic.datasets import NMNIST
    from tonic.io import read_mnist_file

    return read_mnist_file(str(path), dtype=NMNIST.dtype)


def read_cifar10_dvs(path: Path) -> np.ndarray:
    """Events of one DVS-CIFAR10 ``.aedat4`` recording (``tonic.io.read_aedat4``)."""
    try:
        from tonic.io import read_aedat4

        return read_aedat4(str(path))
    except ImportError as error:
        raise EslError(f"reading {path} needs the 'aedat' package ({error})") from None


def load_nmnist(
    path: str | os.PathLike[str], timesteps: int, limit: int | None = None
) -> tuple[ArraySplit, ArraySplit]:
    """``(train, test)`` N-MNIST frames ``[N, T, 2, 34, 34]``; ``limit`` recordings per split at most."""
    root = _folder(path, "NMNIST")
    splits = []
    for name in ("Train", "Test"):
        folder = root / name
        if not folder.is_dir():
            raise EslError(f"N-MNIST folder {folder} is missing")
        files = [
            (recording, digit)
            for digit in range(10)
            if (folder / str(digit)).is_dir()
            for recording in _recordings(folder / str(digit), ".bin")
        ]
        if not files:
            raise EslError(f"N-MNIST folder {folder} holds no <digit>/*.bin recordings")
        splits.append(_frames(files[:limit], read_nmnist, NMNIST_SENSOR, timesteps))
    return splits[0], splits[1]


def load_cifar10_dvs(
    path: str | os.PathLike[str],
    timesteps: int,
    train_fraction: float = 0.9,
    reader: Callable[[Path], np.ndarray] = read_cifar10_dvs,
) -> tuple[ArraySplit, ArraySplit]:
    """``(train, test)`` DVS-CIFAR10 frames ``[N, T, 2, 128, 128]`` split per class by file name."""
    root = _folder(path, "CIFAR10DVS")
    train_files, test_files = [], []
    for label, name in enumerate(CIFAR10_DVS_CLASSES):
        folder = root / name
        if not folder.is_dir():
            raise EslError(f"DVS-CIFAR10 class folder {folder} is missing")
        recordings = _recordings(folder, ".aedat4")
        cut = round(train_fraction * len(recordings))
        train_files += [(recording, label) for recording in recordings[:cut]]
        test_files += [(recording, label) for recording in recordings[cut:]]
    return (
        _frames(train_files, reader, CIFAR10_DVS_SENSOR, timesteps),
        _frames(test_files, reader, CIFAR10_DVS_SENSOR, timesteps),
    )
