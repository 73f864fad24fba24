"""The whole core in the Amaranth simulator against esl_hw.reference, plus Verilog emission."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from rtl_support import random_model, simulate_core, simulate_stream

from esl_hw.encoding import spike_events
from esl_hw.errors import EslError
from esl_hw.reference import run
from esl_hw.rtl_gen import SNNCore, counter_names, emit_verilog
from esl_hw.rtl_gen.hardware import HardwareConfig
from esl_hw.rtl_gen.plan import as_plan


def check_core(
    model,
    spikes: np.ndarray,
    gaps: bool,
    fifo_depth: int = 16,
    seed: int = 0,
    lanes: int = 1,
    streaming: bool = True,
):
    """Run the core (built with or without ``streaming``) on spikes ``[T, B, n_in]``, one sample at
    a time, and compare everything with the reference."""
    events = [spike_events(spikes[:, sample]) for sample in range(spikes.shape[1])]
    core = SNNCore(model, lanes=lanes, fifo_depth=fifo_depth, streaming=streaming)
    result = simulate_core(core, events, gaps=gaps, seed=seed)
    reference = run(model, spikes)
    for sample in range(spikes.shape[1]):
        layers = len(model.hidden_layers)
        got_spikes = [np.zeros_like(reference.spikes[layer][:, sample]) for layer in range(layers)]
        got_potentials = [np.zeros_like(reference.potentials[layer][:, sample]) for layer in range(layers)]
        for layer, step, index, potential, spike in result.taps[sample]:
            got_spikes[layer][step, index] = spike
            got_potentials[layer][step, index] = potential
        for layer in range(layers):
            np.testing.assert_array_equal(got_spikes[layer], reference.spikes[layer][:, sample])
            np.testing.assert_array_equal(got_potentials[layer], reference.potentials[layer][:, sample])
        assert len(result.taps[sample]) == model.timesteps * sum(layer.n_out for layer in model.hidden_layers)
        assert result.outputs[sample] == reference.outputs[sample].tolist()
        assert result.predictions[sample] == reference.predictions[sample]
    return result, reference


def expected_counters(model, spikes: np.ndarray, reference, sample: int, lanes: int = 1) -> dict[str, int]:
    """Counter values the core must report for one sample (all but ``cycles``)."""
    inputs = [spikes[:, sample]] + [
        reference.spikes[layer][:, sample] for layer in range(len(model.hidden_layers))
    ]
    sops = events = 0
    for layer, layer_in in zip(model.layers, inputs, strict=True):
        fanout = np.diff(layer.row_ptr)
        sops += int((layer_in.astype(np.int64) * fanout).sum())
        events += int(layer_in.sum())
    hidden_sops = sum(
        int((layer_in.astype(np.int64) * np.diff(layer.row_ptr)).sum())
        for layer, layer_in in zip(model.hidden_layers, inputs, strict=False)
    )
    neurons = model.timesteps * sum(layer.n_out for layer in model.hidden_layers)
    counts = {
        "sops": sops,
        "ptr_reads": 2 * events * lanes,
        "syn_reads": sops,
        "cur_reads": hidden_sops + neurons,
        "cur_writes": hidden_sops + neurons,
        "pot_reads": neurons,
        "pot_writes": neurons,
        "acc_reads": sops - hidden_sops + model.n_outputs,
        "acc_writes": sops - hidden_sops + model.n_outputs,
    }
    for layer in range(len(model.hidden_layers)):
        counts[f"spikes{layer}"] = int(reference.spikes[layer][:, sample].sum())
    return counts


@pytest.mark.parametrize(
    ("sizes", "leak_shift", "threshold", "fifo_depth", "gaps", "seed", "lanes"),
    [
        ([12, 9, 5], 2, 25, 16, False, 5, 1),
        ([10, 8, 7, 4], None, 25, 2, True, 6, 1),
        ([6, 1, 1], 1, 5, 2, True, 1, 1),
        ([12, 9, 5], 2, 25, 16, True, 5, 2),
        ([10, 8, 7, 4], None, 25, 2, True, 6, 4),
        ([6, 1, 1], 1, 5, 2, True, 1, 8),
        ([20, 17, 6], 3, 25, 4, True, 2, 16),
    ],
)
def test_core_matches_reference(sizes, leak_shift, threshold, fifo_depth, gaps, seed, lanes) -> None:
    rng = np.random.default_rng(seed)
    model = random_model(
        rng, sizes, density=0.7, timesteps=4, v_bits=8, threshold=threshold, leak_shift=leak_shift
    )
    spikes = rng.random((4, 3, sizes[0])) < 0.5
    result, reference = check_core(model, spikes, gaps=gaps, fifo_depth=fifo_depth, seed=seed, lanes=lanes)
    assert any(reference.spikes[-1].ravel()), "test model should spike in its last hidden layer"
    for sample in range(3):
        counters = result.counters[sample]
        assert set(counters) == set(counter_names(model))
        expected = expected_counters(model, spikes, reference, sample, lanes)
        assert {name: counters[name] for name in expected} == expected
        assert counters["cycles"] >= counters["sops"] // (len(model.layers) * lanes)


@pytest.mark.parametrize(
    ("kinds", "lanes", "gaps", "seed"),
    [
        (("cubalif+bias", "lif+subtract"), 1, True, 7),
        (("lif+bias+subtract",), 2, False, 8),
        (("cubalif+subtract",), 4, True, 9),
    ],
)
def test_core_with_bias_reset_and_cubalif_matches_reference(kinds, lanes, gaps, seed) -> None:
    """Whole cores with the options of format version 2 (a bias on the output layer too), the
    counters as for ``lif``: ``pot_reads``/``pot_writes`` count the potentials only."""
    rng = np.random.default_rng(seed)
    sizes = [12, *(9 - index for index in range(len(kinds))), 5]
    model = random_model(rng, sizes, density=0.7, timesteps=4, v_bits=8, threshold=25, leak_shift=2)
    layers = []
    for layer, options in zip(model.layers, [*kinds, "output+bias"], strict=True):
        changes = {"bias": rng.integers(-12, 13, layer.n_out)} if "bias" in options else {}
        if "cubalif" in options:
            changes.update(kind="cubalif", syn_shift=1)
        if "subtract" in options:
            changes["reset"] = "subtract"
        layers.append(dataclasses.replace(layer, **changes))
    model = dataclasses.replace(model, layers=tuple(layers))
    spikes = rng.random((4, 3, sizes[0])) < 0.5
    spikes[1, 0] = False  # a silent step
    result, reference = check_core(model, spikes, gaps=gaps, fifo_depth=4, seed=seed, lanes=lanes)
    assert any(reference.spikes[-1].ravel()), "test model should spike in its last hidden layer"
    for sample in range(3):
        expected = expected_counters(model, spikes, reference, sample, lanes)
        assert {name: result.counters[sample][name] for name in expected} == expected


@pytest.mark.parametrize(
    ("sizes", "timesteps", "fifo_depth", "gaps", "seed", "lanes"),
    [
        ([12, 9, 5], 4, 16, False, 5, 1),
        ([10, 8, 7, 4], 3, 2, True, 6, 4),
        ([8, 6, 3], 1, 4, True, 3, 2),
        ([20, 17, 6], 4, 4, True, 2, 16),
    ],
)
def test_core_without_streaming_gives_the_same_results_counters_and_cycles(
    sizes, timesteps, fifo_depth, gaps, seed, lanes
) -> None:
    """The core built without streaming (one inference at a time, one running total per counter)
    and the streaming core, driven one sample at a time: both equal the reference on every
    spike, potential, output and prediction (:func:`check_core`), both report the expected
    counters, and their counters, ``cycles`` included, are equal sample by sample."""
    rng = np.random.default_rng(seed)
    model = random_model(rng, sizes, density=0.7, timesteps=timesteps, v_bits=8, threshold=25, leak_shift=2)
    spikes = rng.random((timesteps, 3, sizes[0])) < 0.5
    spikes[:, 1] = False  # a silent sample
    runs = {}
    for streaming in (False, True):
        runs[streaming], reference = check_core(
            model, spikes, gaps=gaps, fifo_depth=fifo_depth, seed=seed, lanes=lanes, streaming=streaming
        )
        for sample in range(3):
            counters = runs[streaming].counters[sample]
            assert set(counters) == set(counter_names(model))
            expected = expected_counters(model, spikes, reference, sample, lanes)
            assert {name: counters[name] for name in expected} == expected
    assert any(reference.spikes[-1].ravel()), "test model should spike in its last hidden layer"
    assert runs[False].counters == runs[True].counters
    assert runs[False].predictions == runs[True].predictions


def test_streaming_is_a_build_option_with_one_or_two_counter_banks(tmp_path) -> None:
    """``streaming`` is on by default; without it every layer core's ``stat_*`` port is one count
    and the Verilog has one running total per counter (``run_sops``), with it a pair per
    inference parity and two totals (``run_sops_0``, ``run_sops_1``)."""
    model = random_model(np.random.default_rng(4), [5, 4, 3])
    assert HardwareConfig().streaming is True
    assert as_plan(model, streaming=False).config.streaming is False
    texts = {}
    for streaming in (False, True):
        path = emit_verilog(model, tmp_path / str(streaming), streaming=streaming)
        texts[streaming] = path.read_text()
    assert re.search(r"\brun_sops\b", texts[False])
    assert not re.search(r"\brun_sops_[01]\b", texts[False])
    assert not re.search(r"\bin_flight\b", texts[False])
    assert re.search(r"\brun_sops_0\b", texts[True]) and re.search(r"\brun_sops_1\b", texts[True])
    assert re.search(r"\bin_flight\b", texts[True])
    with pytest.raises(EslError, match="streaming must be True or False, got 'yes'"):
        SNNCore(model, streaming="yes")


def test_emit_verilog_writes_the_top_module(tmp_path) -> None:
    model = random_model(np.random.default_rng(4), [5, 4, 3])
    path = emit_verilog(model, tmp_path / "out", name="my_core")
    text = path.read_text()
    assert path.name == "my_core.v"
    assert "module my_core(" in text
    for port in ("events__payload", "outputs__payload", "tap0_potential", "perf_cycles", "perf_spikes0"):
        assert port in text


def test_memories_carry_block_ram_attributes(tmp_path) -> None:
    # Row pointers, synapses (written by the host port and the rewiring unit), potentials and
    # currents are RAMs: all must ask Yosys for block RAM (without the attribute it keeps small
    # ones in LUTs or LUT RAM).
    model = random_model(np.random.default_rng(4), [5, 4, 3])
    text = emit_verilog(model, tmp_path, lanes=2).read_text()
    declared = re.findall(r'\(\* (rom|ram)_style = "block" \*\)\s*reg [^;]*? (\S+) \[', text)
    kinds = sorted((style, re.sub(r"\d+(_even|_odd)?$", "", name.split(".")[-1])) for style, name in declared)
    # 2 layers x 2 lanes of pointers and synapses, 2 lanes of LIF potentials and 2 x 2 banks of
    # LIF currents (even and odd steps).
    assert kinds == sorted([("ram", "ptr_mem")] * 4 + [("ram", "syn_mem")] * 4 + [("ram", "cur_mem")] * 4
                           + [("ram", "pot_mem")] * 2)  # fmt: skip


def test_emit_verilog_rejects_bad_name(tmp_path) -> None:
    with pytest.raises(EslError, match="'my-core'"):
        emit_verilog(random_model(np.random.default_rng(4), [5, 4, 3]), tmp_path, name="my-core")


def test_core_rejects_non_models() -> None:
    with pytest.raises(TypeError, match="got dict"):
        SNNCore({})


@pytest.mark.parametrize(("lanes", "message"), [(3, "got 3"), (0, "got 0"), (128, "limit 64 by 64")])
def test_core_rejects_bad_lane_counts(lanes, message) -> None:
    with pytest.raises(EslError, match=message):
        SNNCore(random_model(np.random.default_rng(4), [5, 4, 3]), lanes=lanes)


def test_core_many_random_models() -> None:
    rng = np.random.default_rng(77)
    for case in range(12):
        sizes = [int(size) for size in rng.integers(1, 10, int(rng.integers(3, 5)))]
        v_bits = int(rng.integers(4, 12))
        model = random_model(
            rng,
            sizes,
            density=float(rng.uniform(0.2, 1.0)),
            timesteps=int(rng.integers(1, 5)),
            v_bits=v_bits,
            threshold=int(rng.integers(1, 1 << (v_bits - 2))),
            leak_shift=None if case % 3 == 0 else int(rng.integers(1, v_bits)),
        )
        spikes = rng.random((model.timesteps, 2, sizes[0])) < 0.5
        lanes = [1, 2, 4, 8, 16][case % 5]
        check_core(
            model, spikes, gaps=bool(case % 2), fifo_depth=int(rng.integers(2, 6)), seed=case, lanes=lanes
        )


def zero_input_cycles(model, lanes: int) -> int:
    """Cycles (the core's counter) of one inference without input events, checked bit-exact."""
    spikes = np.zeros((model.timesteps, 1, model.n_inputs), dtype=bool)
    result, _ = check_core(model, spikes, gaps=False, lanes=lanes)
    return result.counters[0]["cycles"]


@pytest.mark.parametrize(
    ("sizes", "lanes", "cuba"),
    [
        ([3, 1, 2], 1, False),
        ([3, 2, 2], 1, False),
        ([3, 3, 2], 1, False),
        ([3, 4, 2], 1, False),
        ([3, 8, 2], 1, False),
        ([5, 20, 3], 4, False),
        ([5, 7, 3, 4], 2, False),
        ([4, 1, 1, 2], 1, False),
        ([3, 1, 2], 1, True),
        ([3, 2, 2], 1, True),
        ([3, 9, 2], 1, True),
    ],
)
def test_a_step_without_events_costs_its_sweep_and_two_cycles(sizes, lanes, cuba) -> None:
    """Without input events every step costs the sweep of the widest layer's ``G`` groups plus
    two cycles (the lanes' done flag and the sweep's start, both registered; ``cubalif`` one more:
    its bank is given back a stage later), for one group too: a sweep reads a group that the
    sweep before writes back up to two cycles later and takes that write (forwarding), so a
    one-group step takes 3 cycles, not the ``S + 1`` = 6 of a read after the write-back. The
    end-of-step markers travel in band and the sweeps of consecutive steps follow each other, so
    no pipeline fill or drain enters a step: with the fill and drain of the first core a step
    took ``G + 8`` cycles."""
    rng = np.random.default_rng(len(sizes) + sizes[1])
    model = random_model(rng, sizes, density=0.7, timesteps=2, v_bits=8, threshold=20, leak_shift=2)
    if cuba:
        layers = [dataclasses.replace(layer, kind="cubalif", syn_shift=1) for layer in model.hidden_layers]
        model = dataclasses.replace(model, layers=(*layers, model.layers[-1]))
    stages = 6 if cuba else 5
    per_step = max(-(-layer.n_out // lanes) for layer in model.hidden_layers) + stages - 3
    short = zero_input_cycles(model, lanes)
    long = zero_input_cycles(dataclasses.replace(model, timesteps=6), lanes)
    assert long - short == 4 * per_step


@pytest.mark.parametrize(
    ("sizes", "lanes", "options", "seed"),
    [
        ([4, 1, 2], 1, "lif+bias", 21),
        ([5, 2, 3], 1, "lif+bias+subtract", 22),
        ([6, 3, 1, 2], 1, "lif+bias", 23),
        ([7, 10, 3], 4, "lif+bias+subtract", 24),
        ([4, 1, 2], 1, "cubalif+bias", 25),
        ([5, 6, 2], 2, "cubalif+bias+subtract", 26),
    ],
)
def test_layers_of_few_groups_take_the_forwarded_potentials(sizes, lanes, options, seed) -> None:
    """Layers of one to three groups run their steps closer together than a potential's
    write-back (a step of ``G + 2`` cycles, the write-back ``S + 1`` after the read): the sweep
    takes the potential (and ``cubalif``'s ``c``) of the step before from stage E or the two
    registers behind it. With a bias, the potentials change in every step, silent ones
    included, so a stale word would show in the taps; every potential, spike, output and counter
    equals the reference's."""
    rng = np.random.default_rng(seed)
    timesteps = 8
    model = random_model(rng, sizes, density=0.8, timesteps=timesteps, v_bits=9, threshold=30, leak_shift=2)
    layers = [
        dataclasses.replace(
            layer,
            bias=rng.integers(8, 16, layer.n_out),
            reset="subtract" if "subtract" in options else "zero",
            **({"kind": "cubalif", "syn_shift": 1} if "cubalif" in options else {}),
        )
        for layer in model.hidden_layers
    ]
    model = dataclasses.replace(model, layers=(*layers, model.layers[-1]))
    spikes = rng.random((timesteps, 3, sizes[0])) < 0.4
    spikes[2:5, 1] = False  # silent steps back to back
    spikes[:, 2] = False  # a silent sample: only the bias moves the potentials
    result, reference = check_core(model, spikes, gaps=False, seed=seed, lanes=lanes)
    assert any(reference.spikes[0][:, 2].ravel()), "the bias alone should make the first layer spike"
    for sample in range(3):
        expected = expected_counters(model, spikes, reference, sample, lanes)
        assert {name: result.counters[sample][name] for name in expected} == expected


@pytest.mark.parametrize(
    ("sizes", "timesteps", "lanes", "gaps", "seed"),
    [
        ([12, 9, 5], 4, 1, False, 11),
        ([12, 9, 5], 3, 4, True, 12),
        ([10, 8, 7, 4], 2, 2, True, 13),
        ([8, 6, 3], 1, 2, False, 14),
    ],
)
def test_streamed_inferences_overlap_and_stay_exact_and_in_order(sizes, timesteps, lanes, gaps, seed) -> None:
    """Samples streamed back to back (the next sample's events right after the last marker, no
    wait for ``done``): every sample's taps, outputs, prediction and counters equal the
    reference's, in order; the next sample's first event is accepted before the sample before
    completes (overlap), never while two are in flight, and results come faster than one
    sample's latency."""
    rng = np.random.default_rng(seed)
    model = random_model(rng, sizes, density=0.7, timesteps=timesteps, v_bits=8, threshold=25, leak_shift=2)
    samples = 6
    spikes = rng.random((timesteps, samples, sizes[0])) < 0.5
    spikes[:, 2] = False  # a silent sample between busy ones
    events = [spike_events(spikes[:, sample]) for sample in range(samples)]
    result = simulate_stream(SNNCore(model, lanes=lanes, fifo_depth=4), events, gaps=gaps, seed=seed)
    reference = run(model, spikes)
    assert any(reference.spikes[-1].ravel()), "test model should spike in its last hidden layer"
    neurons = timesteps * sum(layer.n_out for layer in model.hidden_layers)
    for sample in range(samples):
        got = [
            np.zeros_like(reference.potentials[layer][:, sample]) for layer in range(len(model.hidden_layers))
        ]
        fired = [
            np.zeros_like(reference.spikes[layer][:, sample]) for layer in range(len(model.hidden_layers))
        ]
        for layer, step, index, potential, spike in result.taps[sample]:
            got[layer][step, index], fired[layer][step, index] = potential, spike
        assert len(result.taps[sample]) == neurons
        for layer in range(len(model.hidden_layers)):
            np.testing.assert_array_equal(got[layer], reference.potentials[layer][:, sample])
            np.testing.assert_array_equal(fired[layer], reference.spikes[layer][:, sample])
        assert result.outputs[sample] == reference.outputs[sample].tolist()
        assert result.predictions[sample] == reference.predictions[sample]
        expected = expected_counters(model, spikes, reference, sample, lanes)
        assert {name: result.counters[sample][name] for name in expected} == expected
        # the latency: first accepted word to the final output word (done is two cycles later)
        assert result.counters[sample]["cycles"] == result.dones[sample] - 2 - result.starts[sample] + 1
    overlapped = [result.starts[sample + 1] < result.dones[sample] for sample in range(samples - 1)]
    assert all(overlapped), f"the next sample waited for done: {result.starts} {result.dones}"
    assert all(result.starts[sample + 2] > result.dones[sample] for sample in range(samples - 2))
    intervals = np.diff(result.dones)
    single = check_core(model, spikes[:, :1], gaps=False, fifo_depth=4, lanes=lanes)[0].counters[0]["cycles"]
    if not gaps:
        assert intervals.max() < single, f"results every {intervals.tolist()} cycles, one inference {single}"
