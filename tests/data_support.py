"""Tiny learnable image datasets written as IDX or NPZ files, for the tests of datasets of any size."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

#: MNIST's file names; ``prefix`` and ``test_word`` give the other naming schemes.
IDX_STEMS = ("{split}-images-idx{ndim}-ubyte", "{split}-labels-idx1-ubyte")


def tiny_images(
    rng: np.random.Generator, count: int, shape: tuple[int, ...] = (8, 8), classes: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` uint8 images of ``shape`` and labels ``0..classes-1``: noise plus a bright band whose
    place along the first axis is the class, so that a tiny network learns it in a few epochs."""
    labels = rng.integers(0, classes, count)
    images = rng.integers(0, 60, (count, *shape))
    band = max(shape[0] // classes, 1)
    for label in range(classes):
        images[labels == label, label * band : (label + 1) * band] += 180
    return images.clip(0, 255).astype(np.uint8), labels.astype(np.int64)


def idx_payload(array: np.ndarray) -> bytes:
    """``array`` (uint8) as an IDX file."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_dataset(
    folder: Path,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    compress: bool = False,
    prefix: str = "",
    test_word: str = "t10k",
) -> Path:
    """``splits`` (``train``/``test`` → images, labels) as the four IDX files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, (images, labels) in splits.items():
        word = test_word if split == "test" else "train"
        for stem, array in zip(IDX_STEMS, (images, labels), strict=True):
            name = prefix + stem.format(split=word, ndim=images.ndim) + (".gz" if compress else "")
            payload = idx_payload(array)
            (folder / name).write_bytes(gzip.compress(payload) if compress else payload)
    return folder


def write_npz_dataset(
    folder: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]], compress: bool = False
) -> Path:
    """``splits`` as ``train.npz`` and ``test.npz`` (arrays ``x`` and ``y``) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    save = np.savez_compressed if compress else np.savez
    for split, (images, labels) in splits.items():
        save(folder / f"{split}.npz", x=images, y=labels)
    return folder


def tiny_splits(
    rng: np.random.Generator,
    shape: tuple[int, ...] = (8, 8),
    classes: int = 3,
    train: int = 300,
    test: int = 60,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A train and a test split of :func:`tiny_images`."""
    return {
        "train": tiny_images(rng, train, shape, classes),
        "test": tiny_images(rng, test, shape, classes),
    }
