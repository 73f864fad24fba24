"""Reading ``arrays.npz`` of a model artifact without trusting it.

The archive is read member by member, never through pickles: each member must be a 1-D integer
``.npy`` array (``row_ptr_<l>``, ``col_<l>``, ``weight_<l>``, nothing else) whose size, taken from
the zip header and the ``.npy`` header, is checked against the layer and :mod:`esl_hw.limits`
before any data is read; the whole member is then read, so its CRC is checked. Every problem is
one :class:`EslError` line naming the file and the member.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path
from typing import IO

import numpy as np

from esl_hw import limits
from esl_hw.errors import EslError
from esl_hw.limits import is_int, shown
from esl_hw.safe_yaml import reason

ARRAY_NAMES = ("row_ptr", "col", "weight")

#: What reading a damaged zip member or ``.npy`` header can raise (zipfile, zlib, numpy's header
#: parser); each becomes one :class:`EslError` line naming the member.
_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    struct.error,
    OSError,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    SyntaxError,
    RecursionError,
    RuntimeError,
    NotImplementedError,
    OverflowError,
)
#: Bytes a member may hold beyond its data: the ``.npy`` header (numpy reads at most 10000).
_NPY_HEADER_BYTES = 10_000 + 16
_INT64_MAX = np.iinfo(np.int64).max


def _members(archive: zipfile.ZipFile, path: Path, n_layers: int) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by array name; exactly ``row_ptr_<l>``, ``col_<l>``, ``weight_<l>``."""
    expected = [f"{name}_{index}" for index in range(n_layers) for name in ARRAY_NAMES]
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        name = info.filename.removesuffix(".npy")
        if name in members:
            raise EslError(f"{path}: member {shown(info.filename)} appears twice")
        members[name] = info
    for name in expected:
        if name not in members:
            raise EslError(f"{path}: missing array {name}")
    wanted = set(expected)
    for name, info in members.items():
        if name not in wanted:
            raise EslError(f"{path}: unexpected member {shown(info.filename)}")
    return members


def _npy_count(version: tuple[int, int], stream: IO[bytes], where: str) -> tuple[int, np.dtype]:
    """Entries and dtype from the ``.npy`` header; refuse anything but a 1-D integer array."""
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise EslError(f"{where}: .npy format version {version[0]}.{version[1]} is not supported")
    if dtype.kind not in "iu":
        raise EslError(f"{where}: must be an integer array, got dtype {dtype}")
    if len(shape) != 1 or not is_int(shape[0]) or shape[0] < 0:
        raise EslError(f"{where}: must be a 1-D array, got shape {shown(shape)}")
    return shape[0], dtype


def _read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, most: int, why: str
) -> np.ndarray:
    """The int64 array of one member holding at most ``most`` entries (``why`` says why not more).

    Sizes come from the zip header (uncompressed size) and the ``.npy`` header and are checked
    before the data is read; the whole member is read, so its CRC is checked too.
    """
    if info.flag_bits & 0x1:
        raise EslError(f"{where}: is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise EslError(f"{where}: compression method {info.compress_type} is not supported")
    if info.file_size > _NPY_HEADER_BYTES + 8 * most:
        raise EslError(f"{where}: declares {info.file_size} bytes, too many for {most} entries ({why})")
    try:
        with archive.open(info) as stream:
            count, dtype = _npy_count(np.lib.format.read_magic(stream), stream, where)
            if count > most:
                raise EslError(f"{where}: {count} entries, but {why}")
            data = stream.read(count * dtype.itemsize)
            if len(data) != count * dtype.itemsize:
                raise EslError(f"{where}: truncated, {len(data)} of {count * dtype.itemsize} data bytes")
            if stream.read(1):
                raise EslError(f"{where}: bytes follow the array's {count} entries")
    except _READ_ERRORS as error:
        raise EslError(f"{where}: not a readable .npy array ({reason(error)})") from None
    array = np.frombuffer(data, dtype=dtype)
    if dtype.kind == "u" and dtype.itemsize == 8 and count and int(array.max()) > _INT64_MAX:
        raise EslError(f"{where}: value {int(array.max())} does not fit a signed 64-bit integer")
    return array.astype(np.int64)


def _layer_arrays(
    archive: zipfile.ZipFile,
    members: dict[str, zipfile.ZipInfo],
    path: Path,
    index: int,
    n_in: int,
    room: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(row_ptr, col, weight)`` of layer ``index``; ``room``: synapses the limits still allow."""

    def where(name: str) -> str:
        return f"{path} member {name}_{index}"

    needs = f"n_in={n_in} needs {n_in + 1}"
    row_ptr = _read_member(archive, members[f"row_ptr_{index}"], where("row_ptr"), n_in + 1, needs)
    if len(row_ptr) != n_in + 1:
        raise EslError(f"{where('row_ptr')}: {len(row_ptr)} entries, but {needs}")
    col = _read_member(archive, members[f"col_{index}"], where("col"), room, f"the limit is {room} synapses")
    weight = _read_member(
        archive, members[f"weight_{index}"], where("weight"), len(col), f"col has {len(col)}"
    )
    return row_ptr, col, weight


def read_layer_arrays(path: Path, n_inputs: list[int]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(row_ptr, col, weight)`` (int64) per layer of ``arrays.npz`` at ``path``, whose layers
    have ``n_inputs`` inputs each; sizes checked against those and :mod:`esl_hw.limits`."""
    try:
        archive = zipfile.ZipFile(path)
    except _READ_ERRORS as error:
        raise EslError(f"{path}: not a readable npz archive ({reason(error)})") from None
    result: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    with archive:
        members = _members(archive, path, len(n_inputs))
        for index, n_in in enumerate(n_inputs):
            used = sum(len(col) for _, col, _ in result)
            room = min(limits.MAX_SYNAPSES_PER_LAYER, limits.MAX_SYNAPSES - used)
            result.append(_layer_arrays(archive, members, path, index, n_in, room))
    return result
