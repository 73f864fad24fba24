"""NeuroBench's metrics computed by esl-hw (esl_hw/neurobench_metrics.py).

A network small enough to count by hand pins every rule; then the ``neurobench`` package (2.3.0,
an optional extra: these tests skip when it cannot be imported) measures the same network as a
torch module, on the same input spikes, and must report the same figures.

The torch module is the artifact as NeuroBench sees it (esl_hw/neurobench_metrics.py): one
``nn.Linear`` per layer with the integer weights as float32 (and the bias where a layer has one),
each hidden layer followed by :class:`ReferenceNeurons`, the reference's own neuron kind stepped
once per call and registered with NeuroBench as an activation module. NeuroBench's
``SNNTorchModel`` feeds it the rate encoder's spikes ``[B, T, n_in]`` (0.0/1.0, float32) one step
per call, the input the core receives, so every layer, the first included, counts ACs.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
import torch
from conftest import random_layer, random_model
from torch import nn

from esl_hw.artifact import Layer, Model, layer_from_dense
from esl_hw.encoding import encode
from esl_hw.metrics import synaptic_ops
from esl_hw.neurobench_metrics import (
    WorkloadCounts,
    connection_sparsity,
    csr_bits,
    evaluate,
    footprint,
    neurobench_metrics,
    nonzero_fanout,
    workload_counts,
)
from esl_hw.neuron_kinds import neuron_kind
from esl_hw.reference import Trace, predict, run

NEUROBENCH_MISSING = (
    "neurobench is not installed (pip install --no-deps neurobench==2.3.0, then "
    "pip install -e '.[neurobench]'; README 'NeuroBench metrics')"
)


def tiny_model() -> Model:
    """3-2-2 network, T=2: layer 0 has a synapse of weight 0 (0→1), layer 1 three of them."""
    hidden = layer_from_dense(
        np.array([[1, 0], [2, -1], [0, 0]]),
        "lif",
        w_bits=4,
        v_bits=8,
        threshold=1,
        leak_shift=None,
        mask=np.array([[True, True], [True, True], [False, False]]),
    )
    output = layer_from_dense(np.array([[3, 0], [0, 0]]), "output", w_bits=4, mask=np.ones((2, 2), bool))
    return Model((hidden, output), timesteps=2)


def tiny_trace(hidden_spikes: list[list[int]]) -> Trace:
    """A trace of one sample whose hidden layer spiked ``hidden_spikes`` (``[T][N]``)."""
    spikes = np.array(hidden_spikes, dtype=bool)[:, None, :]
    return Trace([spikes], [spikes.astype(np.int64)], np.zeros((1, 2), np.int64), np.zeros(1, np.int64))


def test_static_metrics_count_by_hand() -> None:
    model = tiny_model()
    assert [layer.nnz for layer in model.layers] == [4, 4]
    assert nonzero_fanout(model.layers[0]).tolist() == [1, 2, 0]
    assert nonzero_fanout(model.layers[1]).tolist() == [1, 0]
    # 10 weights, 4 of them non-zero: the synapses of weight 0 are zeros to NeuroBench.
    assert connection_sparsity(model) == 6 / 10
    assert footprint(model) == 4 * 10  # float32, no bias
    # (n_in+1)·bits(nnz) + nnz·(bits(n_out−1) + w_bits): (4·3 + 4·5) + (3·3 + 4·5)
    assert csr_bits(model) == 32 + 29


def test_synaptic_operations_count_nonzero_weights_per_received_spike() -> None:
    model = tiny_model()
    inputs = np.array([[[1, 1, 0]], [[0, 1, 1]]], dtype=bool)  # [T=2, B=1, 3]
    trace = tiny_trace([[1, 0], [1, 1]])
    counts = workload_counts(model, inputs, trace)
    # layer 0: t0 inputs 0,1 -> 1 + 2; t1 inputs 1,2 -> 2 + 0. layer 1: t0 neuron 0 -> 1; t1 -> 1 + 0.
    assert counts == WorkloadCounts(
        samples=1, spikes=3, activations=4, effective_macs=0, effective_acs=7, dense=2 * (6 + 4)
    )
    assert counts.synaptic_operations == {"Effective_MACs": 0.0, "Effective_ACs": 7.0, "Dense": 20.0}
    assert counts.activation_sparsity == 1 / 4
    # The core's own SOPs count the synapses of weight 0 too: (2+2) + (2+0) and 2 + (2+2).
    assert synaptic_ops(model, inputs, trace).tolist() == [[6, 6]]


def test_a_step_with_non_binary_input_counts_macs() -> None:
    model = tiny_model()
    inputs = np.array([[[2, 1, 0]], [[0, 1, 1]]])  # a pixel value at t0: that call is MACs
    counts = workload_counts(model, inputs, tiny_trace([[1, 0], [1, 1]]))
    assert (counts.effective_macs, counts.effective_acs) == (3, 4)
    # -1 counts as a spike (NeuroBench: every value in {-1, 0, 1})
    counts = workload_counts(model, -inputs.clip(0, 1), tiny_trace([[1, 0], [1, 1]]))
    assert (counts.effective_macs, counts.effective_acs) == (0, 7)


def test_counts_add_over_batches_and_no_activity_is_no_operation() -> None:
    model = tiny_model()
    one = workload_counts(model, np.zeros((2, 1, 3), bool), tiny_trace([[0, 0], [0, 0]]))
    assert one == WorkloadCounts(samples=1, activations=4, dense=20)
    assert one.activation_sparsity == 1.0
    two = one + workload_counts(model, np.ones((2, 1, 3), bool), tiny_trace([[1, 1], [1, 1]]))
    assert two == WorkloadCounts(samples=2, spikes=4, activations=8, effective_acs=3 * 2 + 1 * 2, dense=40)
    assert two.synaptic_operations["Effective_ACs"] == 4.0
    assert WorkloadCounts().synaptic_operations == {"Effective_MACs": 0, "Effective_ACs": 0, "Dense": 0}
    assert WorkloadCounts().activation_sparsity == 0.0


def test_evaluate_equals_the_reference_in_any_batching(rng: np.random.Generator) -> None:
    model = random_model(rng, (20, 12, 7, 4), timesteps=5)
    images = rng.integers(0, 256, (23, 20), dtype=np.uint8)
    metrics, predictions = evaluate(model, images)
    assert predictions.tolist() == predict(model, images).tolist()
    assert evaluate(model, images, batch_size=4)[0] == metrics
    spikes = encode(images, model.timesteps, model.encoder)
    trace = run(model, spikes, record_potentials=False)
    assert metrics == neurobench_metrics(model, workload_counts(model, spikes, trace))
    assert metrics["samples"] == 23 and metrics["neurobench_version"] == "2.3.0"
    assert metrics["SynapticOperations"]["Effective_MACs"] == 0.0
    hidden = sum(layer.n_out for layer in model.hidden_layers)
    fired = sum(int(layer.sum()) for layer in trace.spikes)
    assert metrics["ActivationSparsity"] == 1 - fired / (5 * 23 * hidden)
    dense = 5 * sum(layer.n_in * layer.n_out for layer in model.layers)
    assert metrics["SynapticOperations"]["Dense"] == dense


def test_csr_bits_are_the_core_pointer_and_synapse_memories_less_the_flag_bits(
    rng: np.random.Generator,
) -> None:
    from esl_hw.rtl_gen.plan import memory_bits

    model = random_model(rng, (20, 12, 7, 4), timesteps=5)
    bits = memory_bits(model, lanes=1)
    flags = sum(layer.n_in + 1 for layer in model.layers)
    assert csr_bits(model) == bits["row_pointers"] + bits["synapses"] - flags


def test_bias_adds_to_the_footprint_not_to_the_operations() -> None:
    if "bias" not in Layer.__dataclass_fields__:
        pytest.skip("this artifact format has no bias")
    model = tiny_model()
    hidden = layer_from_dense(
        model.layers[0].dense_weight(),
        "lif",
        w_bits=4,
        v_bits=8,
        threshold=1,
        leak_shift=None,
        mask=np.array([[True, True], [True, True], [False, False]]),
        bias=np.array([5, -3]),
    )
    biased = Model((hidden, model.layers[1]), timesteps=2)
    assert footprint(biased) == footprint(model) + 4 * 2
    assert connection_sparsity(biased) == connection_sparsity(model)
    inputs, trace = np.ones((2, 1, 3), bool), tiny_trace([[1, 0], [1, 1]])
    assert workload_counts(biased, inputs, trace) == workload_counts(model, inputs, trace)


def test_footprint_is_float64_when_a_weight_exceeds_float32() -> None:
    big = layer_from_dense(np.array([[1 << 25, 1]]), "output", w_bits=27)
    assert footprint(Model((big,), timesteps=1)) == 8 * 2


# ---------------------------------------------------------------- NeuroBench itself


class ReferenceNeurons(nn.Module):
    """The reference's neurons of one hidden layer (:mod:`esl_hw.neuron_kinds`), one step per call.

    Takes the current ``[B, n_out]`` (integer-valued float), returns the spikes (0.0/1.0); keeps the
    state between calls until :meth:`reset`. No parameters or buffers.
    """

    def __init__(self, layer: Layer) -> None:
        super().__init__()
        self.layer, self.kind, self.state = layer, neuron_kind(layer.kind), None

    def reset(self) -> None:
        self.state = None

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        values = current.detach().to(torch.float64).numpy()
        integers = np.rint(values).astype(np.int64)
        assert np.array_equal(integers, values), "float32 currents must be exact integers"
        if self.state is None:
            self.state = self.kind.initial_state(self.layer, len(integers))
        spikes, self.state = self.kind.step(self.state, integers, self.layer)
        return torch.from_numpy(spikes.astype(np.float32))


class ArtifactNet(nn.Module):
    """The artifact as NeuroBench sees it: ``Linear`` layers, :class:`ReferenceNeurons` between them.

    ``forward`` is one time step (``[B, n_in]`` in), returning the output layer's current twice, as
    NeuroBench's ``SNNTorchModel`` expects ``(spikes, state)``.
    """

    def __init__(self, model: Model) -> None:
        super().__init__()
        self.fcs = nn.ModuleList()
        for layer in model.layers:
            bias = getattr(layer, "bias", None)
            fc = nn.Linear(layer.n_in, layer.n_out, bias=bias is not None)
            with torch.no_grad():
                fc.weight.copy_(torch.from_numpy(layer.dense_weight().T.astype(np.float32)))
                if bias is not None:
                    fc.bias.copy_(torch.from_numpy(np.asarray(bias, dtype=np.float32)))
            self.fcs.append(fc)
        self.neurons = nn.ModuleList(ReferenceNeurons(layer) for layer in model.hidden_layers)

    def reset(self) -> None:
        for neurons in self.neurons:
            neurons.reset()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for fc, neurons in zip(self.fcs, self.neurons, strict=False):
            x = neurons(fc(x))
        output = self.fcs[-1](x)
        return output, output


def neurobench_results(model: Model, inputs: np.ndarray, batch_size: int) -> dict:
    """NeuroBench's Footprint, ConnectionSparsity, ActivationSparsity and SynapticOperations of
    :class:`ArtifactNet` on ``inputs`` ``[T, N, n_in]``, fed as ``[N, T, n_in]`` float32."""
    pytest.importorskip("neurobench.benchmarks", reason=NEUROBENCH_MISSING, exc_type=ImportError)
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, Footprint
    from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
    from neurobench.models import SNNTorchModel
    from torch.utils.data import DataLoader, TensorDataset

    data = torch.from_numpy(np.ascontiguousarray(inputs.transpose(1, 0, 2)).astype(np.float32))
    loader = DataLoader(TensorDataset(data, torch.zeros(len(data))), batch_size=batch_size)
    wrapped = SNNTorchModel(ArtifactNet(model))
    wrapped.add_activation_module(ReferenceNeurons)  # before Benchmark registers its hooks
    metrics = [[Footprint, ConnectionSparsity], [ActivationSparsity, SynapticOperations]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Benchmark(wrapped, loader, [], [], metrics).run(quiet=True)


def hidden_spikes(model: Model, inputs: np.ndarray) -> list[np.ndarray]:
    """The spikes :class:`ArtifactNet` fires on ``inputs`` ``[T, B, n_in]``, ``[T, B, N]`` per layer."""
    net, record = ArtifactNet(model), [[] for _ in model.hidden_layers]
    for index, neurons in enumerate(net.neurons):
        neurons.register_forward_hook(lambda _m, _i, out, index=index: record[index].append(out.numpy() != 0))
    with torch.no_grad():
        for step in inputs:
            net(torch.from_numpy(step.astype(np.float32)))
    return [np.stack(steps) for steps in record]


def check_against_neurobench(model: Model, inputs: np.ndarray, trace: Trace, batch_size: int = 7) -> dict:
    """Ours on ``inputs`` and ``trace`` against NeuroBench's; return NeuroBench's results."""
    results = neurobench_results(model, inputs, batch_size)
    ours = neurobench_metrics(model, workload_counts(model, inputs, trace))
    assert results["Footprint"] == ours["Footprint"]
    assert results["ConnectionSparsity"] == round(ours["ConnectionSparsity"], 4)  # NeuroBench rounds
    # NeuroBench averages per-batch ratios weighted by batch size: the same fraction, up to rounding.
    assert results["ActivationSparsity"] == pytest.approx(ours["ActivationSparsity"], rel=0, abs=1e-12)
    assert results["SynapticOperations"] == ours["SynapticOperations"]  # integer totals / samples
    return results


@pytest.mark.parametrize("extras", ["plain", "bias-cubalif-subtract"])
def test_neurobench_measures_the_same_on_the_encoded_spikes(rng: np.random.Generator, extras: str) -> None:
    if extras == "plain":
        model = random_model(rng, (20, 12, 7, 4), timesteps=5, density=0.5)
    else:
        if "bias" not in inspect.signature(random_layer).parameters:
            pytest.skip("this artifact format has no bias, cubalif or reset by subtraction")
        layers = (
            random_layer(rng, 20, 12, kind="cubalif", syn_shift=1, reset="subtract", bias=True, density=0.5),
            random_layer(rng, 12, 7, bias=True, density=0.5),
            random_layer(rng, 7, 4, kind="output", bias=True),
        )
        model = Model(layers, timesteps=5)
    images = rng.integers(0, 256, (30, 20), dtype=np.uint8)
    inputs = encode(images, model.timesteps, model.encoder)
    trace = run(model, inputs, record_potentials=False)
    for expected, got in zip(trace.spikes, hidden_spikes(model, inputs), strict=True):
        assert np.array_equal(expected, got)  # the torch module is the reference, spike for spike
    assert 0 < sum(int(spikes.sum()) for spikes in trace.spikes) < sum(s.size for s in trace.spikes)
    results = check_against_neurobench(model, inputs, trace)
    assert results["SynapticOperations"]["Effective_MACs"] == 0  # binary input: ACs only
    assert results["SynapticOperations"]["Effective_ACs"] > 0


def test_neurobench_counts_macs_for_pixels_fed_as_input(rng: np.random.Generator) -> None:
    model = random_model(rng, (20, 12, 4), timesteps=3, density=0.5)
    pixels = np.repeat(rng.integers(0, 4, (1, 10, 20)), 3, axis=0)  # direct input, values 0..3
    trace = Trace(hidden_spikes(model, pixels), [], np.zeros(0), np.zeros(0))
    results = check_against_neurobench(model, pixels, trace, batch_size=10)
    assert results["SynapticOperations"]["Effective_MACs"] > 0  # the first layer's calls
    assert results["SynapticOperations"]["Effective_ACs"] > 0  # the spikes after it
