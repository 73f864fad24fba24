"""``front.png`` of ``esl-hw explore``: accuracy against latency, LUTs and memory, the front drawn.

One panel per cost: latency in µs (cycles when no point was synthesised), LUTs (when any point
was synthesised) and memory bits. Each panel shows every point with results (numbered as in
``front.md``; points that do not fit or mismatch are hollow), the two-dimensional Pareto front of
that panel (accuracy up, cost down) as a step line, and, for a space with ``published: mnist``, the
published designs (:data:`esl_hw.app.explore_front.PUBLISHED_MNIST`) where they report that cost; a
design without a reported accuracy is a vertical line at its cost. Drawn with matplotlib's Agg
backend, without a display, and written atomically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from esl_hw.app.explore_front import pareto_front

#: panel x metrics and their axis labels
PANELS = {
    "latency_us": "latency per image (µs, cycles / post-route Fmax)",
    "cycles": "cycles per image (co-simulated)",
    "luts": "LUTs (logic cells on the iCE40)",
    "memory_bits": "memory (bits)",
}
#: marker colour per target (``None``: co-simulated only)
COLOURS = {None: "tab:blue", "ecp5-85k": "tab:orange", "ecp5-25k": "tab:green", "ice40-up5k": "tab:purple"}


def panels_for(points: Sequence[dict[str, Any]]) -> list[str]:
    """The x metrics of the panels: latency (or cycles), LUTs where measured, memory bits."""

    def measured(name: str) -> bool:
        return any(point["metrics"].get(name) is not None for point in points)

    return [
        "latency_us" if measured("latency_us") else "cycles",
        *(["luts"] if measured("luts") else []),
        "memory_bits",
    ]


def _label_groups(
    shown: Sequence[dict[str, Any]], metric: str, log: bool
) -> dict[tuple[int, float], list[dict[str, Any]]]:
    """Points that would sit on each other in the panel (same accuracy, x within 1% of the panel's
    width on its scale), grouped so that they share one label ("9,10")."""
    xs = [point["metrics"][metric] for point in shown]
    scaled = [math.log10(x) for x in xs] if log else xs
    low, width = (min(scaled), (max(scaled) - min(scaled)) or 1.0) if scaled else (0.0, 1.0)
    groups: dict[tuple[int, float], list[dict[str, Any]]] = {}
    for point, x in zip(shown, scaled, strict=True):
        key = (round(100 * (x - low) / width), round(point["metrics"]["accuracy"], 4))
        groups.setdefault(key, []).append(point)
    return groups


def _draw_panel(axis: Any, metric: str, points: Sequence[dict[str, Any]], published: Sequence[dict]) -> int:
    """Draw one panel; return how many published designs it shows."""
    shown = [point for point in points if point["metrics"].get(metric) is not None]
    shown = [point for point in shown if point["metrics"].get("accuracy") is not None]
    values = [point["metrics"][metric] for point in shown] + [d[metric] for d in published if d.get(metric)]
    log = bool(values) and min(values) > 0 and max(values) / min(values) > 20
    for point in shown:
        x, y = point["metrics"][metric], point["metrics"]["accuracy"]
        colour = COLOURS.get(point["hardware"].get("target"), "tab:gray")
        hollow = point["status"] != "ok"
        axis.scatter(
            [x], [y], s=36, marker="o", facecolors="none" if hollow else colour, edgecolors=colour, zorder=3
        )
    for group in _label_groups(shown, metric, log).values():
        first = group[0]["metrics"]
        label = ",".join(str(point["number"]) for point in group)
        axis.annotate(label, (first[metric], first["accuracy"]), textcoords="offset points", xytext=(4, 3),
                      fontsize=7)  # fmt: skip
    front = sorted(pareto_front(shown, ("accuracy", metric)), key=lambda p: p["metrics"][metric])
    if front:
        xs = [point["metrics"][metric] for point in front]
        ys = [point["metrics"]["accuracy"] for point in front]
        axis.step(xs, ys, where="post", color="black", linewidth=1.2, label="Pareto front", zorder=2)
    drawn = 0
    for design in published:
        cost = design.get(metric)
        if cost is None:
            continue
        drawn += 1
        if design["accuracy"] is None:
            axis.axvline(cost, color="tab:red", linestyle=":", linewidth=1)
            axis.annotate(
                f"{design['design']} (accuracy n/a)", (cost, 0.02), xycoords=("data", "axes fraction"),
                rotation=90, fontsize=7, color="tab:red", xytext=(3, 0), textcoords="offset points",
            )  # fmt: skip
        else:
            axis.scatter([cost], [design["accuracy"]], marker="*", s=90, color="tab:red", zorder=4)
            axis.annotate(design["design"], (cost, design["accuracy"]), textcoords="offset points",
                          xytext=(5, -9), fontsize=7, color="tab:red")  # fmt: skip
    if log:
        axis.set_xscale("log")
    elif values and max(values) >= 10_000:  # 200000 and its neighbours would run into each other
        from matplotlib.ticker import FuncFormatter

        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value / 1000:g}k"))
    axis.set_xlabel(PANELS[metric])
    axis.set_ylabel("accuracy (integer reference, test set)")
    axis.grid(True, alpha=0.3)
    return drawn


def load_pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend. The exploration loads it before its first result, so
    that a kill (SIGTERM) cannot land in the middle of this import and leave it half done."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_front_png(path: Path, payload: dict[str, Any], title: str | None = None) -> Path:
    """Draw ``front.png`` of a ``front.json`` ``payload`` into ``path`` (atomically); return it."""
    plt = load_pyplot()
    from matplotlib.lines import Line2D

    points = payload["points"]
    published = payload.get("published", [])
    metrics = panels_for(points)
    figure, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 4.4), squeeze=False)
    drawn = sum(
        _draw_panel(axis, metric, points, published) for axis, metric in zip(axes[0], metrics, strict=True)
    )
    targets = sorted({point["hardware"].get("target") for point in points}, key=str)
    handles = [
        Line2D(
            [], [], marker="o", linestyle="", color=COLOURS.get(t, "tab:gray"), label=t or "co-simulated only"
        )
        for t in targets
    ]
    handles.append(Line2D([], [], color="black", label="Pareto front of the panel"))
    if any(point["status"] != "ok" for point in points):
        handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="none", color="gray",
                              label="does not fit / mismatch"))  # fmt: skip
    if drawn:
        handles.append(Line2D([], [], marker="*", linestyle="", color="tab:red", label="published (MNIST)"))
    elif published:  # they report µs and LUTs; without synthesis the front has cycles only
        names = ", ".join(f"{d['design']} {d['latency_us']:g} µs" for d in published)
        figure.text(0.01, 0.01, f"Published MNIST designs not drawn (no synthesis, so no µs here): {names}",
                    fontsize=7, color="tab:red")  # fmt: skip
    axes[0][0].legend(handles=handles, fontsize=7, loc="best")
    figure.suptitle(title or f"esl-hw explore {payload['name']}: {len(points)} points", fontsize=10)
    figure.tight_layout(rect=(0, 0.03 if published and not drawn else 0, 1, 1))
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}.png")
    figure.savefig(temporary, dpi=110)
    plt.close(figure)
    os.replace(temporary, path)
    return path
