"""How the commands show their results: aligned terminal tables and the Markdown of ``compare``."""

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
