"""The results of ``esl-hw explore``: Pareto front, budgets, ``front.json`` and ``front.md``.

A point (a dictionary as :mod:`esl_hw.app.explore` records it) has a ``number``, its ``settings``,
a ``status`` (``ok``, ``does not fit``, ``mismatch`` or ``error``) and its ``metrics``
(:data:`esl_hw.app.explore_space.METRICS`, ``None`` where not measured). Only points with status
``ok`` and every objective measured take part in the front and the budgets.

A point *dominates* another when it is at least as good in every objective and better in one
(accuracy and Fmax higher, the costs lower); the Pareto front is the set of points no point
dominates. A budget keeps the points within its limits (on its target, if it names one) and reports
the best of them by its ``best`` metric, ties to the lower number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from esl_hw.app.explore_space import METRICS, Budget

#: Published FPGA SNN designs for MNIST, drawn and listed beside a front on MNIST (``published:
#: mnist``); the figures as their sources report them (docs/benchmarks/fpga.md, README.md).
PUBLISHED_MNIST: tuple[dict[str, Any], ...] = (
    {
        "design": "Skydiver",
        "source": "Chen et al., IEEE TCAD 2022 (conv SNN; 22.6k frames/s, 42.4 µJ per image)",
        "device": "Xilinx Zynq XC7Z045",
        "accuracy": 0.985,
        "latency_us": 44.2,
        "luts": None,
    },
    {
        "design": "Spiker+",
        "source": "Carpegna et al., 2024, arXiv:2401.01141 (7,612 LC, 18 BRAM)",
        "device": "Xilinx Artix-7",
        "accuracy": 0.9385,
        "latency_us": 780.0,
        "luts": 7612,
    },
    {
        "design": "snn-fpga",
        "source": "Artix-7 MNIST SNN, reported in the project's design brief (accuracy not given)",
        "device": "Xilinx Artix-7",
        "accuracy": None,
        "latency_us": 520.0,
        "luts": 6358,
    },
)
#: statuses of points that have results (an ``error`` point is retried by ``--resume``)
STATUSES = ("ok", "does not fit", "mismatch", "error")


def better(metric: str, a: float, b: float) -> bool:
    """Whether ``a`` is strictly better than ``b`` in ``metric``."""
    return a > b if METRICS[metric][0] == "max" else a < b


def dominates(a: dict[str, Any], b: dict[str, Any], objectives: Sequence[str]) -> bool:
    """Whether metrics ``a`` dominate metrics ``b`` in ``objectives``."""
    not_worse = all(not better(name, b[name], a[name]) for name in objectives)
    return not_worse and any(better(name, a[name], b[name]) for name in objectives)


def candidates(points: Sequence[dict[str, Any]], objectives: Sequence[str]) -> list[dict[str, Any]]:
    """The points that take part in a front over ``objectives``: status ``ok``, each one measured."""
    return [
        point
        for point in points
        if point["status"] == "ok" and all(point["metrics"].get(name) is not None for name in objectives)
    ]


def pareto_front(points: Sequence[dict[str, Any]], objectives: Sequence[str]) -> list[dict[str, Any]]:
    """The points of ``points`` that no other point dominates in ``objectives`` (in their order)."""
    pool = candidates(points, objectives)
    return [
        point
        for point in pool
        if not any(dominates(other["metrics"], point["metrics"], objectives) for other in pool)
    ]


def meets(point: dict[str, Any], budget: Budget) -> bool:
    """Whether ``point`` is ``ok``, on the budget's target (if any) and within its limits."""
    if point["status"] != "ok":
        return False
    if budget.target is not None and point["hardware"].get("target") != budget.target:
        return False
    metrics = point["metrics"]
    for name, bound in budget.maximum:
        if metrics.get(name) is None or metrics[name] > bound:
            return False
    for name, bound in budget.minimum:
        if metrics.get(name) is None or metrics[name] < bound:
            return False
    return metrics.get(budget.best) is not None


def best_under(points: Sequence[dict[str, Any]], budget: Budget) -> dict[str, Any] | None:
    """The best point within ``budget`` by its ``best`` metric (ties: lower number), or ``None``."""
    best = None
    for point in sorted((p for p in points if meets(p, budget)), key=lambda p: p["number"]):
        if best is None or better(budget.best, point["metrics"][budget.best], best["metrics"][budget.best]):
            best = point
    return best


def front_payload(
    space: dict[str, Any], budgets: Sequence[Budget], points: Sequence[dict[str, Any]], extra: dict[str, Any]
) -> dict[str, Any]:
    """``front.json``: the space, every point (``pareto`` marked), the budgets with their best
    point, the published designs when the space asks for them, and ``extra`` (sessions, stage
    counts, planned points)."""
    objectives = space["objectives"]
    ordered = sorted(points, key=lambda p: p["number"])
    on_front = {point["number"] for point in pareto_front(ordered, objectives)}
    marked = [{**point, "pareto": point["number"] in on_front} for point in ordered]
    budget_rows = []
    for budget in budgets:
        best = best_under(marked, budget)
        budget_rows.append(
            {
                "name": budget.name,
                "target": budget.target,
                "max": dict(budget.maximum),
                "min": dict(budget.minimum),
                "best": budget.best,
                "point": None if best is None else best["number"],
                "points_within": sum(1 for point in marked if meets(point, budget)),
            }
        )
    return {
        "name": space["name"],
        "objectives": list(objectives),
        "directions": {name: METRICS[name][0] for name in METRICS},
        "units": {name: METRICS[name][1] for name in METRICS},
        **extra,
        "front": sorted(on_front),
        "budgets": budget_rows,
        "published": list(PUBLISHED_MNIST) if space.get("published") == "mnist" else [],
        "points": marked,
        "space": space,
    }


def _cell(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value).replace("|", "\\|")


#: columns of the point tables: (header, metric or detail, digits)
COLUMNS = (
    ("accuracy", "accuracy", 4),
    ("cycles", "cycles", 6),
    ("latency µs", "latency_us", 4),
    ("Fmax MHz", "fmax_mhz", 4),
    ("LUT", "luts", 6),
    ("FF", "ffs", 6),
    ("BRAM", "bram", 4),
    ("memory bits", "memory_bits", 8),
    ("energy µJ", "energy_uj", 4),
    ("synapses", "synapses", 8),
)


def _row(point: dict[str, Any]) -> str:
    metrics = dict(point["metrics"])
    energy = metrics.get("energy_j")
    metrics["energy_uj"] = None if energy is None else energy * 1e6
    star = " ★" if point.get("pareto") else ""
    target = point["hardware"].get("target") or "-"
    cells = [f"{point['number']}{star}", point["label"], target]
    cells += [_cell(metrics.get(name), digits) for _, name, digits in COLUMNS]
    cells.append(point["status"] + (f": {point['error']}" if point.get("error") else ""))
    return "| " + " | ".join(cells) + " |"


def _table(points: Sequence[dict[str, Any]]) -> list[str]:
    header = ["#", "settings", "target", *(title for title, _, _ in COLUMNS), "status"]
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" if i < 3 else "---:" for i in range(len(header) - 1)) + " | --- |",
        *(_row(point) for point in points),
    ]


def front_markdown(payload: dict[str, Any]) -> str:
    """``front.md``: the budgets, the front, every point, the published designs, the figure."""
    points = payload["points"]
    by_number = {point["number"]: point for point in points}
    objectives = ", ".join(f"{name} ({METRICS[name][0]})" for name in payload["objectives"])
    lines = [
        f"# Exploration {payload['name']}: {len(points)} points, {len(payload['front'])} on the Pareto front",
        "",
        f"Objectives: {objectives}. Data: {payload.get('dataset', '-')}. "
        f"Strategy: {payload['space']['strategy']['kind']}, {payload.get('planned', len(points))} points "
        f"planned. ★ marks the Pareto front. Accuracy is the integer reference on the whole test set; "
        "cycles are the mean of the co-simulated test images (bit-exact checked); latency = cycles / "
        "post-route Fmax. Keys and units: docs/explore.md.",
        "",
    ]
    if payload["budgets"]:
        lines += ["## Best point per budget", "", "| budget | best by | point | settings | value |"]
        lines.append("| --- | --- | --- | --- | ---: |")
        for row in payload["budgets"]:
            best = by_number.get(row["point"])
            if best is None:
                lines.append(f"| {row['name']} | {row['best']} | none within it | - | - |")
            else:
                value = _cell(best["metrics"][row["best"]], 6)
                lines.append(
                    f"| {row['name']} | {row['best']} | {best['number']} | {best['label']} | {value} |"
                )
        lines.append("")
    front = [point for point in points if point.get("pareto")]
    lines += ["## Pareto front", "", *_table(front), "", "## Every point", "", *_table(points), ""]
    if payload["published"]:
        lines += ["## Published FPGA SNN designs on MNIST", ""]
        lines += [
            "| design | device | accuracy | latency µs | LUT | source |",
            "| --- | --- | ---: | ---: | ---: | --- |",
        ]
        for design in payload["published"]:
            cells = [
                design["design"],
                design["device"],
                _cell(design["accuracy"]),
                _cell(design["latency_us"]),
            ]
            cells += [_cell(design["luts"]), design["source"]]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    sessions = payload.get("sessions", [])
    if sessions:
        lines += ["## Sessions", "", "| session | started | wall s | workers | load average | trained | "
                  "co-simulated | synthesised | stages reused | points recorded before |"]  # fmt: skip
        lines.append("| ---: | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
        for session in sessions:
            computed, reused = session["computed"], session["reused"]
            cells = [
                session["number"],
                session["started"],
                _cell(session["wall_s"], 5),
                session["workers"],
                session["load_average"],
                computed["train"],
                computed["cosim"],
                computed["synth"],
                sum(reused.values()),
                session["points_recorded_before"],
            ]
            lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
        lines.append("")
    lines += ["![accuracy against latency, LUTs and memory](front.png)", ""]
    return "\n".join(lines)
