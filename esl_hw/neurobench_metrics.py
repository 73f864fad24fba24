"""NeuroBench's metrics of a model artifact, computed by esl-hw from the artifact and the reference.

The names and the counting rules are NeuroBench's (Yik et al., "The neurobench framework for
benchmarking neuromorphic computing algorithms and systems", Nature Communications 2025), read from
the source of the ``neurobench`` package, version 2.3.0 (:data:`NEUROBENCH_VERSION`); the package is
not needed here (it is an optional extra, used by ``tests/test_neurobench_metrics.py`` to check
these figures against its own on the same torch network and the same input spikes).

NeuroBench measures a torch network. The network of an artifact, as NeuroBench sees it, is one
``nn.Linear`` per layer holding the layer's integer weights densely (0 where there is no synapse;
``float32``, or ``float64`` when a weight or bias exceeds 2^24) with the layer's bias as the
``Linear``'s bias where it has one, each hidden layer followed by its neurons (a module without
parameters or buffers, registered as NeuroBench's activation module). Its input is the rate
encoder's spikes (:func:`esl_hw.encoding.encode`), 0/1 in every step, exactly what the core
receives. With ``W_l`` the dense ``[n_in, n_out]`` weights of layer ``l``, ``x_l[t]`` its input at
step ``t`` (the encoder's spikes for the first layer, the previous layer's spikes after it)::

    Footprint           = Σ_params,buffers numel · element_size            (bytes)
                        = e · Σ_l (n_in·n_out + |bias_l|),  e = 4 (float32) or 8 (float64)
    ConnectionSparsity  = |{W_l[j,i] = 0}| / Σ_l n_in·n_out               (every weight of every layer)
    ActivationSparsity  = 1 − Σ spikes / (T · B · Σ_hidden N_l)            (0.0 without hidden layers)
    effective ops (l,t) = Σ_b Σ_j [x_l[t][b,j] ≠ 0] · |{i : W_l[j,i] ≠ 0}|
    Effective_ACs       = Σ effective ops of the (l, t) whose input is all in {−1, 0, 1}, / B
    Effective_MACs      = Σ effective ops of the other (l, t), / B
    Dense               = Σ_l T · n_in · n_out                               (per sample)

Where they come from in neurobench 2.3.0:

- ``Footprint``: ``metrics/static/footprint.py`` (``Footprint.__call__``), every parameter and
  buffer of ``model.__net__()``.
- ``ConnectionSparsity``: ``metrics/static/connection_sparsity.py``: ``.weight`` of every
  ``Linear``/``Conv`` (and the recurrent weights and biases of RNN layers, none here); biases of
  ``Linear`` layers and neurons (``SpikingNeuron``) count nothing. NeuroBench rounds the ratio to 4
  decimals; it is reported here unrounded.
- ``ActivationSparsity``: ``metrics/workload/activation_sparsity.py``: zero outputs over all outputs
  of every activation module (``hooks/neuron.py``), all steps and samples. The output layer is a
  ``Linear`` without activation, so it does not count; the input spikes do not either.
- ``SynapticOperations``: ``metrics/workload/synaptic_operations.py`` with ``single_layer_MACs``
  (``metrics/utils/layers/macs.py``), ``binary_inputs`` (``metrics/utils/layers/input.py``) and
  ``make_binary_copy`` (``binary_copy.py``): each call of a connection layer (one per step) binarises
  its input and its weights (non-zero → 1) and counts the output of the binary layer with the bias
  set to zero; the call is ACs when every input value is −1, 0 or 1 (the whole batch of that call,
  the first layer included), else MACs. ``Dense`` repeats this with all-ones input and weights.
  Totals are divided by the samples.

So a synapse of weight 0 costs NeuroBench nothing (:func:`esl_hw.metrics.synaptic_ops`, the core's
own SOP count, counts it: the core streams it), a bias costs nothing (NeuroBench counts weight
operations only), and since the encoder's spikes are binary every operation of an esl-hw network is
an AC: ``Effective_MACs`` is 0. Beside NeuroBench's footprint, :func:`csr_bits` gives the size of
the integer model's connectivity as the hardware stores it.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Any

import numpy as np

from esl_hw.artifact import Layer, Model
from esl_hw.encoding import encode
from esl_hw.reference import Trace, batch_for, run

__all__ = [
    "NEUROBENCH_VERSION",
    "WorkloadCounts",
    "connection_sparsity",
    "csr_bits",
    "evaluate",
    "footprint",
    "neurobench_metrics",
    "nonzero_fanout",
    "workload_counts",
]

#: The neurobench release whose definitions this module follows.
NEUROBENCH_VERSION = "2.3.0"

#: Integers up to this magnitude are exact in float32 (the NeuroBench view's weights then are).
_FLOAT32_EXACT = 1 << 24


def _bias(layer: Layer) -> np.ndarray | None:
    """The layer's bias (``None``: none; artifacts without the field have none)."""
    bias = getattr(layer, "bias", None)
    return None if bias is None else np.asarray(bias, dtype=np.int64)


def nonzero_fanout(layer: Layer) -> np.ndarray:
    """Per presynaptic neuron ``j``, its synapses with a non-zero weight (``[n_in]`` int64)."""
    rows = np.repeat(np.arange(layer.n_in), np.diff(layer.row_ptr))
    return np.bincount(rows[np.asarray(layer.weight) != 0], minlength=layer.n_in).astype(np.int64)


def element_size(model: Model) -> int:
    """Bytes per value of the NeuroBench view: 4 (float32) unless a weight or bias exceeds 2^24."""
    arrays = [layer.weight for layer in model.layers] + [_bias(layer) for layer in model.layers]
    largest = max(int(np.abs(np.asarray(a, dtype=np.int64)).max(initial=0)) for a in arrays if a is not None)
    return 4 if largest <= _FLOAT32_EXACT else 8


def footprint(model: Model) -> int:
    """NeuroBench ``Footprint`` in bytes: the parameters (dense weights, biases) of the network as
    NeuroBench sees it (module docstring); its neurons hold no parameters or buffers."""
    weights = sum(layer.n_in * layer.n_out for layer in model.layers)
    biases = sum(layer.n_out for layer in model.layers if _bias(layer) is not None)
    return element_size(model) * (weights + biases)


def csr_bits(model: Model) -> int:
    """esl-hw's own footprint of the integer model's connectivity, in bits.

    Per layer ``n_in + 1`` row pointers of ``bits(nnz)`` bits and per synapse a column index of
    ``bits(n_out − 1)`` bits and a ``w_bits`` weight (``bits(x)``: bits of an unsigned number up to
    ``x``, at least 1). This is the CSR of the artifact; the core's memories at one lane hold the
    same plus one flag bit per row pointer (``memory_bits``, docs/metrics.md).
    """

    def bits(value: int) -> int:
        return max(1, int(value).bit_length())

    return sum(
        (layer.n_in + 1) * bits(layer.nnz) + layer.nnz * (bits(layer.n_out - 1) + layer.w_bits)
        for layer in model.layers
    )


def connection_sparsity(model: Model) -> float:
    """NeuroBench ``ConnectionSparsity``: zero weights over all weights of all layers (unrounded)."""
    total = sum(layer.n_in * layer.n_out for layer in model.layers)
    nonzero = sum(int(np.count_nonzero(layer.weight)) for layer in model.layers)
    return (total - nonzero) / total


@dataclass(frozen=True)
class WorkloadCounts:
    """What NeuroBench's workload metrics count, summed over the samples seen so far.

    ``spikes`` and ``activations`` (neuron outputs, non-zero and all) give ``ActivationSparsity``;
    ``effective_macs``, ``effective_acs`` and ``dense`` are operations, summed over the samples.
    """

    samples: int = 0
    spikes: int = 0
    activations: int = 0
    effective_macs: int = 0
    effective_acs: int = 0
    dense: int = 0

    def __add__(self, other: WorkloadCounts) -> WorkloadCounts:
        return WorkloadCounts(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    @property
    def activation_sparsity(self) -> float:
        """NeuroBench ``ActivationSparsity`` (0.0 when there are no activations, as NeuroBench)."""
        return (self.activations - self.spikes) / self.activations if self.activations else 0.0

    @property
    def synaptic_operations(self) -> dict[str, float]:
        """NeuroBench ``SynapticOperations``: operations per sample (zeros before any sample)."""
        if not self.samples:
            return {"Effective_MACs": 0, "Effective_ACs": 0, "Dense": 0}
        return {
            "Effective_MACs": self.effective_macs / self.samples,
            "Effective_ACs": self.effective_acs / self.samples,
            "Dense": self.dense / self.samples,
        }


def workload_counts(model: Model, input_spikes: np.ndarray, trace: Trace) -> WorkloadCounts:
    """The counts of one batch: ``input_spikes`` ``[T, B, n_in]`` as fed to the first layer (the
    encoder's spikes; any integers, for NeuroBench's AC/MAC rule) and the reference's ``trace``."""
    inputs = np.asarray(input_spikes)
    steps, batch = inputs.shape[:2]
    operations = {True: 0, False: 0}  # effective operations of AC (spiking) and MAC calls
    dense = 0
    for layer_input, layer in zip([inputs, *trace.spikes], model.layers, strict=True):
        fanout = nonzero_fanout(layer)
        for step_input in layer_input:  # one call of the layer, as NeuroBench's hook sees it
            spiking = bool(np.isin(step_input, (-1, 0, 1)).all())
            operations[spiking] += int(np.count_nonzero(step_input, axis=0) @ fanout)
        dense += steps * batch * layer.n_in * layer.n_out
    return WorkloadCounts(
        samples=batch,
        spikes=sum(int(np.count_nonzero(spikes)) for spikes in trace.spikes),
        activations=sum(int(spikes.size) for spikes in trace.spikes),
        effective_macs=operations[False],
        effective_acs=operations[True],
        dense=dense,
    )


def neurobench_metrics(model: Model, counts: WorkloadCounts) -> dict[str, Any]:
    """The ``neurobench`` object of the reports: NeuroBench's metrics under its names, then esl-hw's
    ``csr_bits``, the ``samples`` counted and the neurobench version the definitions follow."""
    return {
        "Footprint": footprint(model),
        "ConnectionSparsity": connection_sparsity(model),
        "ActivationSparsity": counts.activation_sparsity,
        "SynapticOperations": counts.synaptic_operations,
        "csr_bits": csr_bits(model),
        "samples": counts.samples,
        "neurobench_version": NEUROBENCH_VERSION,
    }


def evaluate(model: Model, images: np.ndarray, batch_size: int = 2000) -> tuple[dict[str, Any], np.ndarray]:
    """Run the reference on ``images`` (``[N, n_in]`` uint8) in batches within its memory budget;
    return :func:`neurobench_metrics` over them and the predicted class of each image."""
    batch_size = batch_for(model, batch_size)
    counts, predictions = WorkloadCounts(), []
    for start in range(0, len(images), batch_size):
        spikes = encode(images[start : start + batch_size], model.timesteps, model.encoder)
        trace = run(model, spikes, record_potentials=False)
        counts += workload_counts(model, spikes, trace)
        predictions.append(trace.predictions)
    predicted = np.concatenate(predictions) if predictions else np.zeros(0, dtype=np.int64)
    return neurobench_metrics(model, counts), predicted
