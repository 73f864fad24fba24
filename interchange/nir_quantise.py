"""A discrete-time float network (:mod:`esl_hw.interchange.nir_float`) as an integer model artifact.

Post-training quantisation, one scale per layer. A hidden layer in threshold units (threshold 1) is
multiplied by its scale ``s`` (integer potential units per threshold)::

    weight_int = round(s·W)            |weight_int| ≤ 2^(w_bits−1) − 1
    bias_int   = round(s·b)            in the signed 32-bit range
    threshold  = floor(s) + 1          u > s  ⟺  u ≥ floor(s) + 1 for an integer u: NIR's strict
                                       "v > v_threshold" becomes the contract's "u ≥ θ" exactly
    leak_shift = k with 1 − 2^−k nearest to β (relative error of 1 − β), none for β = 1
    syn_shift  = the same for the synaptic retention α (cubalif)

``s`` is the largest scale that keeps every weight within ``w_bits``, every bias within 32 bits, and
the potentials within ``v_bits``: the potential may reach ``H`` thresholds, with ``H`` the largest
``|u|`` or ``|c|`` the float network reached on the calibration images times
:data:`CALIBRATION_MARGIN` when there are any, else :data:`DEFAULT_HEADROOM`. The output layer (no
potential) takes the largest scale its weights and bias allow. A graph whose last layer is a neuron
layer gets an identity output layer (weight 1, ``w_bits`` 2) that counts its spikes.

The error each rounding costs, per layer, in threshold units (:func:`quantise` reports them, and
docs/nir.md states them):

- weights: at most ``0.5/s`` each, so the current of one step is off by at most
  ``0.5·(fan_in + 1)/s`` (every input spiking, bias included); on average far less;
- threshold: the firing decision is exact; a subtracting reset removes ``θ/s`` instead of 1, at
  most ``1/s`` more;
- leak: the retention is ``1 − 2^−k`` instead of β (``leak_error``: the relative error of ``1 − β``,
  at most 1/3 when ``β`` lies in the representable range 0.25 .. 1 − 2^−(v_bits−1); a warning above
  :data:`LEAK_WARNING`, refused above :data:`LEAK_ERROR_LIMIT`), and the floor of ``v >> k`` keeps
  up to one integer unit (``1/s`` thresholds) more per step than ``β·v``;
- bias: at most ``0.5/s`` per step;
- saturation: a potential beyond ``(2^(v_bits−1) − 1)/s`` thresholds is clamped (the float
  network never clamps); ``headroom`` in the report says where that is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from esl_hw import limits
from esl_hw.artifact import Encoder, Layer, Model, layer_from_dense, signed_range
from esl_hw.errors import EslError
from esl_hw.interchange.nir_float import FloatLayer, FloatNetwork, LayerActivity

#: thresholds of potential assumed without calibration data
DEFAULT_HEADROOM = 16.0
#: the calibrated extremes are widened by this factor
CALIBRATION_MARGIN = 1.25
#: a leak (or synaptic decay) whose 1 − β is off by more than this is warned about
LEAK_WARNING = 0.1
#: ... and refused beyond this: the worst that rounding to the nearest power of two costs is 1/3
LEAK_ERROR_LIMIT = 0.34
#: a scale below this leaves the threshold fewer integer levels than is useful
MIN_SCALE = 4.0
BIAS_BITS = 32


@dataclass(frozen=True)
class Retention:
    """A retention factor (β or α) as a shift: ``shift`` ``None`` means none (``1 − 2^−k`` → 1)."""

    shift: int | None
    value: float
    error: float


@dataclass
class Quantised:
    """The integer model, a report per layer (JSON-able) and the warnings given."""

    model: Model
    layers: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)


def retention_shift(beta: np.ndarray, v_bits: int, name: str, where: str) -> Retention:
    """The shift ``k`` whose ``1 − 2^−k`` is nearest to ``beta`` (the same for every neuron).

    ``1 − β`` below half an integer unit of the largest potential (``2^−v_bits``) is no decay at all.
    Refused: neurons whose β need different shifts, and a β no shift comes within
    :data:`LEAK_ERROR_LIMIT` of (β below about 0.25).
    """
    decay = 1.0 - np.asarray(beta, dtype=np.float64)
    if (decay < 0).any():
        raise EslError(f"{where}: {name} = {1 - decay.min():g} above 1 (a growing potential)")
    shifts = set()
    best = Retention(None, 1.0, 0.0)
    for value in np.unique(decay):
        if value < 2.0**-v_bits:
            best = Retention(None, 1.0, 1.0 if value > 0 else 0.0)
            shifts.add(None)
            continue
        candidates = range(1, v_bits)
        shift = min(candidates, key=lambda k: abs(2.0**-k - value) / value)
        error = abs(2.0**-shift - value) / value
        if error > LEAK_ERROR_LIMIT:
            raise EslError(
                f"{where}: {name} = {1 - value:.6g} is not near 1 − 2^−k for any k in 1..{v_bits - 1} "
                f"(nearest: k = {shift}, {name} = {1 - 2.0**-shift:g}, 1 − {name} off by "
                f"{100 * error:.0f}%; at most {100 * LEAK_ERROR_LIMIT:.0f}% is accepted)"
            )
        best = Retention(shift, 1.0 - 2.0**-shift, error)
        shifts.add(shift)
    if len(shifts) > 1:
        shown = sorted("none" if shift is None else str(shift) for shift in shifts)
        raise EslError(
            f"{where}: the neurons' {name} need different shifts ({', '.join(shown)}); esl-hw has one "
            "per layer"
        )
    return best


def _largest(values: np.ndarray | None) -> float:
    return 0.0 if values is None or not values.size else float(np.abs(values).max())


def _scale(layer: FloatLayer, w_bits: int, v_bits: int | None, headroom: float | None) -> tuple[float, str]:
    """The largest scale within the weights', the bias's and (hidden) the potential's range, and
    which of them set it."""
    limits_found = {}
    weight = _largest(layer.weight)
    if weight > 0:
        limits_found["weights"] = signed_range(w_bits)[1] / weight
    bias = _largest(layer.bias)
    if bias > 0:
        limits_found["bias"] = signed_range(BIAS_BITS)[1] / bias
    if v_bits is not None:
        limits_found["potential"] = (signed_range(v_bits)[1] - 1) / headroom
    if not limits_found:
        return 1.0, "nothing (all weights zero)"
    reason = min(limits_found, key=limits_found.get)
    return limits_found[reason], reason


def _integer(values: np.ndarray, scale: float, bits: int) -> np.ndarray:
    low, high = signed_range(bits)
    return np.clip(np.rint(values * scale), low, high).astype(np.int64)


def _headroom(activity: LayerActivity | None) -> float:
    if activity is None or not activity.samples:
        return DEFAULT_HEADROOM
    seen = max(1.0, -activity.u_min, activity.u_max, -activity.c_min, activity.c_max)
    return seen * CALIBRATION_MARGIN


def _errors(layer: FloatLayer, scale: float, dense: np.ndarray) -> dict[str, Any]:
    """The weight, current and bias rounding bounds of a layer (threshold units)."""
    fan_in = int((dense != 0).sum(axis=0).max(initial=0))
    nonzero = layer.weight != 0
    return {
        "scale": scale,
        "weight_error": 0.5 / scale,
        "weight_error_relative": 0.5 / (scale * max(_largest(layer.weight), 1e-300)),
        "current_error_bound": 0.5 * (fan_in + (layer.bias is not None)) / scale,
        "bias_error": 0.5 / scale if layer.bias is not None else 0.0,
        "synapses_rounded_to_zero": int((nonzero & (dense.T == 0)).sum()),
    }


def _hidden(
    layer: FloatLayer, w_bits: int, v_bits: int, activity: LayerActivity | None, where: str
) -> tuple[Layer, dict[str, Any], list[str]]:
    headroom = _headroom(activity)
    scale, reason = _scale(layer, w_bits, v_bits, headroom)
    v_max = signed_range(v_bits)[1]
    if scale < MIN_SCALE:
        raise EslError(
            f"{where}: only {scale:.3g} integer units per threshold (set by the {reason}); use more "
            f"--v-bits or --w-bits (v_bits {v_bits}, w_bits {w_bits})"
        )
    leak = retention_shift(layer.beta, v_bits, "β", where)
    synaptic = retention_shift(layer.alpha, v_bits, "α", where) if layer.kind == "cubalif" else None
    dense = _integer(layer.weight, scale, w_bits).T
    bias = None if layer.bias is None else _integer(layer.bias, scale, BIAS_BITS)
    threshold = min(math.floor(scale) + 1, v_max)
    integer = layer_from_dense(
        dense,
        layer.kind,
        w_bits,
        v_bits=v_bits,
        threshold=threshold,
        leak_shift=leak.shift,
        bias=bias,
        reset=layer.reset,
        syn_shift=None if synaptic is None else synaptic.shift,
    )
    report = {
        "kind": layer.kind,
        "source": layer.source,
        "limited_by": reason,
        **_errors(layer, scale, dense),
        "threshold": threshold,
        "threshold_error": (threshold - scale) / scale,
        "nir_threshold": [float(layer.threshold.min()), float(layer.threshold.max())],
        "reset": layer.reset,
        "leak_shift": leak.shift,
        "beta": float(np.mean(layer.beta)),
        "beta_int": leak.value,
        "leak_error": leak.error,
        "headroom": (v_max / scale),
        "calibrated": activity is not None and activity.samples > 0,
    }
    if activity is not None and activity.samples:
        report["calibration_potential"] = [activity.u_min, activity.u_max]
        report["calibration_spikes_per_image"] = activity.spikes / activity.samples
    warnings = []
    for name, found in (("β", leak), ("α", synaptic)):
        if found is not None and found.shift is not None and found.error > LEAK_WARNING:
            warnings.append(
                f"{where}: {name} = {_mean(layer, name):.6g} becomes 1 − 2^−{found.shift} = {found.value:g}: "
                f"1 − {name} off by {100 * found.error:.0f}%"
            )
    if synaptic is not None:
        report.update(syn_shift=synaptic.shift, alpha=float(np.mean(layer.alpha)), alpha_int=synaptic.value)
        report["syn_error"] = synaptic.error
    return integer, report, warnings


def _mean(layer: FloatLayer, name: str) -> float:
    return float(np.mean(layer.beta if name == "β" else layer.alpha))


def _integral(layer: FloatLayer, w_bits: int) -> bool:
    """Whether the weights and bias are whole numbers within ``w_bits`` (e.g. esl-hw's own export)."""
    values = layer.weight if layer.bias is None else np.concatenate([layer.weight.reshape(-1), layer.bias])
    return bool((values == np.rint(values)).all() and _largest(values) <= signed_range(w_bits)[1])


def _output(layer: FloatLayer, w_bits: int) -> tuple[Layer, dict[str, Any]]:
    """The output layer: its largest scale (the argmax does not depend on it), or 1 when its values
    are whole numbers within ``w_bits`` already (nothing to round)."""
    scale, reason = (1.0, "integer values") if _integral(layer, w_bits) else _scale(layer, w_bits, None, None)
    dense = _integer(layer.weight, scale, w_bits).T
    bias = None if layer.bias is None else _integer(layer.bias, scale, BIAS_BITS)
    integer = layer_from_dense(dense, "output", w_bits, bias=bias)
    report = {"kind": "output", "source": layer.source, "limited_by": reason, **_errors(layer, scale, dense)}
    return integer, report


def _counting_layer(n: int) -> Layer:
    """The identity output layer: output ``i`` counts the spikes of neuron ``i``."""
    index = np.arange(n, dtype=np.int64)
    return Layer("output", n, np.arange(n + 1, dtype=np.int64), index, np.ones(n, dtype=np.int64), w_bits=2)


def quantise(
    network: FloatNetwork,
    w_bits: int = 8,
    v_bits: int = 16,
    timesteps: int = 8,
    activity: list[LayerActivity] | None = None,
    encoder: Encoder | None = None,
    metadata: dict[str, Any] | None = None,
) -> Quantised:
    """The integer :class:`~esl_hw.artifact.Model` of ``network`` (module docstring).

    ``activity``: per hidden layer, what the float network did on calibration images
    (:func:`esl_hw.interchange.nir_float.run_float`); ``None``: no calibration.
    """
    low, high = limits.W_BITS
    if not low <= w_bits <= high:
        raise EslError(f"--w-bits must be in {low}..{high}, got {w_bits}")
    if not limits.V_BITS[0] <= v_bits <= limits.V_BITS[1]:
        raise EslError(f"--v-bits must be in {limits.V_BITS[0]}..{limits.V_BITS[1]}, got {v_bits}")
    layers, reports, warnings = [], [], []
    hidden_index = 0
    for index, layer in enumerate(network.layers):
        where = f"layer {index} ({layer.source})"
        if layer.is_hidden:
            seen = None if activity is None else activity[hidden_index]
            integer, report, warned = _hidden(layer, w_bits, v_bits, seen, where)
            warnings += warned
            hidden_index += 1
        else:
            integer, report = _output(layer, w_bits)
        layers.append(integer)
        reports.append(report)
    if network.readout == "spikes":
        layers.append(_counting_layer(network.n_outputs))
        reports.append({"kind": "output", "source": "spike count of the last layer (added)"})
    info = {"scales": [report.get("scale", 1.0) for report in reports], "readout": network.readout}
    model = Model(
        layers=tuple(layers),
        timesteps=timesteps,
        encoder=encoder or Encoder(),
        metadata={**(metadata or {}), **info, "dt": network.dt},
    )
    return Quantised(model, reports, warnings)
