"""Loading and saving the model artifact folder (``model.yaml`` and ``arrays.npz``).

:mod:`esl_hw.artifact` holds the model in memory; this module reads it from and writes it to a
folder. A version-1 artifact still loads (no bias, reset to zero, ``lif`` only) and is written back
as version 2.

Loading trusts nothing in the folder: ``model.yaml`` is read by :mod:`esl_hw.safe_yaml`, every
header value is type-checked before use (an ``int`` is never a ``bool``, a ``float`` or a string),
and ``arrays.npz`` is read member by member without pickles: each member must be a 1-D integer
``.npy`` array whose size, taken from the zip and ``.npy`` headers, is checked against
:mod:`esl_hw.limits` before anything is read. Every problem is one :class:`EslError` line naming
the file (and the member or layer).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from esl_hw import limits
from esl_hw.artifact import (
    ENCODER_KINDS,
    FORMAT_NAME,
    FORMAT_VERSION,
    HIDDEN_KINDS,
    RESET_MODES,
    Encoder,
    Layer,
    Model,
    _fail,
    validate_metadata,
)
from esl_hw.artifact_arrays import read_layer_arrays
from esl_hw.errors import EslError
from esl_hw.limits import check_range, is_int, shown
from esl_hw.safe_yaml import dump_yaml, load_yaml, reason

#: The versions :func:`load_model` reads (version 1: no ``bias``, ``reset``, ``syn_shift`` keys).
READ_VERSIONS = (1, 2)
MODEL_FILE = "model.yaml"
ARRAYS_FILE = "arrays.npz"


# ---------------------------------------------------------------- loading: model.yaml

_TOP_KEYS = ("format", "format_version", "timesteps", "encoder", "layers", "metadata")
#: The keys of a ``layers`` entry by format version and kind.
_LAYER_KEYS = {
    1: {
        "lif": ("kind", "n_in", "n_out", "w_bits", "v_bits", "threshold", "leak_shift"),
        "output": ("kind", "n_in", "n_out", "w_bits"),
    },
    2: {
        "lif": ("kind", "n_in", "n_out", "w_bits", "bias", "v_bits", "threshold", "leak_shift", "reset"),
        "cubalif": (
            "kind",
            "n_in",
            "n_out",
            "w_bits",
            "bias",
            "v_bits",
            "threshold",
            "leak_shift",
            "reset",
            "syn_shift",
        ),
        "output": ("kind", "n_in", "n_out", "w_bits", "bias"),
    },
}
_ENCODER_KEYS = ("kind", "phase0")


def _int(entry: dict[str, Any], key: str, where: str, optional: bool = False) -> int | None:
    if key not in entry:
        if optional:
            return None
        raise _fail(where, f"missing key {key!r}")
    value = entry[key]
    if value is None and optional:
        return None
    if not is_int(value):
        raise _fail(where, f"{key} must be an integer, got {shown(value)}")
    return value


def _check_keys(entry: dict[Any, Any], known: tuple[str, ...], where: str) -> None:
    for key in entry:
        if key not in known:
            raise _fail(where, f"unknown key {shown(key)} (known: {', '.join(known)})")


def _read_header(path: Path) -> dict[str, Any]:
    header = load_yaml(path, "model")
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise EslError(f"{path}: not an {FORMAT_NAME} file")
    version = header.get("format_version")
    known = " or ".join(str(number) for number in READ_VERSIONS)
    if not is_int(version):
        raise EslError(f"{path}: format_version must be the integer {known}, got {shown(version)}")
    if version not in READ_VERSIONS:
        raise EslError(f"{path}: format_version {version} is not supported (this reads {known})")
    _check_keys(header, _TOP_KEYS, str(path))
    return header


def _layer_spec(entry: Any, last: bool, where: str, version: int = FORMAT_VERSION) -> dict[str, Any]:
    """The fields of one ``layers`` entry, type-checked; sizes checked against the limits."""
    if not isinstance(entry, dict):
        raise _fail(where, f"must be a mapping, got {shown(entry)}")
    kind = entry.get("kind")
    allowed = ("output",) if last else tuple(kind for kind in HIDDEN_KINDS if kind in _LAYER_KEYS[version])
    if not isinstance(kind, str) or kind not in allowed:
        raise _fail(where, f"kind is {shown(kind)}, expected {' or '.join(map(repr, allowed))}")
    _check_keys(entry, _LAYER_KEYS[version][kind], where)
    spec: dict[str, Any] = {"kind": kind}
    for key, limit in (("n_in", limits.MAX_INPUTS_PER_LAYER), ("n_out", limits.MAX_NEURONS_PER_LAYER)):
        value = _int(entry, key, where)
        if not 1 <= value <= limit:
            raise _fail(where, f"{key}={value} outside 1..{limit}")
        spec[key] = value
    spec["w_bits"] = _int(entry, "w_bits", where)
    spec["bias"] = _bool(entry, "bias", where) if version >= 2 else False
    if kind != "output":
        spec["v_bits"] = _int(entry, "v_bits", where)
        spec["threshold"] = _int(entry, "threshold", where)
        spec["leak_shift"] = _int(entry, "leak_shift", where, optional=True)
        spec["reset"] = _choice(entry, "reset", RESET_MODES, where) if version >= 2 else "zero"
    if kind == "cubalif":
        spec["syn_shift"] = _int(entry, "syn_shift", where, optional=True)
    return spec


def _bool(entry: dict[str, Any], key: str, where: str) -> bool:
    if key not in entry:
        raise _fail(where, f"missing key {key!r}")
    if not isinstance(entry[key], bool):
        raise _fail(where, f"{key} must be true or false, got {shown(entry[key])}")
    return entry[key]


def _choice(entry: dict[str, Any], key: str, choices: tuple[str, ...], where: str) -> str:
    if key not in entry:
        raise _fail(where, f"missing key {key!r}")
    value = entry[key]
    if not isinstance(value, str) or value not in choices:
        raise _fail(where, f"{key} {shown(value)} unknown (known: {', '.join(choices)})")
    return value


def _layer_specs(header: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    entries = header.get("layers")
    if not isinstance(entries, list) or not entries:
        raise EslError(f"{path}: 'layers' must be a non-empty list")
    if len(entries) > limits.MAX_LAYERS:
        raise EslError(f"{path}: {len(entries)} layers exceed the limit {limits.MAX_LAYERS}")
    specs: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        where = f"{path} layer {index}"
        spec = _layer_spec(entry, index == len(entries) - 1, where, header["format_version"])
        if specs and spec["n_in"] != specs[-1]["n_out"]:
            raise _fail(
                where, f"n_in={spec['n_in']} does not chain with layer {index - 1} n_out={specs[-1]['n_out']}"
            )
        specs.append(spec)
    return specs


def _encoder(header: dict[str, Any], path: Path) -> Encoder:
    entry = header.get("encoder")
    if entry is None:
        return Encoder()
    where = f"{path} encoder"
    if not isinstance(entry, dict):
        raise _fail(where, f"must be a mapping, got {shown(entry)}")
    _check_keys(entry, _ENCODER_KEYS, where)
    kind = entry.get("kind", "rate")
    if not isinstance(kind, str) or kind not in ENCODER_KINDS:
        raise _fail(where, f"kind {shown(kind)} unknown (known: {', '.join(ENCODER_KINDS)})")
    phase0 = check_range(entry.get("phase0", 128), *limits.PHASE0, f"{where}: phase0")
    return Encoder(kind=kind, phase0=phase0)


def _metadata(header: dict[str, Any], path: Path) -> dict[str, Any]:
    metadata = header.get("metadata")
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise EslError(f"{path}: metadata must be a mapping, got {shown(metadata)}")
    return metadata


# ---------------------------------------------------------------- loading: arrays.npz


def _check_file(path: Path, folder: Path) -> None:
    """Refuse a missing, unreadable or non-regular ``path`` (a FIFO would block the read)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise EslError(f"model artifact {folder} lacks {path.name}") from None
    except (OSError, ValueError) as error:
        raise EslError(f"{path}: cannot read ({reason(error)})") from None
    if not stat.S_ISREG(mode):
        raise EslError(f"{path}: is not a regular file")


def load_model(path: str | os.PathLike[str]) -> Model:
    """Load and validate the artifact folder ``path``; raise :class:`EslError` on any problem."""
    folder = Path(path)
    header_path = folder / MODEL_FILE
    arrays_path = folder / ARRAYS_FILE
    if not folder.is_dir():
        raise EslError(f"model artifact {folder} is not a folder")
    for required in (header_path, arrays_path):
        _check_file(required, folder)
    header = _read_header(header_path)
    specs = _layer_specs(header, header_path)
    encoder = _encoder(header, header_path)
    metadata = _metadata(header, header_path)
    timesteps = _int(header, "timesteps", str(header_path))
    arrays = read_layer_arrays(
        arrays_path,
        [spec["n_in"] for spec in specs],
        [spec["n_out"] if spec["bias"] else None for spec in specs],
    )
    layers = tuple(
        Layer(
            kind=spec["kind"],
            n_out=spec["n_out"],
            row_ptr=row_ptr,
            col=col,
            weight=weight,
            w_bits=spec["w_bits"],
            v_bits=spec.get("v_bits"),
            threshold=spec.get("threshold"),
            leak_shift=spec.get("leak_shift"),
            bias=bias,
            reset=spec.get("reset", "zero"),
            syn_shift=spec.get("syn_shift"),
        )
        for spec, (row_ptr, col, weight, bias) in zip(specs, arrays, strict=True)
    )
    try:
        return Model(layers=layers, timesteps=timesteps, encoder=encoder, metadata=metadata)
    except EslError as error:
        raise EslError(f"{header_path}: {error}") from None


# ---------------------------------------------------------------- saving


def save_model(model: Model, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write ``model`` to the folder ``path`` atomically (a temporary folder renamed into place).

    An existing folder is replaced only when ``overwrite`` is true; otherwise :class:`EslError`.
    The folder written is one :func:`load_model` accepts: the metadata (which callers may change
    after construction) is checked again, and the header is YAML without aliases.
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise EslError(f"{target} exists; refusing to overwrite it")
    validate_metadata(model.metadata, len(model.layers))
    try:
        header = dump_yaml(model.header())
    except yaml.YAMLError as error:
        raise EslError(f"{target}: the header cannot be written as YAML ({reason(error)})") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        arrays = {}
        for index, layer in enumerate(model.layers):
            arrays[f"row_ptr_{index}"] = layer.row_ptr.astype(np.int64)
            arrays[f"col_{index}"] = layer.col.astype(np.int32)
            arrays[f"weight_{index}"] = layer.weight.astype(np.int32)
            if layer.bias is not None:
                arrays[f"bias_{index}"] = layer.bias.astype(np.int32)
        np.savez_compressed(staging / ARRAYS_FILE, **arrays)
        (staging / MODEL_FILE).write_text(header, encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target
