"""Constrained-random co-simulation on Icarus and Verilator (``pytest --cases N`` for more).

By default 200 cases: 140 on Icarus (14 networks, 10 inferences each) and 60 on Verilator (2
networks, 30 each); every network is a fresh random draw with its own lane count.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from test_sim_runner import needs_icarus, needs_verilator

from esl_hw.artifact import signed_range
from esl_hw.sim.random_cases import LANE_CHOICES, random_images, random_network, run_random_cases

ICARUS_SHARE = 0.7


def split_cases(total: int) -> dict[str, int]:
    icarus = round(total * ICARUS_SHARE)
    return {"icarus": icarus, "verilator": total - icarus}


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("random")


def check_all(summaries: list[dict], cases: int) -> None:
    assert sum(summary["cases"] for summary in summaries) == cases
    failed = [summary for summary in summaries if not summary["ok"]]
    assert not failed, failed[:2]


@needs_icarus
def test_random_cases_on_icarus(build_dir, request) -> None:
    cases = split_cases(request.config.getoption("--cases"))["icarus"]
    check_all(run_random_cases(cases, "icarus", build_dir, cases_per_network=10, seed=1000), cases)


@needs_verilator
def test_random_cases_on_verilator(build_dir, request) -> None:
    cases = split_cases(request.config.getoption("--cases"))["verilator"]
    check_all(run_random_cases(cases, "verilator", build_dir, cases_per_network=30, seed=2000), cases)


def test_networks_cover_the_constraints() -> None:
    networks = [random_network(seed) for seed in range(200)]
    assert {network.lanes for network in networks} == set(LANE_CHOICES)
    layers = [layer for network in networks for layer in network.model.layers]
    fanouts = [np.diff(layer.row_ptr) for layer in layers]
    assert any((fanout == 0).all() for fanout in fanouts), "an entirely empty layer"
    assert any((fanout == layer.n_out).all() for fanout, layer in zip(fanouts, layers, strict=True))
    hidden = [layer for layer in layers if layer.is_hidden]
    assert any(layer.leak_shift is None for layer in hidden)
    assert any(layer.threshold == signed_range(layer.v_bits)[1] for layer in hidden)
    cuba = [layer for layer in hidden if layer.kind == "cubalif"]
    assert any(layer.syn_shift is None for layer in cuba) and any(
        layer.syn_shift is not None for layer in cuba
    )
    assert {layer.kind for layer in hidden} == {"lif", "cubalif"}
    for group in (hidden, cuba):
        assert {layer.reset for layer in group} == {"zero", "subtract"}
        assert {layer.bias is None for layer in group} == {True, False}
    outputs = [network.model.output_layer for network in networks]
    assert {layer.bias is None for layer in outputs} == {True, False}
    # biases beyond the potential range (saturation by the bias alone)
    assert any(
        np.abs(layer.bias).max() > signed_range(layer.v_bits)[1] for layer in hidden if layer.bias is not None
    )
    assert {layer.w_bits for layer in layers} == set(range(2, 10))
    assert random_network(7).describe() == random_network(7).describe()


def test_images_include_silence_and_bursts() -> None:
    network = random_network(3)
    images = random_images(np.random.default_rng(0), network.model, 60)
    assert (images == 0).all(axis=1).any() and (images == 255).all(axis=1).any()


def test_split_cases() -> None:
    assert split_cases(200) == {"icarus": 140, "verilator": 60}
    assert sum(split_cases(2001).values()) == 2001


def test_module_entry_point_counts_failures(tmp_path, monkeypatch, capsys) -> None:
    if shutil.which("iverilog") is None:
        pytest.skip("Icarus Verilog is not installed")
    from esl_hw.sim import random_cases

    status = random_cases.main(["--cases", "3", "--simulator", "icarus", "--build-dir", str(tmp_path)])
    assert status == 0
    assert '"failed_networks": 0' in capsys.readouterr().out
