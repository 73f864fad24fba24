"""A NIR graph as a discrete-time float network, and that network run on the rate encoder's spikes.

NIR states neurons in continuous time; a simulator picks a step ``dt``. This module uses the forward
Euler step that snnTorch's NIR export and import assume (β = 1 − dt/τ) and Norse uses, with
snnTorch's ``dt = 1e-4`` as the default (docs/nir.md). Per neuron, with ``W``, ``b`` the weights
and bias of the Affine before it::

    LIF      τ dv/dt = (v_leak − v) + R·I   ->  v ← β·v + g·(W s + b) + (dt/τ)·v_leak
             β = 1 − dt/τ,  g = R·dt/τ                       (snnTorch writes R = τ/dt: g = 1)
    IF       dv/dt = R·I                     ->  v ← v + R·(W s + b)   (R as a per-step gain, as
                                                 snnTorch 0.9.1's importer reads it)
    CubaLIF  τs dI/dt = −I + w_in·S,  τm dv/dt = (v_leak − v) + R·I  ->
             c ← α·c + g·(W s + b),  v ← β·v + c,  α = 1 − dt/τs,  g = w_in·(dt/τs)·R·(dt/τm)
             (v_leak must be 0: a constant into v is not a constant into c)

    spike = v > v_threshold;  v ← 0 (reset "zero") or v − v_threshold ("subtract")

The gain ``g``, the leak voltage and the threshold are folded into the weights and bias, per neuron:
row ``i`` of ``W`` and ``b[i]`` are multiplied by ``g[i] / v_threshold[i]``, so that every neuron
has the threshold 1 and the same spikes (the equations are linear in ``v``, ``I`` and the threshold).
The network is then in *threshold units*, the units :mod:`esl_hw.interchange.nir_quantise` scales to
integers. The last layer is an ``output`` layer summing its current over the ``T`` steps when the
graph's last Affine feeds the Output directly, else the last neuron layer's spikes are counted
(:attr:`FloatNetwork.readout`); the prediction is the argmax, ties to the lowest index.

The float network receives the spikes of esl-hw's rate encoder (:func:`esl_hw.encoding.encode`): NIR
has no encoder, so the imported model and its float original see the same input spikes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from esl_hw.artifact import Encoder
from esl_hw.encoding import encode
from esl_hw.errors import EslError
from esl_hw.interchange.nir_read import NirNetwork, NirNeurons, NirStage
from esl_hw.limits import shown

#: snnTorch's NIR export writes τ and R for this step (snntorch/export_nir.py)
SNNTORCH_DT = 1e-4
RESETS = ("auto", "zero", "subtract")
READOUTS = ("current", "spikes")
#: images per batch of :func:`run_float`
BATCH = 500


@dataclass(frozen=True, eq=False)
class FloatLayer:
    """One layer in threshold units: ``weight`` ``[n_out, n_in]``, ``bias`` ``[n_out]`` or ``None``.

    Hidden kinds (``lif``, ``cubalif``) have ``beta`` (membrane retention per step), ``reset`` and,
    for ``cubalif``, ``alpha`` (synaptic retention); their threshold is 1. ``threshold`` keeps the
    NIR thresholds times the gain's sign (for the report); ``source`` names the NIR nodes.
    """

    kind: str
    weight: np.ndarray
    bias: np.ndarray | None
    source: str
    beta: np.ndarray | None = None
    alpha: np.ndarray | None = None
    reset: str | None = None
    threshold: np.ndarray | None = None

    @property
    def n_out(self) -> int:
        return int(self.weight.shape[0])

    @property
    def is_hidden(self) -> bool:
        return self.kind != "output"


@dataclass(frozen=True, eq=False)
class FloatNetwork:
    """The discrete-time network: hidden layers, then an ``output`` layer (``readout == "current"``)
    or nothing more (``"spikes"``: the last hidden layer's spike counts are the outputs)."""

    layers: tuple[FloatLayer, ...]
    readout: str
    dt: float

    @property
    def n_inputs(self) -> int:
        return int(self.layers[0].weight.shape[1])

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].n_out


def _positive(values: np.ndarray, name: str, where: str) -> None:
    if not (values > 0).all():
        raise EslError(f"{where}: {name} must be positive, got {values[~(values > 0)][0]}")


def _retention(tau: np.ndarray, dt: float, name: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    """``(β, dt/τ)`` of the time constants ``tau`` for the step ``dt``; τ < dt is refused."""
    _positive(tau, name, where)
    ratio = dt / tau  # 0 where tau is +inf
    if (ratio > 1).any():
        raise EslError(
            f"{where}: {name} = {tau[ratio > 1][0]:g} s is shorter than the step dt = {dt:g} s "
            "(β = 1 − dt/τ would be negative); pass the simulator's dt with --dt"
        )
    return 1.0 - ratio, ratio


def _reset(neurons: NirNeurons, reset: str, recorded: str | None, where: str) -> str:
    """The reset of a neuron node: ``zero`` or ``subtract``. ``auto``: the reset esl-hw's export
    recorded (``recorded``), else zero where the file gives ``v_reset`` (nir 1.0.5 and later: reset to
    ``v_reset``, which must be 0), else subtract (nir 1.0.4's equations; snnTorch's ``Leaky``)."""
    if neurons.v_reset is not None and (neurons.v_reset != 0).any():
        raise EslError(
            f"{where}: v_reset = {neurons.v_reset[neurons.v_reset != 0][0]:g}; esl-hw resets to 0 or "
            "subtracts the threshold"
        )
    if reset != "auto":
        return reset
    if recorded is not None:
        return recorded
    return "subtract" if neurons.v_reset is None else "zero"


def recorded_resets(network: NirNetwork) -> list[str | None]:
    """Per stage, the reset esl-hw's export recorded in the graph's metadata (``None``: none)."""
    hidden = [index for index, stage in enumerate(network.stages) if stage.neurons is not None]
    resets: list[str | None] = [None] * len(network.stages)
    recorded = network.esl_hw.get("resets")
    if recorded is None:
        return resets
    if (
        not isinstance(recorded, list)
        or len(recorded) != len(hidden)
        or any(r not in RESETS[1:] for r in recorded)
    ):
        raise EslError(
            "the graph's esl_hw metadata resets must list zero or subtract per neuron layer, got "
            f"{shown(recorded)}"
        )
    for index, value in zip(hidden, recorded, strict=True):
        resets[index] = value
    return resets


def _hidden(stage: NirStage, dt: float, reset: str, recorded: str | None, where: str) -> FloatLayer:
    neurons = stage.neurons
    params = neurons.params
    weight = stage.synapses.weight
    bias = np.zeros(weight.shape[0]) if stage.synapses.bias is None else stage.synapses.bias
    alpha = None
    if neurons.kind == "LIF":
        beta, ratio = _retention(params["tau"], dt, "tau", where)
        gain = params["r"] * ratio
        bias = gain * bias + ratio * params["v_leak"]
        if (params["tau"] == np.inf).any():
            raise EslError(
                f"{where}: tau is infinite, so the LIF gets no input (R·dt/τ = 0); an IF has no leak"
            )
    elif neurons.kind == "IF":
        beta, gain = np.ones(weight.shape[0]), params["r"]
        bias = gain * bias
    else:
        alpha, syn_ratio = _retention(params["tau_syn"], dt, "tau_syn", where)
        beta, mem_ratio = _retention(params["tau_mem"], dt, "tau_mem", where)
        if (params["v_leak"] != 0).any():
            raise EslError(
                f"{where}: CubaLIF with v_leak ≠ 0 is not supported (only LIF maps v_leak to a bias)"
            )
        if (params["tau_syn"] == np.inf).any() or (params["tau_mem"] == np.inf).any():
            raise EslError(f"{where}: an infinite time constant gives the CubaLIF no input")
        gain = params["w_in"] * syn_ratio * params["r"] * mem_ratio
        bias = gain * bias
    threshold = params["v_threshold"]
    _positive(threshold, "v_threshold", where)
    scale = gain / threshold
    has_bias = stage.synapses.bias is not None or (neurons.kind == "LIF" and (params["v_leak"] != 0).any())
    layer = FloatLayer(
        kind="cubalif" if neurons.kind == "CubaLIF" else "lif",
        weight=weight * scale[:, None],
        bias=bias / threshold if has_bias else None,
        source=f"{stage.synapses.name} -> {neurons.name} ({neurons.kind})",
        beta=beta,
        alpha=alpha,
        reset=_reset(neurons, reset, recorded, where),
        threshold=threshold,
    )
    _check_finite(layer, where)
    return layer


def _check_finite(layer: FloatLayer, where: str) -> None:
    for name in ("weight", "bias"):
        values = getattr(layer, name)
        if values is not None and not np.isfinite(values).all():
            raise EslError(f"{where}: the {name}s overflow once gains and thresholds are folded in")


def discretise(network: NirNetwork, dt: float = SNNTORCH_DT, reset: str = "auto") -> FloatNetwork:
    """``network`` as a discrete-time float network in threshold units (module docstring)."""
    if not (isinstance(dt, float | int) and 0 < dt < float("inf")):
        raise EslError(f"dt must be a finite positive number of seconds, got {dt!r}")
    if reset not in RESETS:
        raise EslError(f"reset must be one of {', '.join(RESETS)}, got {reset!r}")
    layers = []
    recorded = recorded_resets(network)
    for index, stage in enumerate(network.stages):
        where = f"NIR layer {index} ({stage.synapses.name})"
        if stage.neurons is None:
            bias = stage.synapses.bias
            layers.append(FloatLayer("output", stage.synapses.weight, bias, source=stage.synapses.name))
            _check_finite(layers[-1], where)
        else:
            layers.append(_hidden(stage, float(dt), reset, recorded[index], where))
    readout = "current" if network.stages[-1].neurons is None else "spikes"
    return FloatNetwork(tuple(layers), readout, float(dt))


# ---------------------------------------------------------------- simulation


@dataclass
class LayerActivity:
    """What calibration needs of one hidden layer: the extremes of the potential before the reset
    (``u``) and of the synaptic current (``c``, cubalif) over every image, step and neuron, in
    threshold units, and the spikes counted."""

    u_min: float = 0.0
    u_max: float = 0.0
    c_min: float = 0.0
    c_max: float = 0.0
    spikes: int = 0
    samples: int = 0

    def merge(self, other: LayerActivity) -> None:
        self.u_min, self.u_max = min(self.u_min, other.u_min), max(self.u_max, other.u_max)
        self.c_min, self.c_max = min(self.c_min, other.c_min), max(self.c_max, other.c_max)
        self.spikes += other.spikes
        self.samples += other.samples


@dataclass(frozen=True)
class FloatRun:
    """Outputs ``[B, n_outputs]`` (summed current or spike counts), predictions ``[B]`` and, per
    hidden layer, its :class:`LayerActivity`."""

    outputs: np.ndarray
    predictions: np.ndarray
    activity: list[LayerActivity]


def _step(
    layer: FloatLayer, state: dict[str, np.ndarray], current: np.ndarray, seen: LayerActivity
) -> np.ndarray:
    if layer.kind == "cubalif":
        state["c"] = layer.alpha * state["c"] + current
        seen.c_min = min(seen.c_min, float(state["c"].min()))
        seen.c_max = max(seen.c_max, float(state["c"].max()))
        current = state["c"]
    potential = layer.beta * state["v"] + current
    seen.u_min = min(seen.u_min, float(potential.min()))
    seen.u_max = max(seen.u_max, float(potential.max()))
    fired = potential > 1.0
    seen.spikes += int(fired.sum())
    state["v"] = np.where(fired, 0.0 if layer.reset == "zero" else potential - 1.0, potential)
    return fired


def simulate(network: FloatNetwork, spikes: np.ndarray) -> FloatRun:
    """Run ``network`` on input spikes ``[T, B, n_in]`` (bool); all state starts at zero."""
    spikes = np.asarray(spikes, dtype=bool)
    steps, batch, n_in = spikes.shape
    if n_in != network.n_inputs:
        raise EslError(f"input spikes of {n_in} inputs for a network of {network.n_inputs}")
    hidden = [layer for layer in network.layers if layer.is_hidden]
    transposed = [np.ascontiguousarray(layer.weight.T) for layer in network.layers]
    states = [{"v": np.zeros((batch, layer.n_out)), "c": np.zeros((batch, layer.n_out))} for layer in hidden]
    activity = [LayerActivity(samples=batch) for _ in hidden]
    outputs = np.zeros((batch, network.n_outputs))
    for t in range(steps):
        signal = spikes[t]
        for index, layer in enumerate(network.layers):
            current = signal.astype(np.float64) @ transposed[index]
            if layer.bias is not None:
                current += layer.bias
            if not layer.is_hidden:
                outputs += current
                break
            signal = _step(layer, states[index], current, activity[index])
        else:
            outputs += signal
    return FloatRun(outputs, np.argmax(outputs, axis=1), activity)


def run_float(
    network: FloatNetwork, images: np.ndarray, timesteps: int, encoder: Encoder | None = None
) -> FloatRun:
    """:func:`simulate` on ``images`` (``[N, n_in]`` uint8) rate-encoded for ``timesteps`` steps, in
    batches of :data:`BATCH`; the activity is merged over all images."""
    encoder = encoder or Encoder()
    hidden = sum(layer.is_hidden for layer in network.layers)
    activity = [LayerActivity() for _ in range(hidden)]
    outputs = []
    for start in range(0, len(images), BATCH):
        run = simulate(network, encode(images[start : start + BATCH], timesteps, encoder))
        outputs.append(run.outputs)
        for total, part in zip(activity, run.activity, strict=True):
            total.merge(part)
    stacked = np.concatenate(outputs) if outputs else np.zeros((0, network.n_outputs))
    return FloatRun(stacked, np.argmax(stacked, axis=1), activity)
