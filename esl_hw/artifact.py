"""Model artifact, format version 2: CSR connectivity, integer weights and biases, neuron parameters.

The artifact is one folder holding ``model.yaml`` (versioned metadata) and ``arrays.npz``
(``row_ptr_<l>``, ``col_<l>``, ``weight_<l>`` per layer, ``bias_<l>`` for a layer with a bias).
``docs/semantics.md`` states the integer semantics; this module holds the model in memory
(:class:`Model`, :class:`Layer`, :class:`Encoder`), validates it and derives the widths that the
semantics implies. Version 2 adds per-neuron biases, reset by subtraction and the ``cubalif`` kind.
:mod:`esl_hw.artifact_io` loads and saves the folder; :func:`load_model` and :func:`save_model` are
importable from here too (on first use).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from esl_hw import limits
from esl_hw.artifact_arrays import ARRAY_NAMES
from esl_hw.errors import EslError
from esl_hw.limits import check_range, shown

FORMAT_NAME = "esl-hw-model"
FORMAT_VERSION = 2
ENCODER_KINDS = ("rate",)

LayerKind = Literal["lif", "cubalif", "output"]
#: The kinds of hidden layers (every layer but the last); the last layer is ``output``.
HIDDEN_KINDS = ("lif", "cubalif")
#: What a hidden neuron's potential becomes when it fires: 0, or ``u - threshold``.
RESET_MODES = ("zero", "subtract")
#: The names :mod:`esl_hw.artifact_io` provides here too, imported on first use (PEP 562).
_IO_NAMES = ("load_model", "save_model")


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
        return {"kind": self.kind, "phase0": int(self.phase0)}


@dataclass(frozen=True, eq=False)
class Layer:
    """One layer: CSR synapses by presynaptic neuron, an optional bias, neuron parameters.

    Hidden kinds (``lif``, ``cubalif``) use ``v_bits``, ``threshold``, ``leak_shift`` (``None``: no
    leak) and ``reset`` (``zero`` or ``subtract``); ``cubalif`` also ``syn_shift``, the decay shift of
    its synaptic current (``None``: no decay). The ``output`` layer integrates without leak or
    firing and leaves them unset. ``bias`` (any kind): ``None`` or ``[n_out]`` integers added to the
    current every step.
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
    bias: np.ndarray | None = None
    reset: str = "zero"
    syn_shift: int | None = None

    @property
    def is_hidden(self) -> bool:
        """A hidden layer (``lif`` or ``cubalif``), one that fires spikes."""
        return self.kind in HIDDEN_KINDS

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
        """Dense ``[n_in, n_out]`` int64 matrix of the synapses (zero where absent).

        Refused with :class:`EslError` above :data:`esl_hw.limits.MAX_DENSE_CELLS` cells.
        """
        cells = self.n_in * self.n_out
        if cells > limits.MAX_DENSE_CELLS:
            raise EslError(
                f"layer of {self.n_in}x{self.n_out}: a dense matrix of {cells} cells exceeds the limit "
                f"{limits.MAX_DENSE_CELLS}"
            )
        dense = np.zeros((self.n_in, self.n_out), dtype=np.int64)
        rows = np.repeat(np.arange(self.n_in), np.diff(self.row_ptr))
        dense[rows, self.col] = self.weight
        return dense

    def column_sums(self) -> tuple[np.ndarray, np.ndarray]:
        """Per neuron ``i``, the sums of its negative and of its positive weights (``[n_out]`` int64).

        Computed from the CSR arrays (exact int64, no dense matrix): ``I[i]`` of any input pattern
        lies between the two.
        """
        weight = np.asarray(self.weight, dtype=np.int64)
        col = np.asarray(self.col, dtype=np.int64)
        negative = np.zeros(self.n_out, dtype=np.int64)
        positive = np.zeros(self.n_out, dtype=np.int64)
        np.add.at(negative, col, np.minimum(weight, 0))
        np.add.at(positive, col, np.maximum(weight, 0))
        return negative, positive

    def synaptic_range(self) -> tuple[int, int]:
        """Most negative and most positive synaptic sum ``Σ w`` (bias not included) any input
        pattern can give; 0 always lies inside."""
        negative, positive = self.column_sums()
        return int(negative.min(initial=0)), int(positive.max(initial=0))

    def bias_range(self) -> tuple[int, int]:
        """Smallest and largest bias (``(0, 0)`` without a bias)."""
        if self.bias is None or not len(self.bias):
            return 0, 0
        return int(self.bias.min()), int(self.bias.max())

    def current_range(self) -> tuple[int, int]:
        """Most negative and most positive current ``I[i] = Σ w + bias[i]`` any input pattern can
        give (per neuron, then over neurons; 0 included, the current of a neuron at rest without
        bias)."""
        negative, positive = self.column_sums()
        if self.bias is not None:
            negative, positive = negative + self.bias, positive + self.bias
        return min(0, int(negative.min(initial=0))), max(0, int(positive.max(initial=0)))

    def current_bits(self) -> int:
        """Signed width that holds any ``I[i]`` exactly."""
        return signed_bits_for(*self.current_range())

    def max_fanout(self) -> int:
        return int(np.diff(self.row_ptr).max(initial=0))

    def __repr__(self) -> str:
        """One line: kind, shape, synapses and the neuron parameters (never the arrays)."""
        text = f"Layer({self.kind} {self.n_in}->{self.n_out}, {self.nnz} synapses, w_bits={self.w_bits}"
        if self.bias is not None:
            text += ", bias"
        if self.is_hidden:
            text += f", v_bits={self.v_bits}, threshold={self.threshold}, leak_shift={self.leak_shift}"
            text += f", reset={self.reset}"
        if self.kind == "cubalif":
            text += f", syn_shift={self.syn_shift}"
        return text + ")"

    def header(self) -> dict[str, Any]:
        """The layer's ``model.yaml`` entry (plain Python ints, as :func:`load_model` requires)."""
        entry: dict[str, Any] = {
            "kind": self.kind,
            "n_in": self.n_in,
            "n_out": int(self.n_out),
            "w_bits": int(self.w_bits),
            "bias": self.bias is not None,
        }
        if self.is_hidden:
            entry.update(
                v_bits=int(self.v_bits),
                threshold=int(self.threshold),
                leak_shift=None if self.leak_shift is None else int(self.leak_shift),
                reset=self.reset,
            )
        if self.kind == "cubalif":
            entry["syn_shift"] = None if self.syn_shift is None else int(self.syn_shift)
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

    def __repr__(self) -> str:
        """One line: shape, time steps, synapses and density (``print(model.layers)`` for more)."""
        shape = "-".join(str(n) for n in (self.n_inputs, *(layer.n_out for layer in self.layers)))
        return f"Model({shape}, T={self.timesteps}, {self.synapses} synapses, density {self.density:.4f})"

    def acc_bits(self) -> int:
        """Signed width of the output accumulators: ``T`` times the output layer's current bound
        (bias included)."""
        low, high = self.output_layer.current_range()
        return signed_bits_for(low * self.timesteps, high * self.timesteps)

    def header(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "timesteps": int(self.timesteps),
            "encoder": self.encoder.to_dict(),
            "layers": [layer.header() for layer in self.layers],
            "metadata": self.metadata,
        }


def _fail(where: str, problem: str) -> EslError:
    return EslError(f"{where}: {problem}")


def _is_integer(value: Any) -> bool:
    """A Python or numpy integer, never a ``bool``."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _check_param(value: Any, name: str, low: int, high: int, where: str) -> None:
    if not _is_integer(value) or not low <= value <= high:
        raise _fail(where, f"{name}={shown(value)} outside {low}..{high}")


def _check_arrays(layer: Layer, where: str) -> None:
    for name in ARRAY_NAMES:
        array = getattr(layer, name)
        if not isinstance(array, np.ndarray):
            raise _fail(where, f"{name} must be a numpy array, got {type(array).__name__}")
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise _fail(where, f"{name} must be a 1-D integer array, got {array.dtype} {array.shape}")


def _check_sizes(layer: Layer, where: str) -> None:
    if not _is_integer(layer.n_out):
        raise _fail(where, f"n_out must be an integer, got {shown(layer.n_out)}")
    if layer.n_out < 1 or layer.n_in < 1:
        raise _fail(where, f"needs at least one input and one neuron, got {layer.n_in}x{layer.n_out}")
    for name, value, limit in (
        ("n_in", layer.n_in, limits.MAX_INPUTS_PER_LAYER),
        ("n_out", layer.n_out, limits.MAX_NEURONS_PER_LAYER),
        ("synapses", layer.nnz, limits.MAX_SYNAPSES_PER_LAYER),
    ):
        if value > limit:
            raise _fail(where, f"{name}={value} exceeds the limit {limit}")


def validate_layer(layer: Layer, where: str) -> None:
    """Check one layer against the format; raise :class:`EslError` naming the first problem."""
    if not isinstance(layer.kind, str) or layer.kind not in (*HIDDEN_KINDS, "output"):
        raise _fail(where, f"unknown layer kind {shown(layer.kind)} (expected 'lif', 'cubalif' or 'output')")
    _check_param(layer.w_bits, "w_bits", *limits.W_BITS, where)
    _check_arrays(layer, where)
    _check_sizes(layer, where)
    row_ptr, col, weight = layer.row_ptr, layer.col, layer.weight
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
    keys = rows.astype(np.int64) * layer.n_out + col.astype(np.int64)
    if len(np.unique(keys)) != len(keys):
        raise _fail(where, "a row lists the same column twice")
    low, high = signed_range(layer.w_bits)
    if len(weight) and (weight.min() < low or weight.max() > high):
        bad = int(weight[(weight < low) | (weight > high)][0])
        raise _fail(where, f"weight {bad} outside the {layer.w_bits}-bit range {low}..{high}")
    _check_bias(layer, where)
    if layer.is_hidden:
        _check_neuron(layer, where)
    else:
        for name, value, default in (
            ("v_bits", layer.v_bits, None),
            ("threshold", layer.threshold, None),
            ("leak_shift", layer.leak_shift, None),
            ("syn_shift", layer.syn_shift, None),
            ("reset", layer.reset, "zero"),
        ):
            if value != default:
                raise _fail(where, f"an output layer has no {name} (got {shown(value)})")


def _check_bias(layer: Layer, where: str) -> None:
    """``bias``: ``None`` or a 1-D integer array of ``n_out`` values in :data:`limits.BIAS_BITS` bits."""
    bias = layer.bias
    if bias is None:
        return
    if not isinstance(bias, np.ndarray) or bias.ndim != 1 or not np.issubdtype(bias.dtype, np.integer):
        raise _fail(where, f"bias must be a 1-D integer numpy array, got {shown(bias)}")
    if len(bias) != layer.n_out:
        raise _fail(where, f"bias has {len(bias)} values for {layer.n_out} neurons")
    low, high = signed_range(limits.BIAS_BITS)
    if len(bias) and (int(bias.min()) < low or int(bias.max()) > high):
        bad = int(bias[(bias < low) | (bias > high)][0])
        raise _fail(where, f"bias {bad} outside the {limits.BIAS_BITS}-bit range {low}..{high}")


def _check_neuron(layer: Layer, where: str) -> None:
    """The neuron parameters of a hidden layer (``lif`` or ``cubalif``)."""
    _check_param(layer.v_bits, "v_bits", *limits.V_BITS, where)
    _check_param(layer.threshold, "threshold", 1, signed_range(layer.v_bits)[1], where)
    if layer.leak_shift is not None:
        _check_param(layer.leak_shift, "leak_shift", 1, layer.v_bits - 1, where)
    if not isinstance(layer.reset, str) or layer.reset not in RESET_MODES:
        raise _fail(where, f"reset {shown(layer.reset)} unknown (known: {', '.join(RESET_MODES)})")
    if layer.kind == "cubalif":
        if layer.syn_shift is not None:
            _check_param(layer.syn_shift, "syn_shift", 1, layer.v_bits - 1, where)
    elif layer.syn_shift is not None:
        raise _fail(where, f"a {layer.kind} layer has no syn_shift (got {shown(layer.syn_shift)})")


def _check_encoder(encoder: Any) -> None:
    if not isinstance(encoder, Encoder):
        raise EslError(f"unsupported encoder {shown(encoder)}")
    if not isinstance(encoder.kind, str) or encoder.kind not in ENCODER_KINDS:
        raise EslError(f"unsupported encoder kind {shown(encoder.kind)} (known: {', '.join(ENCODER_KINDS)})")
    _check_param(encoder.phase0, "encoder phase0", *limits.PHASE0, "encoder")


def validate_model(model: Model) -> None:
    """Check the whole model; raise :class:`EslError` naming the first problem."""
    if not model.layers:
        raise EslError("model has no layers")
    if len(model.layers) > limits.MAX_LAYERS:
        raise EslError(f"{len(model.layers)} layers exceed the limit {limits.MAX_LAYERS}")
    low, high = limits.TIMESTEPS
    if not _is_integer(model.timesteps) or not low <= model.timesteps <= high:
        raise EslError(f"timesteps={shown(model.timesteps)} outside {low}..{high}")
    _check_encoder(model.encoder)
    for index, layer in enumerate(model.layers):
        where = f"layer {index}"
        last = index == len(model.layers) - 1
        if (layer.kind == "output") != last:
            expected = "'output'" if last else " or ".join(repr(kind) for kind in HIDDEN_KINDS)
            raise _fail(where, f"kind is {shown(layer.kind)}, expected {expected}")
        validate_layer(layer, where)
        if index and layer.n_in != model.layers[index - 1].n_out:
            raise _fail(
                where,
                f"n_in={layer.n_in} does not chain with layer {index - 1} n_out="
                f"{model.layers[index - 1].n_out}",
            )
    if model.synapses > limits.MAX_SYNAPSES:
        raise EslError(f"{model.synapses} synapses exceed the limit {limits.MAX_SYNAPSES}")
    if model.acc_bits() > limits.MAX_ACC_BITS:
        raise EslError(
            f"the output accumulators need {model.acc_bits()} bits over {model.timesteps} steps, "
            f"more than the limit {limits.MAX_ACC_BITS}"
        )
    validate_metadata(model.metadata, len(model.layers))


def _check_rewiring(value: Any, n_layers: int, where: str) -> None:
    """``metadata.rewiring``: ``{lanes: 2^k, lfsr_states: [one non-zero 32-bit state per layer]}``."""
    if not isinstance(value, dict) or set(value) != {"lanes", "lfsr_states"}:
        raise EslError(f"{where} must be a mapping of lanes and lfsr_states, got {shown(value)}")
    lanes = check_range(value["lanes"], *limits.REWIRE_LANES, f"{where}.lanes")
    if lanes & (lanes - 1):
        raise EslError(f"{where}.lanes must be a power of two, got {lanes}")
    states = value["lfsr_states"]
    if not isinstance(states, list | tuple) or len(states) != n_layers:
        raise EslError(
            f"{where}.lfsr_states must list {n_layers} LFSR states (one per layer), got {shown(states)}"
        )
    for index, state in enumerate(states):
        check_range(state, *limits.LFSR_STATES, f"{where}.lfsr_states[{index}]")


def _check_requantised(value: Any, where: str) -> None:
    """``metadata.requantised``: ``{trained_w_bits, w_bits}``, two weight widths."""
    if not isinstance(value, dict) or set(value) != {"trained_w_bits", "w_bits"}:
        raise EslError(f"{where} must be a mapping of trained_w_bits and w_bits, got {shown(value)}")
    for key in ("trained_w_bits", "w_bits"):
        check_range(value[key], *limits.W_BITS, f"{where}.{key}")


def validate_metadata(metadata: Any, n_layers: int, where: str = "metadata") -> None:
    """Check the metadata keys that code reads (``run_dir``, ``rewiring``, ``requantised``).

    The rest of the mapping is free-form. Raise :class:`EslError` naming the first problem.
    """
    if not isinstance(metadata, dict):
        raise EslError(f"{where} must be a mapping, got {shown(metadata)}")
    run_dir = metadata.get("run_dir")
    if run_dir is not None and (not isinstance(run_dir, str) or "\0" in run_dir):
        raise EslError(f"{where}.run_dir must be a path (a string), got {shown(run_dir)}")
    if "rewiring" in metadata:
        _check_rewiring(metadata["rewiring"], n_layers, f"{where}.rewiring")
    if "requantised" in metadata:
        _check_requantised(metadata["requantised"], f"{where}.requantised")


def layer_from_dense(
    dense: np.ndarray,
    kind: LayerKind,
    w_bits: int,
    v_bits: int | None = None,
    threshold: int | None = None,
    leak_shift: int | None = None,
    mask: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    reset: str = "zero",
    syn_shift: int | None = None,
) -> Layer:
    """Build a CSR layer from a dense ``[n_in, n_out]`` integer matrix (and the other fields).

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
        bias=None if bias is None else np.asarray(bias, dtype=np.int64),
        reset=reset,
        syn_shift=syn_shift,
    )


def __getattr__(name: str) -> Any:
    """``load_model`` and ``save_model`` from :mod:`esl_hw.artifact_io` (which imports this module)."""
    if name not in _IO_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from esl_hw import artifact_io

    return getattr(artifact_io, name)
