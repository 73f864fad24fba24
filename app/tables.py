"""How the commands show their results: aligned terminal tables, the Markdown of ``compare`` and of the
NeuroBench metrics."""

from __future__ import annotations

from typing import Any


def print_table(title: str, rows: list[tuple[str, Any]]) -> None:
    """Print ``rows`` as an aligned two-column table under ``title``."""
    width = max(len(name) for name, _ in rows)
    print(title)
    print("-" * (width + 24))
    for name, value in rows:
        if isinstance(value, float) and (value == 0 or 1e-3 <= abs(value) < 100):
            text = f"{value:.4f}"
        elif isinstance(value, float):
            text = f"{value:.1f}" if abs(value) >= 100 else f"{value:.4g}"
        else:
            text = str(value)
        print(f"{name.ljust(width)}  {text}")


def compare_markdown(report: dict[str, Any]) -> str:
    """The comparison as a Markdown table."""
    rows = [
        ("float model", report["float_accuracy"], report["float_source"]),
        ("integer reference", report["int_accuracy"], f"{report['int_samples']} images"),
        ("RTL", report["rtl_accuracy"], f"{report['rtl_samples']} images, {report['simulator']}"),
    ]
    lines = ["| model | accuracy | on |", "| --- | --- | --- |"]
    for name, accuracy, source in rows:
        lines.append(f"| {name} | {'n/a' if accuracy is None else f'{accuracy:.4f}'} | {source} |")
    lines += [
        "",
        f"RTL samples whose spikes, outputs or prediction differ from the reference in any bit: "
        f"**{report['rtl_mismatches']}** of {report['rtl_samples']} (potentials checked: "
        f"{'yes' if report['potentials_checked'] else 'no'}); integer reference accuracy on the same "
        f"images: {report['int_accuracy_rtl_samples']:.4f}.",
    ]
    return "\n".join(lines) + "\n"


def neurobench_markdown(metrics: dict[str, Any]) -> str:
    """The reports' ``neurobench`` object (:func:`esl_hw.neurobench_metrics.neurobench_metrics`) as a
    Markdown table, NeuroBench's metrics under its names and esl-hw's ``csr_bits`` below them."""
    ops = metrics["SynapticOperations"]
    rows = [
        ("Footprint", f"{metrics['Footprint']}", "bytes"),
        ("ConnectionSparsity", f"{metrics['ConnectionSparsity']:.4f}", "fraction"),
        ("ActivationSparsity", f"{metrics['ActivationSparsity']:.4f}", "fraction"),
        ("SynapticOperations Effective_MACs", f"{ops['Effective_MACs']:.1f}", "MACs per image"),
        ("SynapticOperations Effective_ACs", f"{ops['Effective_ACs']:.1f}", "ACs per image"),
        ("SynapticOperations Dense", f"{ops['Dense']:.1f}", "operations per image"),
        ("csr_bits (esl-hw, not NeuroBench)", f"{metrics['csr_bits']}", "bits"),
    ]
    lines = [
        f"NeuroBench {metrics['neurobench_version']} metrics over {metrics['samples']} images "
        "(definitions: docs/metrics.md):",
        "",
        "| metric | value | unit |",
        "| --- | --- | --- |",
        *(f"| {name} | {value} | {unit} |" for name, value, unit in rows),
    ]
    return "\n".join(lines) + "\n"
