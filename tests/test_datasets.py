"""IDX reading, the folder loader's errors, and the embedded subset."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from esl_hw.datasets import load_embedded, load_mnist, read_idx
from esl_hw.errors import EslError


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)


def make_mnist(
    folder: Path, rng: np.random.Generator, compress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 7, dtype=np.uint8)
    for prefix in ("train", "t10k"):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images, compress)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels, compress)
    return images, labels


@pytest.mark.parametrize("compress", [True, False])
def test_idx_folder_loads_flat_images(tmp_path: Path, rng: np.random.Generator, compress: bool) -> None:
    images, labels = make_mnist(tmp_path, rng, compress)
    data = load_mnist(tmp_path)
    assert data.test.images.shape == (7, 784) and data.test.images.dtype == np.uint8
    assert np.array_equal(data.train.images, images.reshape(7, -1))
    assert data.train.labels.tolist() == labels.tolist()
    assert len(data.test.head(3)) == 3


def test_missing_file_is_named(tmp_path: Path, rng: np.random.Generator) -> None:
    make_mnist(tmp_path, rng)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(EslError, match="lacks t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)
    with pytest.raises(EslError, match="not a folder"):
        load_mnist(tmp_path / "nowhere")


def test_corrupt_idx_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad").write_bytes(b"\x12\x34\x08\x01\x00\x00\x00\x05ab")
    with pytest.raises(EslError, match="bad magic"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05ab")
    with pytest.raises(EslError, match="promises 5 bytes"):
        read_idx(tmp_path / "short")


def test_embedded_subset_ships_with_the_package() -> None:
    data = load_embedded()
    assert data.train.images.shape == (6000, 784) and data.test.images.shape == (1000, 784)
    assert set(np.unique(data.test.labels)) == set(range(10))
