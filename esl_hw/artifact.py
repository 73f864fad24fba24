"""Model artifact, format version 1: CSR connectivity, integer weights, neuron parameters.

The artifact is one folder holding ``model.yaml`` (versioned metadata) and ``arrays.npz``
(``row_ptr_<l>``, ``col_<l>``, ``weight_<l>`` per layer). ``docs/semantics.md`` states the integer
semantics; this module loads, validates and saves the format and derives the widths that the
semantics implies.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from esl_hw.errors import EslError

FORMAT_NAME = "esl-hw-model"
FORMAT_VERSION = 1
MODEL_FILE = "model.yaml"
ARRAYS_FILE = "arrays.npz"

LayerKind = Literal["lif", "output"]


def signed_range(bits: int) -> tuple[int, int]:
    """Return ``(-2^(bits-1), 2^(bits-1) - 1)``."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def signed_bits_for(low: int, high: int) -> int:
    """Smallest signed width whose range holds both ``low`` and ``high``."""
    bits = 1
    while True:
        lo, hi = signed_range(bits)
        if lo <= low and high <= hi:
            return bits
        bits += 1


@dataclass(frozen=True)
class Encoder:
    """Deterministic rate encoder: ``s[t] = floor((phase0+(t+1)x)/256) - floor((phase0+t x)/256)``."""

    kind: Literal["rate"] = "rate"
    phase0: int = 128

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "phase0": self.phase0}


@dataclass(frozen=True, eq=False)
class Layer:
    """One layer: CSR synapses by presynaptic neuron plus neuron parameters.

    ``kind == "lif"`` layers use ``v_bits``, ``threshold`` and ``leak_shift`` (``None``: no leak);
    the ``"output"`` layer integrates without leak or firing and leaves them ``None``.
    """

    kind: LayerKind
    n_out: int
    row_ptr: np.ndarray
    col: np.ndarray
    weight: np.ndarray
    w_bits: int
    v_bits: int | None = None
    threshold: int | None = None
    leak_shift: int | None = None

    @property
    def n_in(self) -> int:
        return int(len(self.row_ptr) - 1)

    @property
    def nnz(self) -> int:
        return int(len(self.col))

    @property
    def density(self) -> float:
        return self.nnz / (self.n_in * self.n_out)

    def dense_weight(self) -> np.ndarray:
        """Dense ``[n_in, n_out]`` int64 matrix of the synapses (zero where absent)."""
        dense = np.zeros((self.n_in, self.n_out), dtype=np.int64)
        rows = np.repeat(np.arange(self.n_in), np.diff(self.row_ptr))
        dense[rows, self.col] = self.weight
        return dense

    def current_range(self) -> tuple[int, int]:
        """Most negative and most positive input current ``I[i]`` any input pattern can give."""
        dense = self.dense_weight()
        low = int(np.minimum(dense, 0).sum(axis=0).min(initial=0))
        high = int(np.maximum(dense, 0).sum(axis=0).max(initial=0))
        return low, high

    def current_bits(self) -> int:
        """Signed width that holds any ``I[i]`` exactly."""
        return signed_bits_for(*self.current_range())

    def max_fanout(self) -> int:
        return int(np.diff(self.row_ptr).max(initial=0))

    def header(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "kind": self.kind,
            "n_in": self.n_in,
            "n_out": self.n_out,
            "w_bits": self.w_bits,
        }
        if self.kind == "lif":
            entry.update(v_bits=self.v_bits, threshold=self.threshold, leak_shift=self.leak_shift)
        return entry


@dataclass(frozen=True, eq=False)
class Model:
    """A validated model: LIF layers followed by one output layer, run for ``timesteps`` steps."""

    layers: tuple[Layer, ...]
    timesteps: int
    encoder: Encoder = Encoder()
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_model(self)

    @property
    def n_inputs(self) -> int:
        return self.layers[0].n_in

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].n_out

    @property
    def hidden_layers(self) -> tuple[Layer, ...]:
        return self.layers[:-1]

    @property
    def output_layer(self) -> Layer:
        return self.layers[-1]

    @property
    def synapses(self) -> int:
        return sum(layer.nnz for layer in self.layers)

    @property
    def density(self) -> float:
        dense = sum(layer.n_in * layer.n_out for layer in self.layers)
        return self.synapses / dense

    def acc_bits(self) -> int:
        """Signed width of the output accumulators: ``T`` times the output layer's current bound."""
        low, high = self.output_layer.current_range()
        return signed_bits_for(low * self.timesteps, high * self.timesteps)

    def header(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "timesteps": self.timesteps,
            "encoder": self.encoder.to_dict(),
            "layers": [layer.header() for layer in self.layers],
            "metadata": self.metadata,
        }


def _fail(where: str, problem: str) -> EslError:
    return EslError(f"{where}: {problem}")


def validate_layer(layer: Layer, where: str) -> None:
    """Check one layer against the format; raise :class:`EslError` naming the first problem."""
    if layer.kind not in ("lif", "output"):
        raise _fail(where, f"unknown layer kind {layer.kind!r} (expected 'lif' or 'output')")
    if not 2 <= layer.w_bits <= 32:
        raise _fail(where, f"w_bits={layer.w_bits} outside 2..32")
    if layer.n_out < 1 or layer.n_in < 1:
        raise _fail(where, f"needs at least one input and one neuron, got {layer.n_in}x{layer.n_out}")
    row_ptr, col, weight = layer.row_ptr, layer.col, layer.weight
    for name, array in (("row_ptr", row_ptr), ("col", col), ("weight", weight)):
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise _fail(where, f"{name} must be a 1-D integer array, got {array.dtype} {array.shape}")
    if row_ptr[0] != 0:
        raise _fail(where, f"row_ptr[0] is {row_ptr[0]}, must be 0")
    steps = np.diff(row_ptr)
    if (steps < 0).any():
        bad = int(np.argmax(steps < 0))
        raise _fail(where, f"row_ptr not monotonic at row {bad} ({row_ptr[bad]} > {row_ptr[bad + 1]})")
    if row_ptr[-1] != len(col) or len(col) != len(weight):
        raise _fail(where, f"row_ptr ends at {row_ptr[-1]} but col has {len(col)} and weight {len(weight)}")
    if len(col) and (col.min() < 0 or col.max() >= layer.n_out):
        bad = int(col[(col < 0) | (col >= layer.n_out)][0])
        raise _fail(where, f"column index {bad} out of range 0..{layer.n_out - 1}")
    rows = np.repeat(np.arange(layer.n_in), steps)
    keys = rows.astype(np.int64) * layer.n_out + col
    if len(np.unique(keys)) != len(keys):
        raise _fail(where, "a row lists the same column twice")
    low, high = signed_range(layer.w_bits)
    if len(weight) and (weight.min() < low or weight.max() > high):
        bad = int(weight[(weight < low) | (weight > high)][0])
        raise _fail(where, f"weight {bad} outside the {layer.w_bits}-bit range {low}..{high}")
    if layer.kind == "lif":
        if layer.v_bits is None or not 2 <= layer.v_bits <= 48:
            raise _fail(where, f"v_bits={layer.v_bits} outside 2..48")
        _, v_high = signed_range(layer.v_bits)
        if layer.threshold is None or not 1 <= layer.threshold <= v_high:
            raise _fail(where, f"threshold={layer.threshold} outside 1..{v_high}")
        if layer.leak_shift is not None and not 1 <= layer.leak_shift <= layer.v_bits - 1:
            raise _fail(where, f"leak_shift={layer.leak_shift} outside 1..{layer.v_bits - 1}")


def validate_model(model: Model) -> None:
    """Check the whole model; raise :class:`EslError` naming the first problem."""
    if not model.layers:
        raise EslError("model has no layers")
    if not 1 <= model.timesteps <= 4096:
        raise EslError(f"timesteps={model.timesteps} outside 1..4096")
    if model.encoder.kind != "rate" or not 0 <= model.encoder.phase0 <= 255:
        raise EslError(f"unsupported encoder {model.encoder}")
    for index, layer in enumerate(model.layers):
        where = f"layer {index}"
        expected = "output" if index == len(model.layers) - 1 else "lif"
        if layer.kind != expected:
            raise _fail(where, f"kind is {layer.kind!r}, expected {expected!r}")
        validate_layer(layer, where)
        if index and layer.n_in != model.layers[index - 1].n_out:
            raise _fail(
                where,
                f"n_in={layer.n_in} does not chain with layer {index - 1} n_out="
                f"{model.layers[index - 1].n_out}",
            )


def _int(entry: dict[str, Any], key: str, where: str, optional: bool = False) -> int | None:
    if key not in entry:
        if optional:
            return None
        raise _fail(where, f"missing key {key!r}")
    value = entry[key]
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, f"{key} must be an integer, got {value!r}")
    return value


def load_model(path: str | os.PathLike[str]) -> Model:
    """Load and validate the artifact folder ``path``; raise :class:`EslError` on any problem."""
    folder = Path(path)
    header_path = folder / MODEL_FILE
    arrays_path = folder / ARRAYS_FILE
    if not folder.is_dir():
        raise EslError(f"model artifact {folder} is not a folder")
    for required in (header_path, arrays_path):
        if not required.is_file():
            raise EslError(f"model artifact {folder} lacks {required.name}")
    try:
        header = yaml.safe_load(header_path.read_text())
    except yaml.YAMLError as error:
        raise EslError(f"{header_path}: not valid YAML ({error.__class__.__name__})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise EslError(f"{header_path}: not an {FORMAT_NAME} file")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise EslError(
            f"{header_path}: format_version {version!r} is not supported (this is {FORMAT_VERSION})"
        )
    entries = header.get("layers")
    if not isinstance(entries, list) or not entries:
        raise EslError(f"{header_path}: 'layers' must be a non-empty list")
    try:
        with np.load(arrays_path) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as error:
        raise EslError(f"{arrays_path}: not a readable npz file ({error})") from None
    layers = []
    for index, entry in enumerate(entries):
        where = f"{header_path} layer {index}"
        if not isinstance(entry, dict):
            raise _fail(where, "must be a mapping")
        names = [f"row_ptr_{index}", f"col_{index}", f"weight_{index}"]
        missing = [name for name in names if name not in arrays]
        if missing:
            raise EslError(f"{arrays_path}: missing array {missing[0]}")
        row_ptr, col, weight = (arrays[name] for name in names)
        n_in = _int(entry, "n_in", where)
        if row_ptr.ndim != 1 or len(row_ptr) != n_in + 1:
            raise _fail(where, f"n_in={n_in} but row_ptr has {row_ptr.shape} entries")
        kind = entry.get("kind")
        lif = kind == "lif"
        layers.append(
            Layer(
                kind=kind,
                n_out=_int(entry, "n_out", where),
                row_ptr=row_ptr.astype(np.int64),
                col=col.astype(np.int64),
                weight=weight.astype(np.int64),
                w_bits=_int(entry, "w_bits", where),
                v_bits=_int(entry, "v_bits", where) if lif else None,
                threshold=_int(entry, "threshold", where) if lif else None,
                leak_shift=_int(entry, "leak_shift", where, optional=True) if lif else None,
            )
        )
    encoder_entry = header.get("encoder") or {}
    if not isinstance(encoder_entry, dict):
        raise EslError(f"{header_path}: 'encoder' must be a mapping")
    encoder = Encoder(kind=encoder_entry.get("kind", "rate"), phase0=encoder_entry.get("phase0", 128))
    timesteps = _int(header, "timesteps", str(header_path))
    try:
        return Model(
            layers=tuple(layers),
            timesteps=timesteps,
            encoder=encoder,
            metadata=dict(header.get("metadata") or {}),
        )
    except EslError as error:
        raise EslError(f"{header_path}: {error}") from None


def save_model(model: Model, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write ``model`` to the folder ``path`` atomically (a temporary folder renamed into place).

    An existing folder is replaced only when ``overwrite`` is true; otherwise :class:`EslError`.
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise EslError(f"{target} exists; refusing to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        arrays = {}
        for index, layer in enumerate(model.layers):
            arrays[f"row_ptr_{index}"] = layer.row_ptr.astype(np.int64)
            arrays[f"col_{index}"] = layer.col.astype(np.int32)
            arrays[f"weight_{index}"] = layer.weight.astype(np.int32)
        np.savez_compressed(staging / ARRAYS_FILE, **arrays)
        (staging / MODEL_FILE).write_text(yaml.safe_dump(model.header(), sort_keys=False))
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target


def layer_from_dense(
    dense: np.ndarray,
    kind: LayerKind,
    w_bits: int,
    v_bits: int | None = None,
    threshold: int | None = None,
    leak_shift: int | None = None,
    mask: np.ndarray | None = None,
) -> Layer:
    """Build a CSR layer from a dense ``[n_in, n_out]`` integer matrix.

    ``mask`` (same shape, bool) selects the synapses; without it the non-zero entries do. A
    synapse kept by ``mask`` whose weight rounded to zero stays a synapse of weight 0.
    """
    dense = np.asarray(dense)
    keep = dense != 0 if mask is None else np.asarray(mask, dtype=bool)
    rows, cols = np.nonzero(keep)
    row_ptr = np.zeros(dense.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=dense.shape[0]), out=row_ptr[1:])
    return Layer(
        kind=kind,
        n_out=int(dense.shape[1]),
        row_ptr=row_ptr,
        col=cols.astype(np.int64),
        weight=dense[rows, cols].astype(np.int64),
        w_bits=w_bits,
        v_bits=v_bits,
        threshold=threshold,
        leak_shift=leak_shift,
    )
