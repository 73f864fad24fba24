"""The FPGA benchmark script: its rows, its Markdown table and its verdicts on the targets."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parent.parent / "bench" / "synth.py"
_SPEC = importlib.util.spec_from_file_location("bench_synth", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)


def test_random_paper_model_has_the_shape_and_density() -> None:
    model = bench.random_paper_model(0.1, 4, hidden=100)
    assert [layer.n_out for layer in model.layers] == [100, 10] and model.n_inputs == 784
    assert model.density == pytest.approx(0.1, abs=0.01)
    assert all(layer.w_bits == 4 for layer in model.layers) and model.metadata["kind"] == "random"


def test_rows_come_from_the_trained_bench_models() -> None:
    rows = bench.configurations(_PATH.parent / "models")
    names = [row["name"] for row in rows]
    assert "mnist_d0.1-ecp5-85k-L8" in names and "mnist_d0.05_w6-ice40-up5k-L1" in names
    assert all(Path(row["model"], "model.yaml").is_file() for row in rows)
    assert bench.configurations(None) == [] and len(bench.configurations(None, Path("demo"))) == 3
    up5k = [row for row in rows + bench.configurations(None, Path("demo")) if row["target"] == "ice40-up5k"]
    assert len(up5k) == 2 and all(row["options"] == {} for row in up5k)  # synthesize() chooses


def result(device: str, lanes: int, fmax: float, latency: float, accuracy: float, status: str = "ok") -> dict:
    use = {"luts": 4992, "ffs": 3000, "bram": 30, "spram": 3}
    return {
        "row": {"name": f"r{lanes}", "label": "trained 784-800-10", "options": {"lane_fifo_depth": 4}},
        "device": device, "lanes": lanes, "fmax_mhz": fmax, "latency_us": latency, "accuracy": accuracy,
        "accuracy_set": "10000 test images", "status": status, "memories": [], "rewiring": True,
        "utilisation": {kind: {"used": used, "available": 5280} for kind, used in use.items()},
        "cycles_per_inference": 6829.4, "energy_j": 2.5e-6, "memories_in_block_ram": True,
        "synapse_memory": "spram", "cycles_source": "verilator co-simulation",
    }  # fmt: skip


def test_markdown_lists_rows_sources_and_prior_art() -> None:
    text = bench.markdown([result("iCE40UP5K", 1, 30.1, 226.9, 0.9782)])
    assert (
        "| trained 784-800-10 | 0.9782 | iCE40UP5K | 1 | 4992 | 3000 | 30 | 3 | - | 30.1 | 6829 | 226.9 |"
        in text
    )
    assert "synapses in spram, lane_fifo_depth 4, rewiring unit in; accuracy on 10000 test images" in text
    assert "Spiker+" in text and "780" in text and "6,358 LUT" in text
    chosen = "1 lane, synapses in SPRAM, rewiring unit in, lane FIFO 4, spike-mask FIFO 4 words"
    auto = result("iCE40UP5K", 1, 30.1, 226.9, 0.9782)
    auto.update(row={**auto["row"], "options": {}}, settings={"auto": True, "chosen": chosen})
    assert f"- r1: settings chosen by synthesis: {chosen}; accuracy on 10000" in bench.markdown([auto])


def test_notes_judge_both_targets_from_the_rows() -> None:
    slow = bench.notes(
        [result("LFE5U-85F", 8, 99.0, 69.0, 0.9813), result("iCE40UP5K", 1, 30.0, 230.0, 0.9690)]
    )
    assert any("99.0 to 99.0 MHz over 1 rows (0 at or above 100 MHz)" in line for line in slow)
    assert any(line.startswith(f"- {bench.ECP5_TARGET}: not met (highest Fmax") for line in slow)
    assert any(line == f"- {bench.UP5K_TARGET}: not met by these rows." for line in slow)
    fast = bench.notes(
        [result("LFE5U-85F", 8, 101.0, 68.0, 0.9813), result("iCE40UP5K", 1, 30.0, 230.0, 0.9782)]
    )
    assert any(
        f"{bench.ECP5_TARGET}: met (trained 784-800-10, 98.13%, 8 lanes, 101.0 MHz, 68.0 µs)" in x
        for x in fast
    )
    assert any(
        f"{bench.UP5K_TARGET}: met (trained 784-800-10, 97.82%: 4992 of 5280 logic cells" in x
        and x.endswith("loaded by the host, rewiring unit in, 30.0 MHz).")
        for x in fast
    )
    accurate_but_slow = bench.notes([result("LFE5U-85F", 8, 101.0, 130.0, 0.9813)])
    assert any(f"{bench.ECP5_TARGET}: not met" in line for line in accurate_but_slow)


def test_shim_cost_comes_from_the_reports_not_from_the_text() -> None:
    rows = [{"shim": {"ffs": 115, "luts_approx": 40}}, {"shim": {"ffs": 99, "luts_approx": 40}}, {}]
    assert bench.shim_text(rows) == "the two-pin synthesis shim (99 to 115 flip-flops and about 40 LUTs)"
    assert bench.shim_text([]) == "the two-pin synthesis shim"
