"""Inference, on-chip rewiring, memory read-back and inference again, co-simulated bit for bit.

One small model per simulator (a Verilator build takes ~25-60 s on the shared machine).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from rtl_support import random_layer
from sim_support import needs_icarus, needs_verilator

from esl_hw.artifact import Model
from esl_hw.encoding import encode
from esl_hw.errors import EslError
from esl_hw.reference import run
from esl_hw.sim.rewire_cosim import check_rewire, rewire_expectations, run_rewire_cosim
from esl_hw.sim.trace import TraceRecord


def small_model() -> Model:
    """16-10-4 with ties, an empty row, T=3, weights of 5 and 6 bits."""
    rng = np.random.default_rng(21)
    hidden = random_layer(rng, 16, 10, 0.5, w_bits=5, v_bits=8, threshold=12, leak_shift=2)
    output = random_layer(rng, 10, 4, 0.6, "output", w_bits=6)
    return Model((hidden, output), timesteps=3)


def cuba_model() -> Model:
    """16-10-4, T=3: a cubalif layer (synaptic decay, subtractive reset) and an output layer,
    both with a bias: rewiring touches the weights only."""
    rng = np.random.default_rng(22)
    bias = rng.integers(-4, 6, 10)
    hidden = random_layer(
        rng,
        16,
        10,
        0.5,
        "cubalif",
        w_bits=5,
        v_bits=8,
        threshold=12,
        leak_shift=2,
        syn_shift=1,
        reset="subtract",
        bias=bias,
    )
    output = random_layer(rng, 10, 4, 0.6, "output", w_bits=6, bias=rng.integers(-9, 9, 4))
    return Model((hidden, output), timesteps=3)


def images_for(model: Model, count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, model.n_inputs), dtype=np.uint8)


@pytest.mark.parametrize(
    ("simulator", "model_factory"),
    [
        pytest.param("icarus", small_model, marks=needs_icarus),
        pytest.param("verilator", small_model, marks=needs_verilator),
        pytest.param("icarus", cuba_model, marks=needs_icarus),
    ],
)
def test_inference_rewire_readback_inference(tmp_path, simulator, model_factory) -> None:
    model = model_factory()
    images = images_for(model, 5, seed=3)
    ks = [model.layers[0].nnz // 3, model.layers[1].nnz // 2]
    lanes = 2 if simulator == "icarus" else 4
    rewired, states = rewire_expectations(model, ks, 0x2468ACE, lanes)
    # the rewiring must matter for the images after the split, or the check proves nothing
    spikes = encode(images[2:], model.timesteps, model.encoder)
    assert (run(model, spikes).outputs != run(rewired, spikes).outputs).any()
    result, report = run_rewire_cosim(
        model, images, 2, ks, seed=0x2468ACE, simulator=simulator, build_dir=tmp_path, lanes=lanes
    )
    assert result.ok, (result.details, result.problems)
    assert result.mismatches == 0 and result.samples == 5
    assert report["rewires"] == [[layer, 0, state] for layer, state in enumerate(states)]
    assert report["memory_words"] == sum(len(words) for words in report_images(rewired, lanes))


def report_images(model: Model, lanes: int) -> list[list[int]]:
    from esl_hw.rtl_gen.memory_map import memory_images

    return memory_images(model, lanes)


def test_checker_flags_wrong_rewires_and_memory() -> None:
    model = small_model()
    images = images_for(model, 2, seed=4)
    ks, seed, lanes = [layer.nnz // 2 for layer in model.layers], 77, 2
    rewired, states = rewire_expectations(model, ks, seed, lanes)

    def reference_runs(models):
        return [run(m, encode(images[i : i + 1], m.timesteps, m.encoder)) for i, m in enumerate(models)]

    hidden = model.hidden_layers[0]

    def record(rewires, memory, models=(model, rewired)) -> TraceRecord:
        reference = reference_runs(models)
        return TraceRecord(
            spikes=[np.concatenate([ref.spikes[0] for ref in reference], axis=1)],
            potentials=[np.concatenate([ref.potentials[0] for ref in reference], axis=1)],
            tap_count=[np.ones((model.timesteps, 2, hidden.n_out), dtype=np.int64)],
            outputs=np.concatenate([ref.outputs for ref in reference]),
            output_count=np.ones((2, model.n_outputs), dtype=np.int64),
            predictions=np.concatenate([ref.predictions for ref in reference]),
            counters=[None, None],
            rewires=rewires,
            memory=memory,
        )

    words = [
        (mem, addr, word)
        for mem, image in enumerate(report_images(rewired, lanes))
        for addr, word in enumerate(image)
    ]
    config = {"trace_potentials": True, "rewire": {"split": 1, "ks": ks, "seed": seed, "lanes": lanes}}
    good = [(layer, 0, state) for layer, state in enumerate(states)]
    assert check_rewire(config, model, images, record(good, words))["ok"]
    wrong_state = [(0, 0, states[0] ^ 1), good[1]]
    assert not check_rewire(config, model, images, record(wrong_state, words))["ok"]
    changed = [*words[:-1], (*words[-1][:2], words[-1][2] ^ 1)]
    report = check_rewire(config, model, images, record(good, changed))
    assert not report["ok"] and "1 words differ" in report["problems"][0]
    # a core that did not rewire: its second image mismatches
    unchanged = reference_runs((model, model))[1].outputs
    assert (unchanged != reference_runs((model, rewired))[1].outputs).any()
    report = check_rewire(config, model, images, record(good, words, models=(model, model)))
    assert report["mismatched"] == [1] and not report["ok"]


def test_bad_requests_are_refused_before_building(tmp_path) -> None:
    model = small_model()
    images = images_for(model, 3, seed=5)
    excess = model.layers[1].nnz + 4
    with pytest.raises(EslError, match=f"layer 1: k = {excess} exceeds the layer's .* synapses by 4"):
        run_rewire_cosim(model, images, 1, [0, excess], build_dir=tmp_path)
    with pytest.raises(EslError, match="split must be in 1..2"):
        run_rewire_cosim(model, images, 3, [0, 0], build_dir=tmp_path)
    wide = dataclasses.replace(model.layers[1], w_bits=9)
    with pytest.raises(EslError, match="w_bits = 9 exceeds the rewiring unit's limit 8"):
        run_rewire_cosim(dataclasses.replace(model, layers=(model.layers[0], wide)), images, 1, [0, 0])
    assert not any(tmp_path.iterdir())
