"""Harness inputs and Verilog text (the harness itself runs in tests/test_sim_runner.py)."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from rtl_support import random_model

from esl_hw.encoding import encode, spike_events
from esl_hw.errors import EslError
from esl_hw.rtl_gen import SNNCore, counter_names, emit_verilog
from esl_hw.rtl_gen.hardware import HardwareConfig
from esl_hw.rtl_gen.plan import plan_model
from esl_hw.sim import harness
from esl_hw.sim.harness import (
    CORE_NAME,
    DEFAULT_CAPACITY,
    EOS_BIT,
    HARNESS_TOP,
    capacity_for,
    core_ports,
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
        assert f"wire [{lanes - 1}:0] tap{layer}_valid;" in text
        assert f"wire [{lanes - 1}:0] tap{layer}_spike;" in text
        for lane in range(lanes):
            assert f"tap{layer}_neuron{lane} = tap{layer}_group * {lanes} + {lane};" in text
    assert "+RANDOMGAPS" not in text.split("initial")[0]
    assert "$readmemh" in text and "+EVENTS" not in text.split("initial")[0]


def preprocess(text: str, defined: set[str]) -> str:
    """``text`` with its `ifdef/`ifndef/`else/`endif resolved for the macros ``defined``."""
    kept, stack = [], []
    for line in text.splitlines():
        word = line.strip().split()
        if word and word[0] in ("`ifdef", "`ifndef"):
            stack.append((word[1] in defined) == (word[0] == "`ifdef"))
        elif word and word[0] == "`else":
            stack[-1] = not stack[-1]
        elif word and word[0] == "`endif":
            stack.pop()
        elif all(stack):
            kept.append(line)
    assert not stack
    return "\n".join(kept)


def test_the_clock_input_variant_has_no_delays_and_finishes(model) -> None:
    """Without CLOCK_INPUT the harness clocks itself (cocotb, Icarus); with it (the binary build)
    it takes ``clk`` as an input, holds reset for the same four rising edges and has no delay or
    falling-edge wait; both end with ``$finish`` under ``+FINISH``."""
    from esl_hw.sim.build import CLOCK_INPUT

    text = harness_verilog(model)
    own, clocked = preprocess(text, set()), preprocess(text, {CLOCK_INPUT})
    assert f"module {HARNESS_TOP};" in own and "always #5 clk = ~clk;" in own
    assert "repeat (4) @(negedge clk);" in own and "reset_count" not in own
    assert f"module {HARNESS_TOP}(input clk);" in clocked and "reg rst = 1'b1;" in clocked
    assert re.search(r"#\s*[0-9]", clocked) is None and "negedge" not in clocked
    assert "if (reset_count == 3) begin" in clocked
    for variant in (own, clocked):
        assert 'if (!$value$plusargs("FINISH=%d", finish_at_end)) finish_at_end = 0;' in variant
        assert "always @(posedge clk) if (done && finish_at_end != 0) $finish;" in variant


def test_harness_has_the_rewire_phase_only_with_the_rewiring_unit(model) -> None:
    from esl_hw.rtl_gen.memory_map import memory_map
    from esl_hw.rtl_gen.plan import plan_model

    text = harness_verilog(model, lanes=2)
    regions = memory_map(plan_model(model, 2))
    assert ".rewire_start(rewire_start)" in text and ".host_rdata(host_rdata)" in text
    for layer in range(len(model.layers)):
        assert f'$value$plusargs("RWK{layer}=%d", rw_k{layer})' in text
    assert all(f"{region.id}: depth_of = {region.depth};" in text for region in regions)
    assert "if (image + 1 == split) phase <= 1; else if (streaming == 0) waiting <= 1'b0;" in text
    assert "if (streaming == 0 || in_image + 1 == split) waiting <= 1'b1;" in text
    wide = dataclasses.replace(model.layers[-1], w_bits=9)
    text = harness_verilog(dataclasses.replace(model, layers=(*model.layers[:-1], wide)))
    assert ".host_rdata(host_rdata)" in text and "rewire_start" not in text and "phase" not in text
    # The harness follows the plan's core: a plan without the unit (rewiring=False) has no phase.
    from esl_hw.rtl_gen.hardware import HardwareConfig

    plan = plan_model(model, HardwareConfig(lanes=2, rewiring=False))
    text = harness_verilog(plan)
    assert ".host_rdata(host_rdata)" in text and "rewire_start" not in text and "phase" not in text
    assert harness_verilog(plan_model(model, 2)) == harness_verilog(model, lanes=2)


# -- the core's ports, read from SNNCore's signature ------------------------------------------------


def instance_ports(text: str) -> dict[str, str]:
    """The core instance's connections in the harness: port name -> net."""
    line = next(line for line in text.splitlines() if line.strip().startswith(f"{CORE_NAME} core ("))
    return dict(re.findall(r"\.(\w+)\(([^()]*)\)", line))


def declared_width(text: str, net: str) -> int:
    """The width of the wire or reg ``net`` declared in the harness."""
    declaration = rf"^\s*(?:wire|reg)\s+(?:\[(\d+):0\]\s+)?(?:\w+(?: = [^,;]+)?, )*{net}\b(?: = |;|,)"
    match = re.search(declaration, text, re.MULTILINE)
    assert match, f"{net} is not declared"
    return int(match.group(1) or 0) + 1


def verilog_ports(path) -> dict[str, tuple[str, int]]:
    """Ports of the top module of the emitted core's Verilog: name -> (direction, width)."""
    text = path.read_text()
    top = text[text.index(f"module {CORE_NAME}(") :]
    top = top[: top.index("endmodule")]
    found = re.findall(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);", top, re.MULTILINE)
    return {name: (direction, int(high or 0) + 1) for direction, high, name in found}


@pytest.mark.parametrize("config", [HardwareConfig(lanes=2), HardwareConfig(lanes=1, rewiring=False)])
def test_every_port_of_the_emitted_core_is_connected_with_its_width(model, config, tmp_path) -> None:
    plan = plan_model(model, config)
    text = harness_verilog(plan)
    emitted = verilog_ports(emit_verilog(plan, tmp_path, name=CORE_NAME))
    connected = instance_ports(text)
    assert set(connected) == set(emitted)  # nothing missing, nothing misnamed
    for name, (direction, width) in emitted.items():
        net = connected[name]
        if re.fullmatch(r"\d+'d0", net):  # an input the harness does not drive
            assert direction == "input" and net == f"{width}'d0", name
        elif name not in ("clk", "rst"):
            assert declared_width(text, net) == width, name


class WiderCore(SNNCore):
    """SNNCore with two more ports."""

    @property
    def signature(self) -> wiring.Signature:
        members = dict(super().signature.members)
        return wiring.Signature({**members, "extra_out": Out(5), "extra_in": In(3)})


class NarrowerCore(SNNCore):
    """SNNCore without its ``idle`` port."""

    @property
    def signature(self) -> wiring.Signature:
        members = dict(super().signature.members)
        del members["idle"]
        return wiring.Signature(members)


def test_a_core_with_an_extra_port_gets_connected(model, monkeypatch) -> None:
    monkeypatch.setattr(harness, "SNNCore", WiderCore)
    text = harness_verilog(model, lanes=2)
    connected = instance_ports(text)
    assert connected["extra_out"] == "extra_out" and declared_width(text, "extra_out") == 5
    assert connected["extra_in"] == "3'd0"


def test_a_core_without_a_port_the_harness_needs_is_refused(model, monkeypatch) -> None:
    monkeypatch.setattr(harness, "SNNCore", NarrowerCore)
    with pytest.raises(EslError, match=r"the core has no port idle \(its ports: events__payload, "):
        harness_verilog(model, lanes=2)


def test_core_ports_are_snncore_s_in_signature_order(model) -> None:
    plan = plan_model(model, 2)
    ports = core_ports(plan)
    assert list(ports)[:4] == ["events__payload", "events__valid", "events__ready", "outputs__payload"]
    assert ports["events__payload"].width == plan[0].in_index_bits + 1
    assert ports["tap0_potential"].width == 2 * plan[0].layer.v_bits
    assert ports["host_rdata"].direction == "output" and ports["host_rdata"].width == plan.bus_shape.data_bits


def test_streamed_trace_lines_name_the_image_each_port_counted(model) -> None:
    """With ``+STREAM=1`` the driver goes on after an image's last marker; every layer's tap
    counts its own images (one more after its last group of step ``T - 1``), the output monitor
    counts ``last`` words, and a ``F`` line gives each ``done``'s cycle."""
    plan = plan_model(model, 2)
    text = harness_verilog(plan)
    assert 'if (!$value$plusargs("STREAM=%d", streaming)) streaming = 0;' in text
    assert re.search(r"if \(streaming == 0( \|\| in_image \+ 1 == split)?\) waiting <= 1'b1;", text)
    assert "else if (streaming == 0) waiting <= 1'b0;" in text
    for layer, layer_plan in enumerate(plan[:-1]):
        tap = f"tap{layer}"
        ends = f"{tap}_ends = {tap}_valid != 0 && {tap}_step == {model.timesteps - 1}"
        assert f"{ends} && {tap}_group == {layer_plan.groups - 1};" in text
        assert f"if (!rst && {tap}_ends) {tap}_image <= {tap}_image + 1;" in text
        assert f'"S {layer} %0d %0d %0d\\n", {tap}_image, {tap}_step' in text
    assert '"O %0d %0d %0d\\n", out_image, out_index, out_value' in text
    assert "if (out_last) out_image <= out_image + 1;" in text
    assert '$fwrite(fd, "F %0d %0d\\n", image, cycle - 1);' in text
