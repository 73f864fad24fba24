"""MNIST in IDX format from a local folder, and the small MNIST subset shipped in the package.

Nothing is downloaded: a folder without the expected files is an :class:`EslError` naming them.
Images come back as ``[N, 784]`` uint8, labels as ``[N]`` int64 in ``0..9``.

An IDX file is checked before anything is allocated or cast: the magic ``(0, 0, type, ndim)``, a
header long enough for its ``ndim`` sizes, sizes that are all positive and whose product (in Python
integers) times the item size is exactly the data that follows, at most :data:`IDX_MAX_BYTES` of
data (the file is read in a bounded way, so a gzip bomb stops there). Images must hold integers
``0..255`` (type ``0x08``, or another type whose every value is one); labels an integer type with
values in ``0..9``. Nothing is cast silently.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import BinaryIO

import numpy as np

from esl_hw.errors import EslError

IDX_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
EMBEDDED_NAME = "mnist_subset.npz"
MNIST_CLASSES = 10
IDX_MAX_BYTES = 4 << 30  # the data of one IDX file (decompressed); MNIST's largest holds 47 MB
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_READ_ERRORS = (OSError, EOFError, zlib.error)  # gzip.BadGzipFile and PermissionError are OSErrors
_CHUNK = 1 << 24


@dataclass(frozen=True)
class Split:
    """Images ``[N, n_in]`` uint8 and labels ``[N]`` int64."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, count: int | None) -> Split:
        return self if count is None else Split(self.images[:count], self.labels[:count])


@dataclass(frozen=True)
class Dataset:
    """A train and a test split plus where they came from."""

    train: Split
    test: Split
    source: str


def check_labels(labels: np.ndarray, classes: int, where: str) -> None:
    """Raise :class:`EslError` unless ``labels`` are integers in ``0..classes-1``; the message names
    the first bad label and ``where``."""
    values = np.asarray(labels)
    if values.dtype.kind not in "iu":
        raise EslError(f"{where}: labels must be integers, got {values.dtype}")
    bad = np.flatnonzero((values < 0) | (values >= classes))
    if len(bad):
        index = int(bad[0])
        raise EslError(
            f"{where}: label {values.flat[index].item()} at index {index} is outside 0..{classes - 1}"
        )


def _read_exactly(handle: BinaryIO, count: int) -> bytes:
    """Up to ``count`` bytes (fewer only at the end of the file), read in bounded chunks."""
    parts, left = [], count
    while left > 0:
        part = handle.read(min(left, _CHUNK))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _header(handle: BinaryIO, path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    """The item type and the sizes of the IDX file open in ``handle`` (positioned at its start)."""
    magic = _read_exactly(handle, 4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_TYPES:
        hint = " (gzip data: name it .gz)" if magic[:2] == b"\x1f\x8b" else ""
        raise EslError(f"{path}: not an IDX file (bad magic number {magic.hex() or 'empty'}){hint}")
    ndim = magic[3]
    if ndim == 0:
        raise EslError(f"{path}: IDX file has 0 dimensions")
    raw = _read_exactly(handle, 4 * ndim)
    if len(raw) < 4 * ndim:
        raise EslError(f"{path}: IDX header of {ndim} dimensions ends after {4 + len(raw)} bytes")
    dims = tuple(int.from_bytes(raw[4 * axis : 4 * axis + 4], "big") for axis in range(ndim))
    if 0 in dims:
        raise EslError(f"{path}: IDX sizes {dims} include 0 (no data)")
    return np.dtype(_IDX_TYPES[magic[2]]), dims


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) into a numpy array, checked (module docstring)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            dtype, dims = _header(handle, path)
            expected = dtype.itemsize
            for size in dims:
                expected *= size
            if expected > IDX_MAX_BYTES:
                raise EslError(
                    f"{path}: IDX sizes {dims} promise {expected} bytes, more than the limit {IDX_MAX_BYTES}"
                )
            data = _read_exactly(handle, expected + 1)
    except _READ_ERRORS as error:
        raise EslError(f"{path}: cannot read IDX file ({error})") from None
    if len(data) != expected:
        found = len(data) if len(data) < expected else "more"
        raise EslError(f"{path}: IDX header promises {expected} bytes of data, file has {found}")
    return np.frombuffer(data, dtype=dtype).reshape(dims)


def _first_bad(array: np.ndarray, bad: np.ndarray) -> str:
    """``value at index (i, j, …)`` of the first true entry of ``bad``."""
    index = np.unravel_index(int(np.argmax(bad)), array.shape)
    return f"{array[index].item()!r} at index {tuple(int(axis) for axis in index)}"


def as_pixels(array: np.ndarray, where: str) -> np.ndarray:
    """``array`` as uint8 when every value is an integer ``0..255``; otherwise an :class:`EslError`."""
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind not in "iuf":
        raise EslError(f"{where}: image values must be integers 0..255, got type {array.dtype}")
    with np.errstate(invalid="ignore"):
        bad = ~((array >= 0) & (array <= 255))
        if array.dtype.kind == "f":
            bad |= np.floor(array) != array
    if bad.any():
        raise EslError(f"{where}: image values must be integers 0..255, found {_first_bad(array, bad)}")
    return array.astype(np.uint8)


def _labels(array: np.ndarray, path: Path) -> np.ndarray:
    if array.ndim != 1:
        raise EslError(f"{path}: labels must be one-dimensional [N], got sizes {array.shape}")
    check_labels(array, MNIST_CLASSES, str(path))
    return array.astype(np.int64)


def _images(array: np.ndarray, path: Path) -> np.ndarray:
    if array.ndim != 3:
        raise EslError(f"{path}: images must be [N, rows, columns], got sizes {array.shape}")
    return as_pixels(array, str(path)).reshape(len(array), -1)


def _find_idx(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise EslError(f"dataset folder {folder} lacks {stem}[.gz] (MNIST IDX files expected)")


def load_idx_split(folder: Path, split: str) -> Split:
    """The ``split`` (``train`` or ``test``) of the MNIST IDX files in ``folder``, checked."""
    image_path = _find_idx(folder, IDX_FILES[(split, "images")])
    label_path = _find_idx(folder, IDX_FILES[(split, "labels")])
    images = _images(read_idx(image_path), image_path)
    labels = _labels(read_idx(label_path), label_path)
    if len(images) != len(labels):
        raise EslError(f"{folder}: {split} has {len(images)} images but {len(labels)} labels")
    return Split(images, labels)


def load_mnist(path: str | os.PathLike[str] | None = None) -> Dataset:
    """MNIST from the IDX folder ``path``, or the embedded subset when ``path`` is ``None``."""
    if path is None:
        return load_embedded()
    folder = Path(path)
    if not folder.is_dir():
        raise EslError(f"dataset path {folder} is not a folder")
    return Dataset(load_idx_split(folder, "train"), load_idx_split(folder, "test"), str(folder))


def load_embedded() -> Dataset:
    """The MNIST subset that ships inside the package (see esl_hw/data/README.md)."""
    resource = resources.files("esl_hw") / "data" / EMBEDDED_NAME
    with resources.as_file(resource) as path, np.load(path, allow_pickle=False) as archive:
        train = Split(archive["train_images"], archive["train_labels"].astype(np.int64))
        test = Split(archive["test_images"], archive["test_labels"].astype(np.int64))
    return Dataset(train, test, f"embedded:{EMBEDDED_NAME}")
