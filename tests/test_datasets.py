"""IDX reading, the folder loader's errors (every damaged file one EslError), and the embedded subset."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from esl_hw.datasets import IDX_MAX_BYTES, check_labels, load_embedded, load_mnist, read_idx
from esl_hw.errors import EslError

IDX_TYPE_CODES = {"u1": 0x08, "i1": 0x09, ">i2": 0x0B, ">i4": 0x0C, ">f4": 0x0D, ">f8": 0x0E}


def idx_bytes(array: np.ndarray, dtype: str = "u1") -> bytes:
    header = struct.pack(">BBBB", 0, 0, IDX_TYPE_CODES[dtype], array.ndim)
    return header + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(dtype).tobytes()


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


def _header(type_code: int, *dims: int) -> bytes:
    return struct.pack(">BBBB", 0, 0, type_code, len(dims)) + struct.pack(f">{len(dims)}I", *dims)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "bad magic number empty"),
        (b"\x00\x00\x08", "bad magic number 000008"),
        (b"\x00\x00\x0a\x01\x00\x00\x00\x01a", "bad magic"),  # 0x0a is no IDX type
        (b"\x1f\x8b\x08\x00", "gzip data: name it .gz"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00", "header of 3 dimensions ends after 10 bytes"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (_header(0x08, 0, 28, 28), r"sizes \(0, 28, 28\) include 0"),
        (_header(0x08, 3, 0) + b"abc", r"sizes \(3, 0\) include 0"),
        (_header(0x0E, 2**32 - 1, 2**32 - 1, 2**32 - 1), f"more than the limit {IDX_MAX_BYTES}"),
        (_header(0x08, 2, 2) + b"abcde", "promises 4 bytes of data, file has more"),
        (_header(0x0C, 2) + b"abcdefg", "promises 8 bytes of data, file has 7"),
    ],
)
def test_damaged_idx_header_is_one_error(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "damaged").write_bytes(content)
    with pytest.raises(EslError, match=message):
        read_idx(tmp_path / "damaged")


def test_damaged_gzip_is_one_error(tmp_path: Path) -> None:
    packed = gzip.compress(idx_bytes(np.arange(4000, dtype=np.uint8).reshape(40, 10, 10) % 200))
    damaged = {
        "plain.gz": idx_bytes(np.zeros((1, 2, 2))),  # not compressed
        "truncated.gz": packed[: len(packed) // 2],
        "crc.gz": packed[:-8] + bytes(8),
        "deflate.gz": packed[:10] + b"\xff" * 20 + packed[30:],  # zlib.error: invalid block type
    }
    for name, content in damaged.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(EslError, match=f"{name}: cannot read IDX file"):
            read_idx(tmp_path / name)
    (tmp_path / "folder.gz").mkdir()
    with pytest.raises(EslError, match="folder.gz: cannot read IDX file"):
        read_idx(tmp_path / "folder.gz")


def test_gzip_bomb_is_read_only_as_far_as_the_header_promises(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.gz"
    with gzip.open(bomb, "wb") as handle:  # 4-byte data promised, 64 MiB of zeros behind it
        handle.write(_header(0x08, 2, 2))
        for _ in range(64):
            handle.write(bytes(1 << 20))
    with pytest.raises(EslError, match="promises 4 bytes of data, file has more"):
        read_idx(bomb)
    huge = tmp_path / "huge.gz"
    huge.write_bytes(gzip.compress(_header(0x08, 60000, 65536, 2)))
    with pytest.raises(EslError, match="more than the limit"):
        read_idx(huge)


@pytest.mark.parametrize("dtype", ["i1", ">i2", ">i4", ">f4", ">f8"])
def test_images_of_other_types_load_when_every_value_is_a_pixel(
    tmp_path: Path, rng: np.random.Generator, dtype: str
) -> None:
    images, _ = make_mnist(tmp_path, rng, compress=False)
    pixels = images % 128 if dtype == "i1" else images
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(pixels, dtype))
    loaded = load_mnist(tmp_path).train.images
    assert loaded.dtype == np.uint8 and np.array_equal(loaded, pixels.reshape(7, -1))


@pytest.mark.parametrize(
    ("dtype", "value", "shown"),
    [
        (">f4", np.nan, "nan"),
        (">f8", np.inf, "inf"),
        (">f4", 0.5, "0.5"),
        (">f8", 255.5, "255.5"),
        ("i1", -1, "-1"),
        (">i2", 256, "256"),
        (">i4", -(2**31), str(-(2**31))),
    ],
)
def test_images_that_are_not_pixels_are_refused(
    tmp_path: Path, rng: np.random.Generator, dtype: str, value: float, shown: str
) -> None:
    images, _ = make_mnist(tmp_path, rng, compress=False)
    pixels = (images % 100).astype(np.float64)
    pixels[3, 4, 5] = value
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(pixels, dtype))
    with pytest.raises(
        EslError, match=rf"t10k-images-idx3-ubyte: image values .* found {shown} at index \(3, 4, 5\)"
    ):
        load_mnist(tmp_path)


@pytest.mark.parametrize(
    ("labels", "dtype", "message"),
    [
        (np.array([0, 1, 2, 3, 4, 5, 10]), "u1", "label 10 at index 6 is outside 0..9"),
        (np.array([0, -1, 2, 3, 4, 5, 6]), "i1", "label -1 at index 1 is outside 0..9"),
        (np.array([0, 1, 2, 3, 4, 5, 6]), ">f4", "labels must be integers, got >f4"),
        (np.zeros((7, 1)), "u1", r"labels must be one-dimensional \[N\], got sizes \(7, 1\)"),
        (np.zeros(6), "u1", "train has 7 images but 6 labels"),
    ],
)
def test_bad_labels_are_refused(
    tmp_path: Path, rng: np.random.Generator, labels: np.ndarray, dtype: str, message: str
) -> None:
    make_mnist(tmp_path, rng, compress=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(labels, dtype))
    with pytest.raises(EslError, match=message):
        load_mnist(tmp_path)


def test_images_must_be_three_dimensional(tmp_path: Path, rng: np.random.Generator) -> None:
    make_mnist(tmp_path, rng, compress=False)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((7, 784))))
    with pytest.raises(EslError, match=r"images must be \[N, rows, columns\], got sizes \(7, 784\)"):
        load_mnist(tmp_path)


def test_check_labels_names_the_first_label_outside_the_classes() -> None:
    check_labels(np.array([0, 3, 2], dtype=np.uint8), 4, "here")
    with pytest.raises(EslError, match="^there: label 4 at index 2 is outside 0..3$"):
        check_labels(np.array([0, 3, 4, 7]), 4, "there")
    with pytest.raises(EslError, match="labels must be integers, got bool"):
        check_labels(np.array([True, False]), 4, "there")
