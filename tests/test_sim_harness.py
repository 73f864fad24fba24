"""Harness inputs and Verilog text (the harness itself runs in tests/test_sim_runner.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from rtl_support import random_model

from esl_hw.encoding import encode, spike_events
from esl_hw.errors import EslError
from esl_hw.rtl_gen import counter_names
from esl_hw.sim.harness import (
    DEFAULT_CAPACITY,
    EOS_BIT,
    HARNESS_TOP,
    capacity_for,
    event_words,
    harness_verilog,
    write_events,
)


@pytest.fixture
def model():
    return random_model(np.random.default_rng(0), [9, 6, 5, 3], timesteps=3)


def test_event_words_follow_the_encoder(model) -> None:
    images = np.random.default_rng(1).integers(0, 256, (4, 9), dtype=np.uint8)
    words = event_words(model, images).tolist()
    spikes = encode(images, model.timesteps, model.encoder)
    expected = []
    for sample in range(4):
        for step in spike_events(spikes[:, sample]):
            expected += step + [EOS_BIT]
    assert words == expected
    assert sum(word == EOS_BIT for word in words) == 4 * model.timesteps


@pytest.mark.parametrize(
    "images", [np.zeros((2, 8), np.uint8), np.zeros((2, 9), np.int64), np.zeros(9, np.uint8)]
)
def test_event_words_reject_bad_images(model, images) -> None:
    with pytest.raises(EslError, match=r"uint8 \[N, 9\]"):
        event_words(model, images)


def test_events_file_is_readmemh_text(model, tmp_path) -> None:
    path = write_events(tmp_path / "events.hex", np.array([3, EOS_BIT, 0], dtype=np.uint32))
    assert path.read_text() == "00000003\n80000000\n00000000\n"


def test_capacity_is_a_power_of_two_holding_the_events() -> None:
    assert capacity_for(10) == DEFAULT_CAPACITY
    assert capacity_for(DEFAULT_CAPACITY + 1) == 2 * DEFAULT_CAPACITY


@pytest.mark.parametrize("lanes", [1, 4])
def test_harness_connects_every_port(model, lanes) -> None:
    text = harness_verilog(model, lanes=lanes)
    assert text.startswith("`timescale 1ns/1ps")
    assert f"module {HARNESS_TOP};" in text
    assert "always #5 clk = ~clk;" in text
    for name in counter_names(model):
        assert f".perf_{name}(perf_{name})" in text
    for layer in range(2):
        assert f'"S {layer} %0d %0d %0d\\n"' in text
        assert f".tap{layer}_potential(tap{layer}_potential)" in text
        assert f"wire [{lanes - 1}:0] tap{layer}_valid, tap{layer}_spike;" in text
        for lane in range(lanes):
            assert f"tap{layer}_neuron{lane} = tap{layer}_group * {lanes} + {lane};" in text
    assert "+RANDOMGAPS" not in text.split("initial")[0]
    assert "$readmemh" in text and "+EVENTS" not in text.split("initial")[0]


def test_harness_has_the_rewire_phase_only_with_the_rewiring_unit(model) -> None:
    from esl_hw.rtl_gen.memory_map import memory_map
    from esl_hw.rtl_gen.plan import plan_model

    text = harness_verilog(model, lanes=2)
    regions = memory_map(plan_model(model, 2))
    assert ".rewire_start(rewire_start)" in text and ".host_rdata(host_rdata)" in text
    for layer in range(len(model.layers)):
        assert f'$value$plusargs("RWK{layer}=%d", rw_k{layer})' in text
    assert all(f"{region.id}: depth_of = {region.depth};" in text for region in regions)
    assert "if (image + 1 == split) phase <= 1; else waiting <= 1'b0;" in text
    wide = dataclasses.replace(model.layers[-1], w_bits=9)
    text = harness_verilog(dataclasses.replace(model, layers=(*model.layers[:-1], wide)))
    assert ".host_rdata(host_rdata)" in text and "rewire_start" not in text and "phase" not in text
    # The harness follows the plan's core: a plan without the unit (rewiring=False) has no phase.
    from esl_hw.rtl_gen.hardware import HardwareConfig

    plan = plan_model(model, HardwareConfig(lanes=2, rewiring=False))
    text = harness_verilog(plan)
    assert ".host_rdata(host_rdata)" in text and "rewire_start" not in text and "phase" not in text
    assert harness_verilog(plan_model(model, 2)) == harness_verilog(model, lanes=2)
