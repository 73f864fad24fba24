"""MNIST in IDX format from a local folder, and the small MNIST subset shipped in the package.

Nothing is downloaded: a folder without the expected files is an :class:`EslError` naming them.
Images come back as ``[N, 784]`` uint8, labels as ``[N]`` int64.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from esl_hw.errors import EslError

IDX_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
EMBEDDED_NAME = "mnist_subset.npz"
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


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


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) into a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:
        raise EslError(f"{path}: cannot read IDX file ({error})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise EslError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(np.int64)
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise EslError(f"{path}: IDX header promises {expected} bytes, file has {len(raw) - offset}")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise EslError(f"dataset folder {folder} lacks {stem}[.gz] (MNIST IDX files expected)")


def load_idx_split(folder: Path, split: str) -> Split:
    images = read_idx(_find_idx(folder, IDX_FILES[(split, "images")]))
    labels = read_idx(_find_idx(folder, IDX_FILES[(split, "labels")]))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise EslError(f"{folder}: {split} images {images.shape} and labels {labels.shape} disagree")
    return Split(images.reshape(len(images), -1).astype(np.uint8), labels.astype(np.int64))


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
    with resources.as_file(resource) as path, np.load(path) as archive:
        train = Split(archive["train_images"], archive["train_labels"].astype(np.int64))
        test = Split(archive["test_images"], archive["test_labels"].astype(np.int64))
    return Dataset(train, test, f"embedded:{EMBEDDED_NAME}")
