"""Co-simulation of generated cores against the reference on Verilator and Icarus.

Builds are slow (Verilator ~25 s each), so models are small; builds go to the session's build cache
(tests/conftest.py), so runs of the same model and simulator reuse their build.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from rtl_support import random_layer
from sim_support import needs_icarus, needs_verilator

from esl_hw.artifact import Model, layer_from_dense
from esl_hw.errors import EslError
from esl_hw.reference import predict
from esl_hw.sim import run_cosim
from esl_hw.sim.build import SIMULATORS, simulator_environment
from esl_hw.sim.build_cache import CACHE_ENV, STAMP
from esl_hw.sim.runner import STREAM_REFUSAL
from esl_hw.sim.testbench import check


def two_hidden_model() -> Model:
    """20-12-9-5: saturating layer without leak, leaky layer, empty rows, T=5."""
    rng = np.random.default_rng(11)
    first = random_layer(rng, 20, 12, 0.4, w_bits=7, v_bits=7, threshold=40, leak_shift=None)
    mask = rng.random((12, 9)) < 0.5
    mask[[1, 7]] = False
    second = layer_from_dense(
        rng.integers(-20, 40, (12, 9)) * mask, "lif", 7, v_bits=9, threshold=30, leak_shift=2, mask=mask
    )
    output = random_layer(rng, 9, 5, 0.7, "output", w_bits=6)
    return Model((first, second, output), timesteps=5)


def one_hidden_model() -> Model:
    """16-7-3, T=2, leak 1."""
    rng = np.random.default_rng(12)
    hidden = random_layer(rng, 16, 7, 0.5, w_bits=5, v_bits=6, threshold=9, leak_shift=1)
    return Model((hidden, random_layer(rng, 7, 3, 0.8, "output", w_bits=4)), timesteps=2)


def options_model() -> Model:
    """16-10-9-8-7-4, T=5: the neuron options of format version 2, one hidden layer each: lif with
    a bias; lif with subtractive reset, no leak; cubalif without synaptic decay, with a bias;
    cubalif with decay, subtractive reset and a bias; an output layer with a bias."""
    rng = np.random.default_rng(13)
    options = [
        {"leak_shift": 2, "bias": rng.integers(-6, 12, 10)},
        {"leak_shift": None, "reset": "subtract"},
        {"kind": "cubalif", "leak_shift": 1, "syn_shift": None, "bias": rng.integers(-8, 8, 8)},
        {
            "kind": "cubalif",
            "leak_shift": 2,
            "syn_shift": 1,
            "reset": "subtract",
            "bias": rng.integers(-4, 10, 7),
        },
    ]
    sizes = [16, 10, 9, 8, 7]
    layers = []
    for (n_in, n_out), option in zip(zip(sizes, sizes[1:], strict=False), options, strict=True):
        kind = option.pop("kind", "lif")
        layers.append(random_layer(rng, n_in, n_out, 0.5, kind, w_bits=6, v_bits=8, threshold=30, **option))
    output = random_layer(rng, 7, 4, 0.7, "output", w_bits=6, bias=rng.integers(-20, 20, 4))
    return Model((*layers, output), timesteps=5)


def images_for(model: Model, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, model.n_inputs), dtype=np.uint8)
    images[rng.random(images.shape) < 0.3] = 0
    return images


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cosim")


def assert_exact(result, model: Model, images: np.ndarray) -> None:
    assert result.ok, (result.details, result.problems)
    assert result.mismatches == 0 and result.samples == len(images)
    assert result.predictions == predict(model, images).tolist()
    assert len(result.cycles) == len(images) and all(cycles > 0 for cycles in result.cycles)
    assert result.memory_reads["syn"] == result.sops
    assert len(result.spikes[0]) == len(model.hidden_layers)


@needs_verilator
def test_verilator_two_hidden_layers_with_gaps_and_backpressure(build_dir) -> None:
    model = two_hidden_model()
    images = images_for(model, 6, seed=1)
    result = run_cosim(model, images, "verilator", build_dir, gap_percent=30, backpressure_percent=40, seed=3)
    assert_exact(result, model, images)
    assert result.built and result.simulator == "verilator"
    assert all(spikes[1] > 0 for spikes in result.spikes[:3]), "second hidden layer should spike"


@needs_verilator
def test_verilator_checker_reports_a_corrupted_reference(build_dir) -> None:
    model = two_hidden_model()
    images = images_for(model, 6, seed=1)
    layers = list(model.layers)
    first = layers[0]
    layers[0] = layer_from_dense(
        first.dense_weight() + (first.dense_weight() != 0),  # every weight one larger
        "lif",
        first.w_bits + 1,
        v_bits=first.v_bits,
        threshold=first.threshold,
        leak_shift=first.leak_shift,
        mask=first.dense_weight() != 0,
    )
    corrupted = Model(tuple(layers), timesteps=model.timesteps)
    result = run_cosim(model, images, "verilator", build_dir, reference_model=corrupted)
    assert not result.built, "the build of the same model must be reused"
    assert result.mismatches > 0 and not result.ok
    assert result.details


def comparable(report_path: Path) -> dict:
    """The checker's report at ``report_path`` less the simulator's wall time."""
    report = json.loads(report_path.read_text())
    report.pop("simulation_seconds")
    return report


@needs_verilator
def test_binary_and_cocotb_runs_give_the_same_report(build_dir) -> None:
    """The plain Verilator executable (the default) and the cocotb run of the same core write the
    same trace and the same report, potentials included, with idle gaps and backpressure."""
    model = two_hidden_model()
    images = images_for(model, 5, seed=4)
    options = {"gap_percent": 20, "backpressure_percent": 30, "seed": 6, "random_gaps": 40, "lanes": 2}
    fast = run_cosim(model, images, "verilator", build_dir, **options)
    slow = run_cosim(model, images, "verilator", build_dir, mode="cocotb", **options)
    assert (fast.mode, slow.mode) == ("binary", "cocotb")
    for result in (fast, slow):
        assert_exact(result, model, images)
    assert fast.build != slow.build, "each run mode has its own build"
    assert comparable(fast.report_path) == comparable(slow.report_path)
    traces = [(result.report_path.parent / "trace.txt").read_text() for result in (fast, slow)]
    assert sorted(traces[0].splitlines()) == sorted(traces[1].splitlines())


@needs_verilator
def test_a_corrupted_binary_trace_is_caught(build_dir) -> None:
    """The checker run on the binary's trace (not inside a simulator) flags a flipped spike, a
    changed output, a wrong counter line and a missing inference."""
    model = one_hidden_model()
    images = images_for(model, 4, seed=3)
    result = run_cosim(model, images, "verilator", build_dir)
    assert_exact(result, model, images)
    run_dir = result.report_path.parent
    config = json.loads((run_dir / "config.json").read_text())
    lines = (run_dir / "trace.txt").read_text().splitlines()
    spike = next(number for number, line in enumerate(lines) if line.startswith("S 0 1 "))
    output = next(number for number, line in enumerate(lines) if line.startswith("O 2 "))
    kind, image, index, value = lines[output].split()
    lines[output] = f"{kind} {image} {index} {int(value) + 1}"
    corruptions = {
        "image 1: layer 0 spike differs": [line for number, line in enumerate(lines) if number != spike],
        "image 2: output differs": lines,
        "image 3: prediction differs": [line for line in lines if not line.startswith("D 3 ")],
    }
    for message, corrupted in corruptions.items():
        (run_dir / "trace.txt").write_text("\n".join(corrupted) + "\n")
        report = check(config)
        assert not report["ok"] and report["mismatches"] >= 1
        assert any(detail.startswith(message) for detail in report["details"]), report["details"]
    (run_dir / "trace.txt").write_text("\n".join([*lines[:output], "O 2 x", *lines[output + 1 :]]) + "\n")
    assert any("bad line 'O 2 x'" in problem for problem in check(config)["problems"])


@needs_verilator
def test_verilator_one_hidden_layer_from_another_directory(build_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    model = one_hidden_model()
    images = images_for(model, 5, seed=2)
    result = run_cosim(model, images, "verilator", build_dir, trace_potentials=False)
    assert_exact(result, model, images)


@needs_icarus
@needs_verilator
def test_both_simulators_agree_with_lanes(build_dir) -> None:
    model = two_hidden_model()
    images = images_for(model, 4, seed=8)
    runs = [
        run_cosim(model, images, simulator, build_dir, gap_percent=20, backpressure_percent=30, lanes=4)
        for simulator in ("verilator", "icarus")
    ]
    for result in runs:
        assert_exact(result, model, images)
        assert result.lanes == 4
    assert runs[0].cycles == runs[1].cycles
    single = run_cosim(model, images, "icarus", build_dir, gap_percent=20, backpressure_percent=30)
    assert sum(runs[1].cycles) < sum(single.cycles), "four lanes must be faster than one"


@needs_icarus
@pytest.mark.parametrize("model_factory", [two_hidden_model, one_hidden_model])
def test_icarus_matches_reference_and_verilator_cycles(build_dir, model_factory) -> None:
    model = model_factory()
    images = images_for(model, 4, seed=5)
    result = run_cosim(model, images, "icarus", build_dir, gap_percent=20, backpressure_percent=20, seed=9)
    assert_exact(result, model, images)
    again = run_cosim(model, images, "icarus", build_dir)
    assert_exact(again, model, images)
    assert not again.built and again.build == result.build, "the cached build must be reused"
    cache = Path(os.environ[CACHE_ENV]).resolve()
    assert again.build.parent == cache and (again.build / STAMP).is_file()
    assert not again.build.is_relative_to(Path(build_dir).resolve()), "builds live outside the output"
    assert again.report_path.is_relative_to(Path(build_dir).resolve() / "runs")
    assert sum(again.cycles) <= sum(result.cycles), "idle gaps and backpressure cannot make it faster"


@needs_icarus
@needs_verilator
def test_spram_synapses_and_a_short_lane_fifo_are_bit_exact(build_dir) -> None:
    # The iCE40 configuration: synapses in 16,384-word single-port blocks, 4-word lane FIFOs.
    model = two_hidden_model()
    images = images_for(model, 3, seed=6)
    runs = [
        run_cosim(
            model,
            images,
            simulator,
            build_dir,
            backpressure_percent=30,
            synapse_memory="spram",
            lane_fifo_depth=4,
        )  # fmt: skip
        for simulator in ("icarus", "verilator")
    ]
    for result in runs:
        assert_exact(result, model, images)
        assert result.built  # its own build, not the block-RAM core's
    assert runs[0].cycles == runs[1].cycles


@needs_icarus
@needs_verilator
def test_both_simulators_count_the_same_cycles(build_dir) -> None:
    model = two_hidden_model()
    images = images_for(model, 3, seed=7)
    verilator = run_cosim(model, images, "verilator", build_dir, gap_percent=25, seed=4)
    icarus = run_cosim(model, images, "icarus", build_dir, gap_percent=25, seed=4)
    for result in (verilator, icarus):
        assert_exact(result, model, images)
    assert verilator.cycles == icarus.cycles
    assert verilator.memory_writes == icarus.memory_writes


@pytest.mark.parametrize(
    ("simulator", "lanes"),
    [pytest.param("icarus", 2, marks=needs_icarus), pytest.param("verilator", 1, marks=needs_verilator)],
)
def test_bias_subtractive_reset_and_cubalif_are_bit_exact(build_dir, simulator, lanes) -> None:
    """Every spike, potential, output and prediction of :func:`options_model` equals the
    reference, with idle gaps and backpressure; every hidden layer spikes."""
    model = options_model()
    images = images_for(model, 6, seed=10)
    images[0] = 0  # silent: the biases alone drive the network
    result = run_cosim(
        model, images, simulator, build_dir, gap_percent=20, backpressure_percent=30, seed=5, lanes=lanes
    )
    assert_exact(result, model, images)
    assert all(sum(spikes[layer] for spikes in result.spikes) > 0 for layer in range(4))
    assert result.memory_reads["pot"] == [model.timesteps * (10 + 9 + 8 + 7)] * len(images)


def test_missing_icarus_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(EslError, match="Icarus Verilog is not installed"), simulator_environment("icarus"):
        pass


def test_the_cli_offers_the_shared_simulators() -> None:
    from esl_hw.app import cli

    assert cli.SIMULATORS is SIMULATORS


def test_an_unwritable_build_cache_is_a_one_line_error(tmp_path, monkeypatch) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "file" / "cache"))
    model = one_hidden_model()
    with pytest.raises(EslError, match=f"build cache .*file/cache is not writable .*set {CACHE_ENV}"):
        run_cosim(model, images_for(model, 1, 0), "icarus", tmp_path / "out")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"simulator": "modelsim"}, "unknown simulator 'modelsim'"),
        ({"gap_percent": 95}, "gap_percent must be an integer in 0..90, got 95"),
        ({"images": np.zeros((0, 16), np.uint8)}, "no images"),
        ({"images": np.zeros((2, 15), np.uint8)}, r"images must be uint8 \[N, 16\]"),
        ({"lanes": 3}, "lanes must be a power of two"),
        ({"random_gaps": 91}, "random_gaps must be an integer in 0..90, got 91"),
        ({"capacity": 100}, "capacity must be a power of two of at least [0-9]+ \\(the events\\), got 100"),
        ({"capacity": 2}, "capacity must be a power of two of at least [0-9]+ \\(the events\\), got 2"),
        ({"mode": "vpi"}, "unknown run mode 'vpi' \\(expected one of cocotb, binary\\)"),
        (
            {"simulator": "icarus", "mode": "binary"},
            "run mode 'binary' needs Verilator \\(icarus runs",
        ),
    ],
)
def test_bad_options(tmp_path, options, message) -> None:
    model = one_hidden_model()
    arguments = {"images": images_for(model, 1, 0), **options}
    with pytest.raises(EslError, match=message):
        run_cosim(model, build_dir=tmp_path, **arguments)


def mnist_shaped_model() -> Model:
    """784-128-10 at ~10% density, 8-bit weights, thresholds that give some spiking."""
    rng = np.random.default_rng(0)
    hidden = random_layer(rng, 784, 128, 0.1, w_bits=8, v_bits=16, threshold=200, leak_shift=3)
    return Model((hidden, random_layer(rng, 128, 10, 0.1, "output", w_bits=8)), timesteps=8)


@pytest.mark.slow
@needs_verilator
def test_mnist_shaped_model_on_verilator(build_dir) -> None:
    from esl_hw.datasets import load_mnist

    model = mnist_shaped_model()
    images = load_mnist(None).test.images[:20]
    result = run_cosim(model, images, "verilator", build_dir)
    assert_exact(result, model, images)
    assert result.build_seconds + result.run_seconds < 90
    assert min(spikes[0] for spikes in result.spikes) > 0


@pytest.mark.parametrize(
    ("simulator", "lanes"),
    [pytest.param("icarus", 2, marks=needs_icarus), pytest.param("verilator", 4, marks=needs_verilator)],
)
def test_streamed_inferences_overlap_exact_and_in_order(build_dir, simulator, lanes) -> None:
    """Eight images streamed back to back (``stream=True``: the next image's events right after
    the last marker before, no wait for ``done``) on two hidden layers: every image's spikes,
    potentials, outputs, prediction and counters equal the reference's (the checker compares the
    counters, ``counters_checked``), and every result follows the one before sooner than its own
    latency, so each inference overlapped the one before; the same build waiting for every
    ``done`` gives the same results and counters but ``cycles``, and no overlap. With idle gaps
    and backpressure the stream stays exact."""
    model = two_hidden_model()
    images = images_for(model, 8, seed=21)
    images[3] = 0  # a silent image between busy ones
    streamed = run_cosim(model, images, simulator, build_dir, lanes=lanes, stream=True)
    assert_exact(streamed, model, images)
    assert streamed.stream and streamed.counters_checked
    assert len(streamed.finish_cycles) == len(images)
    intervals = streamed.result_intervals
    assert all(interval > 0 for interval in intervals), "results out of order"
    latencies = streamed.cycles[1:]
    assert all(gap < latency for gap, latency in zip(intervals, latencies, strict=True)), (
        intervals,
        latencies,
    )
    waited = run_cosim(model, images, simulator, build_dir, lanes=lanes)
    assert not waited.built and waited.counters_checked
    assert_exact(waited, model, images)
    assert waited.outputs == streamed.outputs and waited.sops == streamed.sops
    assert waited.memory_reads == streamed.memory_reads and waited.spikes == streamed.spikes
    assert all(gap > latency for gap, latency in zip(waited.result_intervals, waited.cycles[1:], strict=True))
    assert streamed.cycles_between_results < np.mean(waited.cycles), "no throughput gained from the overlap"
    assert streamed.finish_cycles[-1] < 0.8 * waited.finish_cycles[-1]
    bumpy = run_cosim(model, images, simulator, build_dir, lanes=lanes, stream=True, random_gaps=60, seed=5)
    assert_exact(bumpy, model, images)


@needs_verilator
def test_a_core_without_streaming_gives_the_same_results_and_refuses_a_stream(build_dir) -> None:
    """``streaming=False`` builds the core that takes one inference at a time (another build):
    every image exact, and its counters, ``cycles`` included, equal those of the streaming core
    run the same way (waiting for each ``done``). Streaming images into it is refused, one line,
    before any build."""
    model = two_hidden_model()
    images = images_for(model, 4, seed=22)
    with pytest.raises(EslError, match=re.escape(STREAM_REFUSAL)):
        run_cosim(model, images, "verilator", build_dir, lanes=2, streaming=False, stream=True)
    plain = run_cosim(model, images, "verilator", build_dir, lanes=2, streaming=False)
    assert_exact(plain, model, images)
    assert plain.config.streaming is False and plain.counters_checked and not plain.stream
    streaming = run_cosim(model, images, "verilator", build_dir, lanes=2)
    assert_exact(streaming, model, images)
    assert streaming.config.streaming is True and streaming.build != plain.build
    assert plain.cycles == streaming.cycles and plain.sops == streaming.sops
    assert plain.memory_reads == streaming.memory_reads and plain.memory_writes == streaming.memory_writes
    assert plain.spikes == streaming.spikes and plain.outputs == streaming.outputs
