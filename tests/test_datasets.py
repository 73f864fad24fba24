"""IDX reading, the folder loader's errors (every damaged file one EslError), and the embedded subset."""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from data_support import tiny_splits, write_idx_dataset, write_npz_dataset

from esl_hw.datasets import (
    IDX_MAX_BYTES,
    check_fits,
    check_labels,
    load_dataset,
    load_embedded,
    load_mnist,
    read_idx,
)
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
        (np.array([0, -1, 2, 3, 4, 5, 6]), "i1", "label -1 at index 1 is negative"),
        (np.array([0, 1, 2, 3, 4, 5, 2**20]), ">i4", "label 1048576 at index 6 is outside 0..1048575"),
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


def test_images_need_a_size_after_n_and_the_same_shape_in_train_and_test(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    make_mnist(tmp_path, rng, compress=False)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros(7)))
    with pytest.raises(
        EslError, match=r"images must be \[N, ...\] with at least one size after N, got \(7,\)"
    ):
        load_dataset(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((7, 784))))  # flat: 784 pixels
    with pytest.raises(EslError, match=r"train images are \(784,\), test images \(28, 28\)"):
        load_dataset(tmp_path)


def test_check_labels_names_the_first_label_outside_the_classes() -> None:
    check_labels(np.array([0, 3, 2], dtype=np.uint8), 4, "here")
    with pytest.raises(EslError, match="^there: label 4 at index 2 is outside 0..3$"):
        check_labels(np.array([0, 3, 4, 7]), 4, "there")
    with pytest.raises(EslError, match="labels must be integers, got bool"):
        check_labels(np.array([True, False]), 4, "there")


# ---------------------------------------------------------------- datasets of any size and class count

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist


@pytest.mark.parametrize(
    ("compress", "prefix", "test_word"),
    [(False, "", "t10k"), (True, "", "t10k"), (True, "emnist-letters-", "test"), (False, "kmnist_", "test")],
)
def test_idx_images_of_any_shape_and_class_count(
    tmp_path: Path, rng: np.random.Generator, compress: bool, prefix: str, test_word: str
) -> None:
    splits = tiny_splits(rng, shape=(8, 8), classes=3, train=30, test=12)
    write_idx_dataset(tmp_path, splits, compress, prefix, test_word)
    data = load_dataset(tmp_path)
    assert (data.n_inputs, data.classes, data.image_shape) == (64, 3, (8, 8))
    assert data.train.images.shape == (30, 64) and data.train.images.dtype == np.uint8
    assert np.array_equal(data.test.images, splits["test"][0].reshape(12, 64))
    assert data.test.labels.dtype == np.int64 and np.array_equal(data.test.labels, splits["test"][1])
    assert load_mnist(tmp_path).n_inputs == 64  # the former name reads the same


def test_idx_images_of_four_dimensions_are_flattened(tmp_path: Path, rng: np.random.Generator) -> None:
    write_idx_dataset(tmp_path, tiny_splits(rng, shape=(3, 5, 2), classes=4, train=9, test=5))
    data = load_dataset(tmp_path)
    assert (data.n_inputs, data.image_shape) == (30, (3, 5, 2))
    assert sorted(path.name for path in tmp_path.iterdir())[0] == "t10k-images-idx4-ubyte"


def test_the_class_count_is_the_largest_label_of_train_and_test_plus_one(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    splits = tiny_splits(rng, classes=2, train=10, test=10)
    splits["test"][1][4] = 6  # classes 3..5 never occur: they still count
    assert load_dataset(write_npz_dataset(tmp_path / "npz", splits)).classes == 7
    assert load_dataset(write_idx_dataset(tmp_path / "idx", splits)).classes == 7
    splits["train"][1][:] = 0
    splits["test"][1][:] = 0
    with pytest.raises(EslError, match="every label is 0; a classifier needs at least 2 classes"):
        load_dataset(write_npz_dataset(tmp_path / "one", splits))


def test_two_idx_files_for_one_role_are_refused(tmp_path: Path, rng: np.random.Generator) -> None:
    splits = tiny_splits(rng, train=5, test=5)
    write_idx_dataset(tmp_path, splits, prefix="a-", test_word="test")
    write_idx_dataset(tmp_path, splits, prefix="b-", test_word="test")
    with pytest.raises(EslError, match="has 2 train images files .a-train-images-idx3-ubyte, b-train-images"):
        load_dataset(tmp_path)


@pytest.mark.parametrize("compress", [False, True])
def test_npz_dataset_loads(tmp_path: Path, rng: np.random.Generator, compress: bool) -> None:
    splits = tiny_splits(rng, shape=(4, 4, 4), classes=5, train=20, test=8)
    data = load_dataset(write_npz_dataset(tmp_path, splits, compress))
    assert (data.n_inputs, data.classes, data.image_shape, data.source) == (64, 5, (4, 4, 4), str(tmp_path))
    assert np.array_equal(data.train.images, splits["train"][0].reshape(20, 64))
    assert np.array_equal(data.train.labels, splits["train"][1]) and data.train.labels.dtype == np.int64


class _RunsCode:
    """Unpickling this would create the file ``marker``: proof that no code ran if it is absent."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _with_member(content: bytes, name: str, member: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(content)) as source, zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            target.writestr(info, member if info.filename == name else source.read(info))
    return buffer.getvalue()


X8, Y8 = np.zeros((4, 3, 3), np.uint8), np.array([0, 1, 2, 1])
BAD_NPZ = {
    "pickled_x": (lambda m: _npz_bytes(x=np.array([_RunsCode(m)] * 4, dtype=object), y=Y8),
                  r"train.npz array x: images must be uint8 \(values 0..255\), got dtype object"),
    "pickled_y": (lambda m: _npz_bytes(x=X8, y=np.array([_RunsCode(m)] * 4, dtype=object)),
                  "train.npz array y: labels must be integers, got dtype object"),
    "float_x": (lambda m: _npz_bytes(x=X8.astype(np.float32), y=Y8), "got dtype float32"),
    "int64_x": (lambda m: _npz_bytes(x=X8.astype(np.int64), y=Y8), "images must be uint8"),
    "float_y": (lambda m: _npz_bytes(x=X8, y=Y8.astype(np.float64)), "labels must be integers, got dtype"),
    "bool_y": (lambda m: _npz_bytes(x=X8, y=Y8 > 0), "labels must be integers, got dtype bool"),
    "lengths": (lambda m: _npz_bytes(x=X8, y=Y8[:3]), "train.npz: x has 4 images but y has 3 labels"),
    "flat_x": (lambda m: _npz_bytes(x=np.zeros(4, np.uint8), y=Y8), r"images must be \[N, ...\]"),
    "no_images": (lambda m: _npz_bytes(x=np.zeros((0, 3), np.uint8), y=Y8[:0]), "sizes >= 1"),
    "2d_y": (lambda m: _npz_bytes(x=X8, y=Y8[:, None]), r"labels must be one-dimensional \[N\]"),
    "negative_y": (lambda m: _npz_bytes(x=X8, y=-Y8), "label -1 at index 1 is negative"),
    "other_names": (lambda m: _npz_bytes(x_train=X8, y_train=Y8),
                    "must hold exactly the arrays x and y, holds 'x_train', 'y_train'"),
    "extra_array": (lambda m: _npz_bytes(x=X8, y=Y8, z=Y8), "holds 'x', 'y', 'z'"),
    "not_a_zip": (lambda m: b"just text", "train.npz: not a readable npz archive"),
    "truncated": (lambda m: _npz_bytes(x=X8, y=Y8)[:-40], "train.npz: not a readable npz archive"),
    "huge_header": (lambda m: _with_member(_npz_bytes(x=X8, y=Y8), "x.npy", _npy_header((4, 10**6, 10**6))),
                    r"array x: sizes \(4, 1000000, 1000000\) need 4000000000000 bytes, more than the limit"),
    "short_data": (lambda m: _with_member(_npz_bytes(x=X8, y=Y8), "x.npy", _npy_header((4, 3, 3))),
                   "array x: truncated, 0 of 36 data bytes"),
}  # fmt: skip


def _npy_header(shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    header = {"descr": "|u1", "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


@pytest.mark.parametrize("case", sorted(BAD_NPZ))
def test_a_bad_npz_dataset_is_one_error_naming_the_file(
    tmp_path: Path, rng: np.random.Generator, case: str
) -> None:
    write_npz_dataset(tmp_path, tiny_splits(rng, train=5, test=5))
    make, message = BAD_NPZ[case]
    marker = tmp_path.parent / f"{case}-code-ran"
    (tmp_path / "train.npz").write_bytes(make(marker))
    with pytest.raises(EslError, match=message) as caught:
        load_dataset(tmp_path)
    assert str(tmp_path / "train.npz") in str(caught.value) and "\n" not in str(caught.value)
    assert not marker.exists()


def test_an_npz_folder_needs_both_files(tmp_path: Path, rng: np.random.Generator) -> None:
    write_npz_dataset(tmp_path, tiny_splits(rng, train=5, test=5))
    (tmp_path / "test.npz").unlink()
    with pytest.raises(EslError, match=f"dataset folder {tmp_path} has train.npz but lacks test.npz"):
        load_dataset(tmp_path)
    (tmp_path / "test.npz").mkdir()
    with pytest.raises(EslError, match="has train.npz but lacks test.npz"):
        load_dataset(tmp_path)
    with pytest.raises(
        EslError, match=r"lacks train-images-idx3-ubyte\[.gz\] \(IDX files expected, or train.npz"
    ):
        load_dataset(tmp_path / "test.npz")  # an empty folder


def test_check_fits_names_both_sizes(tmp_path: Path, rng: np.random.Generator) -> None:
    data = load_dataset(write_npz_dataset(tmp_path, tiny_splits(rng, train=5, test=5)))
    check_fits(data, 64, 3)
    with pytest.raises(EslError, match=r"images have 64 pixels \(8x8\), the model has 784 inputs"):
        check_fits(data, 784)
    with pytest.raises(EslError, match="test labels: label 2 at index .* is outside 0..1"):
        check_fits(data, 64, 2)


@pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debians_package() -> None:
    data = load_dataset(FASHION_MNIST)
    assert (len(data.train), len(data.test), data.n_inputs, data.classes) == (60000, 10000, 784, 10)
    assert np.bincount(data.test.labels).tolist() == [1000] * 10
