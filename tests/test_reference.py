"""The numpy reference against a naive event-by-event model written from docs/semantics.md."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_model

from esl_hw.artifact import Model, layer_from_dense
from esl_hw.encoding import encode
from esl_hw.reference import accuracy, argmax_lowest, leak, lif_step, predict, run, sample_mismatches


def _floor_leak(value: int, shift: int | None) -> int:
    return value if shift is None else value - (value // (1 << shift))


def naive_run(model: Model, spikes: np.ndarray) -> tuple[list, list, list[int]]:
    """One sample ``[T, n_in]``, with Python integers and a CSR walk per event (docs/semantics.md:
    bias every step, lif and cubalif, reset to zero or by subtraction)."""
    hidden = model.hidden_layers
    potential = [[0] * layer.n_out for layer in hidden]
    synaptic = [[0] * layer.n_out for layer in hidden]
    acc = [0] * model.n_outputs
    spike_log, potential_log = [], []

    def currents(layer, events: list[int]) -> list[int]:
        current = [0] * layer.n_out if layer.bias is None else [int(b) for b in layer.bias]
        for j in events:
            for s in range(layer.row_ptr[j], layer.row_ptr[j + 1]):
                current[layer.col[s]] += int(layer.weight[s])
        return current

    for step in spikes:
        events = [j for j, bit in enumerate(step) if bit]
        step_spikes, step_potentials = [], []
        for index, layer in enumerate(hidden):
            current = currents(layer, events)
            low, high = -(1 << (layer.v_bits - 1)), (1 << (layer.v_bits - 1)) - 1
            fired = []
            for i in range(layer.n_out):
                drive = current[i]
                if layer.kind == "cubalif":
                    c = _floor_leak(synaptic[index][i], layer.syn_shift) + current[i]
                    synaptic[index][i] = drive = min(max(c, low), high)
                u = min(max(_floor_leak(potential[index][i], layer.leak_shift) + drive, low), high)
                if u >= layer.threshold:
                    fired.append(i)
                    u = u - layer.threshold if layer.reset == "subtract" else 0
                potential[index][i] = u
            step_spikes.append(fired)
            step_potentials.append(list(potential[index]))
            events = fired
        for i, value in enumerate(currents(model.output_layer, events)):
            acc[i] += value
        spike_log.append(step_spikes)
        potential_log.append(step_potentials)
    return spike_log, potential_log, acc


@pytest.mark.parametrize("case", range(24))
def test_reference_matches_naive_model_exactly(case: int) -> None:
    """v1 semantics (cases 0-11) and every v2 option: bias, subtractive reset, cubalif (12-23)."""
    rng = np.random.default_rng(case)
    sizes = [(15, 9, 3), (10, 8, 6, 4), (7, 5, 2)][case % 3]
    leak_shift = [None, 1, 3][case % 3]
    options = {}
    if case >= 12:
        options = {
            "bias": case % 2 == 0,
            "reset": ["zero", "subtract"][(case // 2) % 2],
            "kind": ["lif", "cubalif", "cubalif"][case % 3],
            "syn_shift": [None, 2, 1][(case // 3) % 3],
        }
    model = random_model(
        rng,
        sizes,
        timesteps=6,
        w_bits=[4, 6, 8][case % 3],
        v_bits=[6, 8, 12][case % 3],
        leak_shift=leak_shift,
        density=[0.2, 0.6, 1.0][case % 3],
        **options,
    )
    assert all(layer.kind == options.get("kind", "lif") for layer in model.hidden_layers)
    spikes = rng.random((6, 4, model.n_inputs)) < 0.5
    trace = run(model, spikes)
    fired = 0  # case 2 and 14 (thresholds up to 2^10 against 8-bit weights) fire nothing
    for sample in range(4):
        spike_log, potential_log, acc = naive_run(model, spikes[:, sample])
        for t in range(6):
            for index in range(len(model.hidden_layers)):
                assert np.flatnonzero(trace.spikes[index][t, sample]).tolist() == spike_log[t][index]
                assert trace.potentials[index][t, sample].tolist() == potential_log[t][index]
                fired += len(spike_log[t][index])
        assert trace.outputs[sample].tolist() == acc
        assert trace.predictions[sample] == int(np.argmax(acc))
    assert fired > 0 or case % 12 == 2


def test_bias_drives_neurons_without_input_spikes() -> None:
    """A bias is a current every step: with no input spikes at all, a biased neuron integrates it
    (8 per step, threshold 20: fires at step 3 and 6 with reset to zero; with subtraction the
    remainder carries over) and the output layer adds its bias T times."""
    dense = np.zeros((3, 2), dtype=np.int64)
    outputs = {}
    for reset in ("zero", "subtract"):
        hidden = layer_from_dense(dense, "lif", 4, 8, 20, None, bias=np.array([8, -3]), reset=reset)
        output = layer_from_dense(np.ones((2, 2), dtype=np.int64), "output", 4, bias=np.array([5, -1]))
        trace = run(Model((hidden, output), 7), np.zeros((7, 1, 3), dtype=bool))
        outputs[reset] = trace.potentials[0][:, 0, 0].tolist()
        np.testing.assert_array_equal(trace.potentials[0][:, 0, 1], -3 * np.arange(1, 8))
        fired = trace.spikes[0][:, 0, 0].sum()
        np.testing.assert_array_equal(trace.outputs[0], [7 * 5 + fired, 7 * -1 + fired])
    assert outputs["zero"] == [8, 16, 0, 8, 16, 0, 8]
    assert outputs["subtract"] == [8, 16, 4, 12, 0, 8, 16]


def test_cubalif_current_decays_into_the_membrane() -> None:
    """One input spike at step 0 of weight 64, synaptic shift 1 (c: 64, 32, 16, 8, ...), no membrane
    leak, threshold 100: v = 64, 96, 112 → fires at step 2 (subtract: 12), then 12+8 = 20, ..."""
    hidden = layer_from_dense(np.array([[64]]), "cubalif", 8, 10, 100, None, reset="subtract", syn_shift=1)
    output = layer_from_dense(np.array([[1]]), "output", 8)
    spikes = np.zeros((6, 1, 1), dtype=bool)
    spikes[0] = True
    trace = run(Model((hidden, output), 6), spikes)
    assert trace.potentials[0][:, 0, 0].tolist() == [64, 96, 12, 20, 24, 26]
    assert trace.spikes[0][:, 0, 0].tolist() == [False, False, True, False, False, False]


def test_leak_is_an_arithmetic_floor_shift() -> None:
    values = np.array([-5, -4, -3, -1, 0, 1, 3, 7])
    assert leak(values, 1).tolist() == [-2, -2, -1, 0, 0, 1, 2, 4]
    assert leak(values, None).tolist() == values.tolist()


def test_lif_step_saturates_then_thresholds_and_resets() -> None:
    layer = layer_from_dense(np.array([[1, 1, 1]]), "lif", w_bits=4, v_bits=6, threshold=20, leak_shift=None)
    potential = np.array([[10, -30, 19]])
    current = np.array([[100, -100, 0]])
    fired, after = lif_step(potential, current, layer)
    assert fired.tolist() == [[True, False, False]]
    assert after.tolist() == [[0, -32, 19]]


def test_argmax_ties_go_to_the_lowest_index() -> None:
    assert argmax_lowest(np.array([[3, 7, 7, 1], [-1, -1, -1, -1]])).tolist() == [1, 0]


def test_run_rejects_mismatched_input_shape(rng: np.random.Generator) -> None:
    model = random_model(rng)
    with pytest.raises(ValueError, match="do not match"):
        run(model, np.zeros((model.timesteps + 1, 1, model.n_inputs), dtype=bool))


def test_predict_in_batches_equals_one_batch(rng: np.random.Generator) -> None:
    model = random_model(rng, (16, 10, 3), timesteps=4)
    images = rng.integers(0, 256, (25, 16), dtype=np.uint8)
    whole = run(model, encode(images, 4)).predictions
    assert predict(model, images, batch_size=7).tolist() == whole.tolist()
    labels = whole.copy()
    labels[:5] = (labels[:5] + 1) % 3
    assert accuracy(model, images, labels) == pytest.approx(20 / 25)


def test_sample_mismatches_flags_exactly_the_altered_samples(rng: np.random.Generator) -> None:
    model = random_model(rng, (12, 8, 6, 3), timesteps=4)
    spikes = rng.random((4, 5, 12)) < 0.5
    expected = run(model, spikes)
    assert not sample_mismatches(expected, run(model, spikes)).any()
    altered = run(model, spikes)
    altered.potentials[1][3, 2, 0] += 1
    altered.spikes[0][0, 4, 1] ^= True
    altered.outputs[0, 2] -= 1
    assert sample_mismatches(expected, altered).tolist() == [True, False, True, False, True]


def test_batches_stay_within_the_memory_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from esl_hw import reference
    from esl_hw.errors import EslError

    model = random_model(np.random.default_rng(2), (20, 12, 4), timesteps=5)
    images = np.random.default_rng(3).integers(0, 256, (50, 20), dtype=np.uint8)
    expected = reference.predict(model, images)
    budget = reference.weight_bytes(model) + 7 * reference.sample_bytes(model, record_potentials=False)
    monkeypatch.setattr(reference, "REFERENCE_MEMORY_BYTES", budget)
    assert reference.batch_for(model, 2000) == 7
    np.testing.assert_array_equal(reference.predict(model, images), expected)
    monkeypatch.setattr(reference, "REFERENCE_MEMORY_BYTES", reference.weight_bytes(model))
    with pytest.raises(EslError, match="GiB budget"):
        reference.predict(model, images)
