"""Hidden layer core (lif, cubalif; bias, reset) against the reference arithmetic, Amaranth simulator."""

from __future__ import annotations

import numpy as np
import pytest
from rtl_support import random_layer, simulate_layer, step_events

from esl_hw.artifact import Model, layer_from_dense
from esl_hw.neuron_kinds import neuron_kind
from esl_hw.rtl_gen.lif import LifLayerCore
from esl_hw.rtl_gen.plan import plan_model


def reference_layer(layer, spikes: np.ndarray):
    """Per step spikes and potentials of one LIF layer on input spikes ``[T, n_in]``: the oracle is
    the reference's step of the layer's kind (:mod:`esl_hw.neuron_kinds`), the one source of truth."""
    kind = neuron_kind(layer.kind)
    state = kind.initial_state(layer, 1)
    dense = layer.dense_weight()
    bias = np.zeros(layer.n_out, dtype=np.int64) if layer.bias is None else layer.bias
    out_spikes, potentials = [], []
    for step in spikes:
        current = step.astype(np.int64) @ dense + bias
        fired, state = kind.step(state, current[None, :], layer)
        out_spikes.append(fired[0])
        potentials.append(kind.potential(state)[0].copy())
    return np.array(out_spikes), np.array(potentials)


def lif_core(layer, timesteps: int, output_layer=None, lanes: int = 1, **depths) -> LifLayerCore:
    output_layer = output_layer or layer_from_dense(np.ones((layer.n_out, 1), dtype=np.int64), "output", 2)
    model = Model((layer, output_layer), timesteps=timesteps)
    return LifLayerCore(plan_model(model, lanes)[0], **depths)


def check_layer(
    layer, spikes: np.ndarray, gaps: bool, seed: int = 0, inferences: int = 1, lanes: int = 1, **depths
) -> tuple[int, np.ndarray]:
    timesteps = len(spikes)
    core = lif_core(layer, timesteps, lanes=lanes, **depths)
    stream = step_events(spikes) * inferences
    records, cycles = simulate_layer(core, stream, gaps=gaps, seed=seed)
    want_spikes, want_potentials = reference_layer(layer, spikes)
    for inference in range(inferences):
        got_spikes = np.zeros_like(want_spikes)
        got_potentials = np.zeros_like(want_potentials)
        taps = records["tap"][inference * timesteps * layer.n_out : (inference + 1) * timesteps * layer.n_out]
        assert sorted((step, index) for step, index, _, _ in taps) == [
            (step, index) for step in range(timesteps) for index in range(layer.n_out)
        ]
        for step, index, potential, spike in taps:
            got_spikes[step, index] = spike
            got_potentials[step, index] = potential
        np.testing.assert_array_equal(got_spikes, want_spikes)
        np.testing.assert_array_equal(got_potentials, want_potentials)
    expected_events = []
    for _ in range(inferences):
        for step in want_spikes:
            expected_events += [(int(index), 0) for index in np.flatnonzero(step)] + [(0, 1)]
    assert records["out"] == expected_events
    return cycles, want_potentials


@pytest.mark.parametrize("leak_shift", [None, 1, 3])
@pytest.mark.parametrize(("gaps", "lanes"), [(False, 1), (True, 1), (True, 4), (False, 8)])
def test_lif_core_matches_reference(leak_shift, gaps, lanes) -> None:
    # Small v_bits and large weights: saturation at both ends and negative potentials.
    rng = np.random.default_rng(7 if leak_shift is None else leak_shift)
    layer = random_layer(rng, 10, 9, 0.5, w_bits=7, v_bits=7, threshold=30, leak_shift=leak_shift)
    spikes = rng.random((6, 10)) < 0.5
    _, potentials = check_layer(layer, spikes, gaps=gaps, seed=leak_shift or 0, inferences=2, lanes=lanes)
    assert (potentials == -64).any(), "the test should saturate at the negative end"
    assert (potentials < 0).any() and (potentials > 0).any()


def test_lif_core_saturates_both_ways() -> None:
    dense = np.array([[60, -60], [60, -60], [60, -60], [60, -60]])
    layer = layer_from_dense(dense, "lif", 8, v_bits=8, threshold=127, leak_shift=None)
    spikes = np.ones((3, 4), dtype=bool)
    check_layer(layer, spikes, gaps=False)


def test_back_to_back_hits_on_one_neuron_need_no_bubble() -> None:
    # Every input hits neuron 0 (and some hit neuron 1 right after): read-modify-write hazards.
    n_in = 24
    dense = np.zeros((n_in, 3), dtype=np.int64)
    dense[:, 0] = np.arange(1, n_in + 1)
    dense[::2, 1] = -3
    layer = layer_from_dense(dense, "lif", 6, v_bits=16, threshold=30000, leak_shift=None)
    spikes = np.ones((1, n_in), dtype=bool)
    cycles, _ = check_layer(layer, spikes, gaps=False)
    # SOPs + sweep + a fixed pipeline fill and drain (lane FIFO, integrator, read-modify-write,
    # sweep, spike-mask buffers, spike serializer: 23 cycles): no per-synapse or per-event bubble.
    assert cycles <= layer.nnz + layer.n_out + 23


@pytest.mark.parametrize("lanes", [2, 4, 8, 16])
def test_lanes_share_the_work_without_bubbles(lanes) -> None:
    # Full rows over 32 neurons: every lane gets 32 / L synapses of every row.
    n_in, n_out = 20, 32
    dense = np.arange(n_in * n_out).reshape(n_in, n_out) % 7 - 3
    layer = layer_from_dense(dense, "lif", 4, v_bits=12, threshold=40, leak_shift=2, mask=dense == dense)
    spikes = np.ones((2, n_in), dtype=bool)
    cycles, _ = check_layer(layer, spikes, gaps=False, lanes=lanes)
    floor = (2 * layer.nnz + 2 * n_out) / lanes
    # Per step: a fixed pipeline fill and drain of a few cycles, nothing per synapse or per event.
    assert cycles <= floor + 2 * 22


def test_sweep_stalls_on_a_full_spike_fifo_without_losing_spikes() -> None:
    # Every neuron spikes every step, the output stream is often not ready, the mask FIFO is tiny.
    dense = np.full((3, 24), 50)
    layer = layer_from_dense(dense, "lif", 8, v_bits=8, threshold=10, leak_shift=1)
    spikes = np.ones((4, 3), dtype=bool)
    check_layer(layer, spikes, gaps=True, seed=3, lanes=4, spike_fifo_depth=2, lane_fifo_depth=2)


def test_lif_core_with_empty_and_full_rows() -> None:
    rng = np.random.default_rng(3)
    mask = rng.random((12, 8)) < 0.4
    mask[2] = False
    mask[5] = True
    mask[11] = False
    dense = rng.integers(-40, 40, (12, 8)) * mask
    layer = layer_from_dense(dense, "lif", 7, v_bits=9, threshold=50, leak_shift=2, mask=mask)
    spikes = rng.random((5, 12)) < 0.6
    spikes[:, [2, 11]] = True
    check_layer(layer, spikes, gaps=True, seed=5)


def test_lif_core_rejects_output_plan() -> None:
    layer = layer_from_dense(np.ones((2, 2), dtype=np.int64), "lif", 4, v_bits=8, threshold=3)
    model = Model((layer, layer_from_dense(np.ones((2, 2), dtype=np.int64), "output", 4)), timesteps=2)
    with pytest.raises(ValueError, match="LIF layer"):
        LifLayerCore(plan_model(model)[1])


def test_lif_core_many_random_layers() -> None:
    rng = np.random.default_rng(2024)
    for case in range(25):
        v_bits = int(rng.integers(3, 13))
        leak_shift = None if rng.random() < 0.3 else int(rng.integers(1, v_bits))
        layer = random_layer(
            rng,
            int(rng.integers(1, 13)),
            int(rng.integers(1, 11)),
            float(rng.random()),
            w_bits=int(rng.integers(2, 9)),
            v_bits=v_bits,
            threshold=int(rng.integers(1, 1 << (v_bits - 1))),
            leak_shift=leak_shift,
        )
        spikes = rng.random((int(rng.integers(1, 6)), layer.n_in)) < rng.random()
        check_layer(layer, spikes, gaps=bool(case % 2), seed=case, lanes=[1, 2, 4, 8, 16][case % 5])


#: (kind, bias, reset, leak shift, synaptic shift, lanes, gaps)
OPTION_CASES = [
    ("lif", True, "zero", 2, None, 1, False),
    ("lif", True, "zero", None, None, 4, True),
    ("lif", False, "subtract", 1, None, 2, True),
    ("lif", True, "subtract", 3, None, 8, False),
    ("cubalif", False, "zero", 2, None, 1, False),
    ("cubalif", False, "zero", 1, 2, 2, True),
    ("cubalif", True, "subtract", None, 1, 4, True),
    ("cubalif", True, "zero", 3, 3, 16, False),
]


@pytest.mark.parametrize(("kind", "bias", "reset", "leak_shift", "syn_shift", "lanes", "gaps"), OPTION_CASES)
def test_layer_options_match_reference(kind, bias, reset, leak_shift, syn_shift, lanes, gaps) -> None:
    """Bias (also on steps without input spikes), subtractive reset and cubalif, two inferences
    back to back (the state, c included, cleared between them), saturating both ways."""
    rng = np.random.default_rng(len(kind) * 100 + lanes * 10 + (leak_shift or 0))
    params = {"v_bits": 7, "threshold": 25, "leak_shift": leak_shift, "reset": reset}
    if kind == "cubalif":
        params["syn_shift"] = syn_shift
    if bias:
        params["bias"] = rng.integers(-20, 21, 9)
    layer = random_layer(rng, 10, 9, 0.5, kind, w_bits=7, **params)
    spikes = rng.random((6, 10)) < 0.5
    spikes[2] = False  # a silent step: only the bias drives the neurons
    check_layer(layer, spikes, gaps=gaps, seed=lanes, inferences=2, lanes=lanes)
    fired, potentials = reference_layer(layer, spikes)
    assert fired.any() and (~fired).any() and (potentials < 0).any()
    if reset == "subtract":  # some potentials kept above 0 after a spike
        assert (potentials[fired] > 0).any()


def test_layer_options_many_random_layers() -> None:
    rng = np.random.default_rng(2025)
    for case in range(16):
        v_bits = int(rng.integers(3, 13))
        kind = ["lif", "cubalif"][case % 2]
        n_out = int(rng.integers(1, 11))
        params = {
            "v_bits": v_bits,
            "threshold": int(rng.integers(1, 1 << (v_bits - 1))),
            "leak_shift": None if rng.random() < 0.3 else int(rng.integers(1, v_bits)),
            "reset": ["zero", "subtract"][case // 2 % 2],
        }
        if kind == "cubalif":
            params["syn_shift"] = None if rng.random() < 0.3 else int(rng.integers(1, v_bits))
        if case // 4 % 2:
            params["bias"] = rng.integers(-(1 << v_bits), 1 << v_bits, n_out)
        layer = random_layer(
            rng,
            int(rng.integers(1, 13)),
            n_out,
            float(rng.random()),
            kind,
            w_bits=int(rng.integers(2, 9)),
            **params,
        )
        spikes = rng.random((int(rng.integers(1, 6)), layer.n_in)) < rng.random()
        check_layer(layer, spikes, gaps=bool(case % 3 == 0), seed=case, lanes=[1, 2, 4, 8, 16][case % 5])
