"""Image classification data from a local folder (IDX or NPZ files), and the MNIST subset shipped in
the package.

Nothing is downloaded: a folder without the expected files is an :class:`EslError` naming them.
:func:`load_dataset` returns a :class:`Dataset` of a train and a test :class:`Split`: images
``[N, n_in]`` uint8 (each image flattened, whatever its shape), labels ``[N]`` int64. The input
size ``n_in`` and the class count (the largest label plus one, over train and test) come from the
data; docs/datasets.md describes the formats for users.

- **IDX** (MNIST's format; Fashion-MNIST, KMNIST and EMNIST use it too): ``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each
  optionally gzip-compressed (``.gz``); ``.idx3`` for ``-idx3``, ``test`` for ``t10k``, any ``idxN``
  and a prefix such as ``emnist-letters-`` are recognised too, as long as one file per role matches.
  Images ``[N, ...]`` with at least one size after ``N`` (rows and columns, or any other shape).
- **NPZ**: ``train.npz`` and ``test.npz`` in the folder, each with exactly the arrays ``x`` (uint8
  images ``[N, ...]``) and ``y`` (integer labels ``[N]``), as ``numpy.savez(path, x=x, y=y)``
  writes them. They are read member by member without pickle
  (:func:`esl_hw.artifact_arrays.read_npy_member`): an object array is refused, and the sizes and
  types in the headers are checked before any data is read.

An IDX file is checked before anything is allocated or cast: the magic ``(0, 0, type, ndim)``, a
header long enough for its ``ndim`` sizes, sizes that are all positive and whose product (in Python
integers) times the item size is exactly the data that follows, at most :data:`DATA_MAX_BYTES` of
data (the file is read in a bounded way, so a gzip bomb stops there). Images must hold integers
``0..255`` (type ``0x08``, or another type whose every value is one); labels an integer type with
values ``>= 0``. Nothing is cast silently. Every split needs at least one image, train and test the
same image shape, at most ``MAX_INPUTS_PER_LAYER`` pixels per image and between 2 and
``MAX_NEURONS_PER_LAYER`` classes (:mod:`esl_hw.limits`: what one layer of a model may have).
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from esl_hw import limits
from esl_hw.artifact_arrays import member_infos, open_npz, read_npy_member
from esl_hw.errors import EslError
from esl_hw.limits import shown

IDX_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
NPZ_FILES = {"train": "train.npz", "test": "test.npz"}
EMBEDDED_NAME = "mnist_subset.npz"
#: The shape of MNIST (and of the embedded subset): 28x28 pixels, 10 digits.
MNIST_INPUTS, MNIST_CLASSES = 784, 10
DATA_MAX_BYTES = limits.DATA_MAX_BYTES  # the data of one IDX file or NPZ array; MNIST's largest: 47 MB
IDX_MAX_BYTES = DATA_MAX_BYTES
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_READ_ERRORS = (OSError, EOFError, zlib.error)  # gzip.BadGzipFile and PermissionError are OSErrors
_CHUNK = 1 << 24
#: Any IDX naming: an optional prefix, ``train``/``t10k``/``test``, ``images``/``labels``, ``idxN``.
_IDX_NAME = re.compile(r"^(?:.*[-_.])?(train|t10k|test)-(images|labels)[-.]idx\d-ubyte(?:\.gz)?$")
_SPLIT_WORDS = {"train": ("train",), "test": ("t10k", "test")}


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
    """A train and a test split plus where they came from and the shape of one image."""

    train: Split
    test: Split
    source: str
    image_shape: tuple[int, ...] = ()

    @property
    def n_inputs(self) -> int:
        """Pixels per image: the input size of a model for this data."""
        return int(self.train.images.shape[1])

    @property
    def classes(self) -> int:
        """The largest label of train and test plus one: the output size of a model for this data."""
        return int(max(self.train.labels.max(), self.test.labels.max())) + 1


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


def check_fits(dataset: Dataset, n_inputs: int, n_outputs: int | None = None) -> None:
    """Raise :class:`EslError` unless ``dataset``'s images have ``n_inputs`` pixels (a model's inputs;
    the message names both sizes) and, with ``n_outputs``, its test labels lie in ``0..n_outputs-1``."""
    if dataset.n_inputs != n_inputs:
        shape = "x".join(map(str, dataset.image_shape))
        raise EslError(
            f"dataset {dataset.source}: images have {dataset.n_inputs} pixels"
            f"{f' ({shape})' if shape else ''}, the model has {n_inputs} inputs"
        )
    if n_outputs is not None:
        check_labels(dataset.test.labels, n_outputs, f"{dataset.source} test labels")


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
            if expected > DATA_MAX_BYTES:
                raise EslError(
                    f"{path}: IDX sizes {dims} promise {expected} bytes, more than the limit {DATA_MAX_BYTES}"
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


def _label_values(array: np.ndarray, where: str) -> np.ndarray:
    """One-dimensional integer labels ``>= 0`` (and below the class limit) as int64."""
    if array.ndim != 1:
        raise EslError(f"{where}: labels must be one-dimensional [N], got sizes {array.shape}")
    if array.dtype.kind not in "iu":
        raise EslError(f"{where}: labels must be integers, got {array.dtype}")
    negative = np.flatnonzero(array < 0)
    if len(negative):
        index = int(negative[0])
        raise EslError(f"{where}: label {array[index].item()} at index {index} is negative")
    check_labels(array, limits.MAX_NEURONS_PER_LAYER, where)
    return array.astype(np.int64)


def _image_values(array: np.ndarray, where: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """Images ``[N, ...]`` as ``[N, n_in]`` uint8, and the shape of one image."""
    if array.ndim < 2:
        raise EslError(f"{where}: images must be [N, ...] with at least one size after N, got {array.shape}")
    return as_pixels(array, where).reshape(len(array), -1), tuple(int(size) for size in array.shape[1:])


def _find_idx(folder: Path, split: str, kind: str) -> Path:
    """The IDX file of ``split``'s ``kind`` in ``folder``: MNIST's name first, else the one file whose
    name matches :data:`_IDX_NAME` for that role (several such files are refused, naming them)."""
    stem = IDX_FILES[(split, kind)]
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (folder / name).is_file():
            return folder / name
    found = []
    for entry in sorted(folder.iterdir()):
        match = _IDX_NAME.match(entry.name)
        if match and match[1] in _SPLIT_WORDS[split] and match[2] == kind and entry.is_file():
            found.append(entry)
    if len(found) > 1:
        raise EslError(
            f"dataset folder {folder} has {len(found)} {split} {kind} files "
            f"({', '.join(entry.name for entry in found)}); keep one"
        )
    if not found:
        raise EslError(
            f"dataset folder {folder} lacks {stem}[.gz] (IDX files expected, or {NPZ_FILES['train']} "
            f"and {NPZ_FILES['test']})"
        )
    return found[0]


def _idx_split(folder: Path, split: str) -> tuple[Split, tuple[int, ...]]:
    image_path = _find_idx(folder, split, "images")
    label_path = _find_idx(folder, split, "labels")
    images, shape = _image_values(read_idx(image_path), str(image_path))
    labels = _label_values(read_idx(label_path), str(label_path))
    if len(images) != len(labels):
        raise EslError(f"{folder}: {split} has {len(images)} images but {len(labels)} labels")
    return Split(images, labels), shape


def load_idx_split(folder: Path, split: str) -> Split:
    """The ``split`` (``train`` or ``test``) of the IDX files in ``folder``, checked."""
    return _idx_split(folder, split)[0]


def _npz_split(folder: Path, split: str) -> tuple[Split, tuple[int, ...]]:
    """``x`` and ``y`` of ``train.npz`` or ``test.npz``: ``y``'s header and data first, then ``x``'s
    header (uint8, ``[len(y), ...]``) before its data is read."""
    path = folder / NPZ_FILES[split]
    if not path.is_file():
        other = NPZ_FILES["test" if split == "train" else "train"]
        raise EslError(f"dataset folder {folder} has {other} but lacks {path.name}")
    with open_npz(path) as archive:
        members = member_infos(archive, path)
        if set(members) != {"x", "y"}:
            found = ", ".join(shown(name) for name in sorted(members)) or "nothing"
            raise EslError(f"{path}: must hold exactly the arrays x and y, holds {found}")
        too_many = f"more than the limit {DATA_MAX_BYTES}"

        def check_y(shape: tuple[Any, ...], dtype: np.dtype) -> None:
            if dtype.kind not in "iu":
                raise EslError(f"{path} array y: labels must be integers, got dtype {dtype}")
            if len(shape) != 1:
                raise EslError(f"{path} array y: labels must be one-dimensional [N], got sizes {shape}")

        labels = read_npy_member(archive, members["y"], f"{path} array y", DATA_MAX_BYTES, too_many, check_y)

        def check_x(shape: tuple[Any, ...], dtype: np.dtype) -> None:
            if dtype != np.uint8:
                raise EslError(f"{path} array x: images must be uint8 (values 0..255), got dtype {dtype}")
            if len(shape) < 2 or 0 in shape:
                raise EslError(f"{path} array x: images must be [N, ...] with sizes >= 1, got {shape}")
            if shape[0] != len(labels):
                raise EslError(f"{path}: x has {shape[0]} images but y has {len(labels)} labels")

        images = read_npy_member(archive, members["x"], f"{path} array x", DATA_MAX_BYTES, too_many, check_x)
    split_data = Split(images.reshape(len(images), -1), _label_values(labels, f"{path} array y"))
    return split_data, tuple(int(size) for size in images.shape[1:])


def _checked(
    train: tuple[Split, tuple[int, ...]], test: tuple[Split, tuple[int, ...]], source: str
) -> Dataset:
    """The :class:`Dataset` once train and test share an image shape within the limits and the labels
    give 2 or more classes."""
    (train_split, shape), (test_split, test_shape) = train, test
    if shape != test_shape:
        raise EslError(f"dataset {source}: train images are {shape}, test images {test_shape}")
    dataset = Dataset(train_split, test_split, source, shape)
    if dataset.n_inputs > limits.MAX_INPUTS_PER_LAYER:
        raise EslError(
            f"dataset {source}: images of {dataset.n_inputs} pixels, more than a model's "
            f"{limits.MAX_INPUTS_PER_LAYER} inputs"
        )
    classes = dataset.classes
    if classes > limits.MAX_NEURONS_PER_LAYER:
        raise EslError(
            f"dataset {source}: label {classes - 1} gives {classes} classes, "
            f"more than a layer's {limits.MAX_NEURONS_PER_LAYER} neurons"
        )
    if classes < 2:
        raise EslError(f"dataset {source}: every label is 0; a classifier needs at least 2 classes")
    return dataset


def load_dataset(path: str | os.PathLike[str] | None = None) -> Dataset:
    """The dataset in the folder ``path`` (``train.npz`` and ``test.npz``, else IDX files), or the
    embedded MNIST subset when ``path`` is ``None``; checked as the module docstring says."""
    if path is None:
        return load_embedded()
    folder = Path(path)
    if not folder.is_dir():
        raise EslError(f"dataset path {folder} is not a folder")
    if any((folder / name).exists() for name in NPZ_FILES.values()):
        return _checked(_npz_split(folder, "train"), _npz_split(folder, "test"), str(folder))
    return _checked(_idx_split(folder, "train"), _idx_split(folder, "test"), str(folder))


def load_mnist(path: str | os.PathLike[str] | None = None) -> Dataset:
    """The former name of :func:`load_dataset` (which reads any IDX or NPZ dataset, MNIST or not)."""
    return load_dataset(path)


def load_embedded() -> Dataset:
    """The MNIST subset that ships inside the package (see esl_hw/data/README.md)."""
    resource = resources.files("esl_hw") / "data" / EMBEDDED_NAME
    with resources.as_file(resource) as path, np.load(path, allow_pickle=False) as archive:
        train = Split(archive["train_images"], archive["train_labels"].astype(np.int64))
        test = Split(archive["test_images"], archive["test_labels"].astype(np.int64))
    return Dataset(train, test, f"embedded:{EMBEDDED_NAME}", (28, 28))
