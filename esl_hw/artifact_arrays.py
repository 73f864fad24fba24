"""Reading ``arrays.npz`` of a model artifact without trusting it.

The archive is read member by member, never through pickles (:func:`read_npy_member`, which
:mod:`esl_hw.datasets` uses for NPZ datasets too): each member must be a 1-D integer
``.npy`` array (``row_ptr_<l>``, ``col_<l>``, ``weight_<l>``, and ``bias_<l>`` exactly for the layers
the header says have a bias; nothing else) whose size, taken from
the zip header and the ``.npy`` header, is checked against the layer and :mod:`esl_hw.limits`
before any data is read; the whole member is then read, so its CRC is checked. Every problem is
one :class:`EslError` line naming the file and the member.
"""

from __future__ import annotations

import math
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

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


def open_npz(path: Path) -> zipfile.ZipFile:
    """``path`` opened as a zip archive (an ``.npz``); :class:`EslError` when it is not a readable one."""
    try:
        return zipfile.ZipFile(path)
    except _READ_ERRORS as error:
        raise EslError(f"{path}: not a readable npz archive ({reason(error)})") from None


def member_infos(archive: zipfile.ZipFile, path: Path) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by array name (the file name without ``.npy``); a name twice is refused."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        name = info.filename.removesuffix(".npy")
        if name in members:
            raise EslError(f"{path}: member {shown(info.filename)} appears twice")
        members[name] = info
    return members


def _members(archive: zipfile.ZipFile, path: Path, biased: list[bool]) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by array name; exactly ``row_ptr_<l>``, ``col_<l>``, ``weight_<l>`` per
    layer and ``bias_<l>`` for the layers ``l`` with ``biased[l]``."""
    expected = [f"{name}_{index}" for index in range(len(biased)) for name in ARRAY_NAMES]
    expected += [f"bias_{index}" for index, has_bias in enumerate(biased) if has_bias]
    members = member_infos(archive, path)
    for name in expected:
        if name not in members:
            raise EslError(f"{path}: missing array {name}")
    wanted = set(expected)
    for name, info in members.items():
        if name not in wanted:
            raise EslError(f"{path}: unexpected member {shown(info.filename)}")
    return members


#: ``check(shape, dtype)`` of :func:`read_npy_member`: raises :class:`EslError` for a header the
#: caller does not accept.
HeaderCheck = Callable[[tuple[Any, ...], np.dtype], None]


def _npy_header(version: tuple[int, int], stream: IO[bytes], where: str) -> tuple[Any, bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` of the ``.npy`` header (format 1.0 or 2.0)."""
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(stream)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(stream)
    raise EslError(f"{where}: .npy format version {version[0]}.{version[1]} is not supported")


def _plain_shape(shape: Any, dtype: np.dtype, where: str) -> tuple[int, ...]:
    """``shape`` once it is a tuple of sizes ``>= 0`` and ``dtype`` a plain number type (no Python
    objects, which only pickle could rebuild, no fields)."""
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in "biuf":
        raise EslError(f"{where}: must be an array of plain numbers, got dtype {dtype}")
    if not isinstance(shape, tuple) or not all(is_int(size) and size >= 0 for size in shape):
        raise EslError(f"{where}: sizes {shown(shape)} are not all whole numbers >= 0")
    return shape


def read_npy_member(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    where: str,
    max_bytes: int,
    too_many: str,
    check: HeaderCheck,
) -> np.ndarray:
    """The array of one ``.npy`` member, read without pickle and without trusting its headers.

    The zip header's size must leave room for at most ``max_bytes`` of data (else ``where:
    declares N bytes, {too_many}``); ``check(shape, dtype)`` sees the ``.npy`` header before any
    data is read; only plain number types (no objects, no fields) with at most ``max_bytes`` of data
    are read, and the whole member is read, so its CRC is checked. The array is read-only, in the
    header's shape and dtype. Every problem is one :class:`EslError` line starting with ``where``.
    """
    if info.flag_bits & 0x1:
        raise EslError(f"{where}: is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise EslError(f"{where}: compression method {info.compress_type} is not supported")
    if info.file_size > _NPY_HEADER_BYTES + max_bytes:
        raise EslError(f"{where}: declares {info.file_size} bytes, {too_many}")
    try:
        with archive.open(info) as stream:
            shape, fortran_order, dtype = _npy_header(np.lib.format.read_magic(stream), stream, where)
            check(shape, dtype)
            shape = _plain_shape(shape, dtype, where)
            count = math.prod(shape)
            size = count * dtype.itemsize
            if size > max_bytes:
                raise EslError(f"{where}: sizes {shape} need {size} bytes, {too_many}")
            data = stream.read(size)
            if len(data) != size:
                raise EslError(f"{where}: truncated, {len(data)} of {size} data bytes")
            if stream.read(1):
                raise EslError(f"{where}: bytes follow the array's {count} entries")
    except _READ_ERRORS as error:
        raise EslError(f"{where}: not a readable .npy array ({reason(error)})") from None
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")


def _read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, most: int, why: str
) -> np.ndarray:
    """The int64 array of one 1-D integer member holding at most ``most`` entries (``why`` says why
    not more); read by :func:`read_npy_member`."""

    def check(shape: tuple[Any, ...], dtype: np.dtype) -> None:
        if dtype.kind not in "iu":
            raise EslError(f"{where}: must be an integer array, got dtype {dtype}")
        if len(shape) != 1 or not is_int(shape[0]) or shape[0] < 0:
            raise EslError(f"{where}: must be a 1-D array, got shape {shown(shape)}")
        if shape[0] > most:
            raise EslError(f"{where}: {shape[0]} entries, but {why}")

    array = read_npy_member(archive, info, where, 8 * most, f"too many for {most} entries ({why})", check)
    if array.dtype.kind == "u" and array.dtype.itemsize == 8 and len(array) and int(array.max()) > _INT64_MAX:
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


def _bias(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, n_out: int) -> np.ndarray:
    """The ``bias_<l>`` member: exactly ``n_out`` int64 values."""
    bias = _read_member(archive, info, where, n_out, f"the layer has {n_out} neurons")
    if len(bias) != n_out:
        raise EslError(f"{where}: {len(bias)} entries, but the layer has {n_out} neurons")
    return bias


LayerArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]


def read_layer_arrays(
    path: Path, n_inputs: list[int], bias_sizes: list[int | None] | None = None
) -> list[LayerArrays]:
    """``(row_ptr, col, weight, bias)`` (int64; ``bias`` ``None`` for a layer without one) per layer
    of ``arrays.npz`` at ``path``, whose layers have ``n_inputs`` inputs each and a bias of
    ``bias_sizes[l]`` values (``None``: no bias; all ``None`` when not given); sizes checked
    against those and :mod:`esl_hw.limits`."""
    sizes = bias_sizes if bias_sizes is not None else [None] * len(n_inputs)
    archive = open_npz(path)
    result: list[LayerArrays] = []
    with archive:
        members = _members(archive, path, [size is not None for size in sizes])
        for index, (n_in, n_out) in enumerate(zip(n_inputs, sizes, strict=True)):
            used = sum(len(arrays[1]) for arrays in result)
            room = min(limits.MAX_SYNAPSES_PER_LAYER, limits.MAX_SYNAPSES - used)
            row_ptr, col, weight = _layer_arrays(archive, members, path, index, n_in, room)
            bias = None
            if n_out is not None:
                bias = _bias(archive, members[f"bias_{index}"], f"{path} member bias_{index}", n_out)
            result.append((row_ptr, col, weight, bias))
    return result
