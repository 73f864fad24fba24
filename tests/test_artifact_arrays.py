"""esl_hw.artifact_arrays: a damaged ``arrays.npz`` (members, headers, compression, sizes, dtypes) is
refused in one line, and any integer dtype in range loads the same arrays."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_artifact_io import _edit_arrays

from esl_hw.artifact import ARRAY_NAMES, Model
from esl_hw.artifact_io import load_model
from esl_hw.errors import EslError


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path / "arrays.npz") as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _write_members(path: Path, members: dict[str, bytes] | list[tuple[str, bytes]]) -> None:
    items = members.items() if isinstance(members, dict) else members
    with zipfile.ZipFile(path / "arrays.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in items:
            archive.writestr(name, data)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _npy_header_only(shape: tuple[int, ...], descr: str = "<i8") -> bytes:
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}".encode()
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + bytes(64)


def _replace_member(name: str, data: bytes):
    def edit(path: Path) -> None:
        members = _members(path)
        members[f"{name}.npy"] = data
        _write_members(path, members)

    return edit


def _replace_array(name: str, convert):
    def edit(path: Path) -> None:
        with np.load(path / "arrays.npz") as archive:
            arrays = {key: archive[key] for key in archive.files}
        arrays[name] = convert(arrays[name])
        np.savez(path / "arrays.npz", **arrays)

    return edit


def _write_bytes(change):
    def edit(path: Path) -> None:
        (path / "arrays.npz").write_bytes(change((path / "arrays.npz").read_bytes()))

    return edit


def _rewritten(path: Path, compression: int) -> tuple[bytearray, zipfile.ZipInfo]:
    """Write the members of ``arrays.npz`` again with ``compression``; return the archive's bytes
    and its first member's entry."""
    members = _members(path)
    with zipfile.ZipFile(path / "arrays.npz", "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with zipfile.ZipFile(path / "arrays.npz") as archive:
        info = archive.infolist()[0]
    return bytearray((path / "arrays.npz").read_bytes()), info


def _flip_data_byte(path: Path) -> None:
    """Store the members uncompressed, then flip the last data byte of the first one (a CRC error)."""
    data, info = _rewritten(path, zipfile.ZIP_STORED)
    name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    data[info.header_offset + 30 + name_length + extra_length + info.file_size - 1] ^= 0x01
    (path / "arrays.npz").write_bytes(bytes(data))


def _corrupt_deflate(path: Path) -> None:
    data, info = _rewritten(path, zipfile.ZIP_DEFLATED)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start : start + 8] = b"\xff" * 8
    (path / "arrays.npz").write_bytes(bytes(data))


def _declare_huge_size(data: bytes) -> bytes:
    """A zip bomb's header: the central directory says the first member inflates to 4 GiB."""
    entry = data.index(b"PK\x01\x02")
    return data[: entry + 24] + struct.pack("<I", 0xFFFFFFF0) + data[entry + 28 :]


def _plain_npy(path: Path) -> None:
    (path / "arrays.npz").write_bytes(_npy_bytes(np.arange(5)))


def _folder_instead(path: Path) -> None:
    (path / "arrays.npz").unlink()
    (path / "arrays.npz").mkdir()


def _duplicate_member(path: Path) -> None:
    members = list(_members(path).items())
    with pytest.warns(UserWarning, match="Duplicate name"):
        _write_members(path, [*members, members[0]])


DAMAGED_ARRAYS = {
    "truncated": (
        _write_bytes(lambda data: data[: len(data) // 2]),
        "arrays.npz: not a readable npz archive",
    ),
    "empty_file": (_write_bytes(lambda data: b""), "arrays.npz: not a readable npz archive"),
    "crc": (_flip_data_byte, "member row_ptr_0: not a readable .npy array .Bad CRC-32"),
    "corrupt_deflate": (_corrupt_deflate, "member row_ptr_0: not a readable .npy array .Error -3"),
    "plain_npy": (_plain_npy, "arrays.npz: not a readable npz archive .File is not a zip file"),
    "not_an_array": (_replace_member("col_0", b"hello, world"), "member col_0: not a readable .npy array"),
    "zip_bomb": (_write_bytes(_declare_huge_size), r"member row_ptr_0: declares 4294967280 bytes, too many"),
    "huge_npy_shape": (_replace_member("col_0", _npy_header_only((10**12,))), "10+ entries, but the limit"),
    "negative_npy_shape": (_replace_member("col_0", _npy_header_only((-1,))), "must be a 1-D array"),
    "npy_short": (_replace_member("col_0", _npy_header_only((100,))[:-60]), "truncated, 4 of 800 data bytes"),
    "trailing_bytes": (
        _replace_member("col_0", _npy_header_only((2,))),
        "bytes follow the array's 2 entries",
    ),
    "float_weights": (
        _replace_array("weight_0", lambda w: w + 0.7),
        "weight_0: must be an integer .*float64",
    ),
    "bool": (
        _replace_array("weight_0", lambda w: w != 0),
        "weight_0: must be an integer array, got dtype bool",
    ),
    "complex": (_replace_array("weight_0", lambda w: w.astype(complex)), "got dtype complex128"),
    "object": (
        _replace_member("col_0", _npy_bytes(np.array([1, "x"], dtype=object))),
        "col_0: must be an integer array, got dtype object",
    ),
    "structured": (
        _replace_array("col_0", lambda c: c.astype([("a", "<i8")])),
        "col_0: must be an integer array, got dtype",
    ),
    "uint64_wraps": (
        _replace_array("col_0", lambda c: np.full(c.shape, 2**64 - 1, dtype=np.uint64)),
        "col_0: value 18446744073709551615 does not fit a signed 64-bit integer",
    ),
    "two_dimensional": (
        _replace_array("col_0", lambda c: c.reshape(1, -1)),
        r"must be a 1-D array, got shape \(1,",
    ),
    "row_ptr_count": (
        _replace_array("row_ptr_0", lambda r: r[:-1]),
        "row_ptr_0: 12 entries, but n_in=12 needs 13",
    ),
    "weight_count": (
        _replace_array("weight_0", lambda w: np.append(w, 1)),
        "weight_0: .* entries, but col has",
    ),
    "unexpected_member": (
        _replace_member("extra", _npy_bytes(np.arange(2))),
        "unexpected member 'extra.npy'",
    ),
    "duplicate_member": (_duplicate_member, "appears twice"),
    "folder": (_folder_instead, "arrays.npz: is not a regular file"),
}


@pytest.mark.parametrize("name", sorted(DAMAGED_ARRAYS))
def test_damaged_arrays_are_refused_in_one_line(saved: tuple[Model, Path], name: str) -> None:
    _, path = saved
    edit, message = DAMAGED_ARRAYS[name]
    edit(path)
    with pytest.raises(EslError, match=message) as error:
        load_model(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("dtype", ["<i2", ">i4", "<u4", "<u8", "i1"])
def test_any_integer_dtype_in_range_loads_identically(saved: tuple[Model, Path], dtype: str) -> None:
    model, path = saved
    _edit_arrays(path, lambda arrays: arrays.update(col_0=arrays["col_0"].astype(dtype)))
    assert np.array_equal(load_model(path).layers[0].col, model.layers[0].col)


def test_an_unreadable_archive_is_one_line(
    saved: tuple[Model, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, path = saved

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(zipfile, "ZipFile", denied)
    with pytest.raises(EslError, match="arrays.npz: not a readable npz archive .Permission denied."):
        load_model(path)


def test_random_damage_to_the_archive_is_refused_or_harmless(saved: tuple[Model, Path]) -> None:
    model, path = saved
    original = (path / "arrays.npz").read_bytes()
    rng = np.random.default_rng(7)
    refused = 0
    for _ in range(150):
        data = bytearray(original)
        position = int(rng.integers(len(data)))
        if rng.random() < 0.3:
            data = data[:position]
        else:
            data[position] ^= int(rng.integers(1, 256))
        (path / "arrays.npz").write_bytes(bytes(data))
        try:
            loaded = load_model(path)
        except EslError as error:
            assert "\n" not in str(error)
            refused += 1
            continue
        for a, b in zip(model.layers, loaded.layers, strict=True):
            assert all(np.array_equal(getattr(a, name), getattr(b, name)) for name in ARRAY_NAMES)
    assert refused > 100
