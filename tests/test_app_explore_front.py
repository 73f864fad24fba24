"""Pareto front, budgets and the reports of ``esl-hw explore`` (:mod:`esl_hw.app.explore_front`), on
hand-made points whose answers are known."""

from __future__ import annotations

from esl_hw.app.explore_front import (
    PUBLISHED_MNIST,
    best_under,
    dominates,
    front_markdown,
    front_payload,
    meets,
    pareto_front,
)
from esl_hw.app.explore_space import METRICS, Budget

SPACE = {
    "name": "hand",
    "objectives": ["accuracy", "latency_us"],
    "published": "mnist",
    "strategy": {"kind": "grid"},
}


def point(
    number: int, accuracy, latency, status: str = "ok", target: str | None = "ecp5-85k", **more
) -> dict:
    metrics = dict.fromkeys(METRICS)
    metrics.update(
        accuracy=accuracy, latency_us=latency, cycles=None if latency is None else latency * 100, **more
    )
    return {
        "number": number,
        "label": f"p{number}",
        "settings": {},
        "hardware": {"target": target},
        "status": status,
        "metrics": metrics,
    }


POINTS = [
    point(1, 0.90, 50.0),  # front: fastest
    point(2, 0.95, 80.0),  # front
    point(3, 0.94, 90.0),  # dominated by 2
    point(4, 0.97, 200.0),  # front: most accurate
    point(5, 0.95, 80.0),  # equal to 2: neither dominates, both on the front
    point(6, 0.99, 10.0, status="does not fit"),  # would dominate all, but does not fit
    point(7, 0.99, None, target=None),  # not synthesised: no latency
    point(8, 0.96, 100.0, luts=30000),
]


def test_dominance_follows_each_metrics_direction() -> None:
    a = {"accuracy": 0.9, "latency_us": 10.0, "fmax_mhz": 100.0}
    b = {"accuracy": 0.8, "latency_us": 20.0, "fmax_mhz": 90.0}
    assert dominates(a, b, ["accuracy", "latency_us"]) and not dominates(b, a, ["accuracy", "latency_us"])
    assert dominates(a, b, ["fmax_mhz"]), "Fmax is better higher"
    assert not dominates(a, dict(a), ["accuracy", "latency_us"]), "equal points do not dominate"
    c = {"accuracy": 0.95, "latency_us": 30.0}
    assert not dominates(a, c, ["accuracy", "latency_us"]) and not dominates(c, a, ["accuracy", "latency_us"])


def test_pareto_front_of_hand_made_points() -> None:
    front = [p["number"] for p in pareto_front(POINTS, ["accuracy", "latency_us"])]
    assert front == [1, 2, 4, 5, 8]
    by_cycles = [p["number"] for p in pareto_front(POINTS, ["accuracy", "cycles"])]
    assert by_cycles == [1, 2, 4, 5, 8], "point 7 has no cycles measured here either"
    three = [p["number"] for p in pareto_front(POINTS, ["accuracy", "latency_us", "luts"])]
    assert three == [8], "only point 8 has LUTs measured"
    assert pareto_front([], ["accuracy", "cycles"]) == []


def test_budgets_keep_their_limits_target_and_best_metric() -> None:
    fast = Budget("fast", "ecp5-85k", (("latency_us", 100.0),), ())
    assert best_under(POINTS, fast)["number"] == 8, "most accurate within 100 µs (the does-not-fit 6 is out)"
    accurate = Budget("accurate", None, (), (("accuracy", 0.95),), best="latency_us")
    assert best_under(POINTS, accurate)["number"] == 2, (
        "fastest at >= 95 %: 2 and 5 tie, the lower number wins"
    )
    elsewhere = Budget("up5k", "ice40-up5k", (("latency_us", 1000.0),), ())
    assert best_under(POINTS, elsewhere) is None
    impossible = Budget("none", None, (("latency_us", 1.0),), ())
    assert best_under(POINTS, impossible) is None
    assert not meets(POINTS[6], fast), "a point without the budget's metric does not meet it"
    assert meets(POINTS[0], Budget("cheap", None, (("latency_us", 50.0),), ())), "limits are inclusive"


def test_payload_and_markdown() -> None:
    budgets = (Budget("fast", "ecp5-85k", (("latency_us", 100.0),), ()),)
    payload = front_payload(SPACE, budgets, list(reversed(POINTS)), {"planned": 8, "dataset": "hand-made"})
    assert [p["number"] for p in payload["points"]] == list(range(1, 9)), "points in number order"
    assert payload["front"] == [1, 2, 4, 5, 8]
    assert [p["pareto"] for p in payload["points"]] == [True, True, False, True, True, False, False, True]
    assert payload["budgets"][0]["point"] == 8 and payload["budgets"][0]["points_within"] == 5
    assert payload["published"] == list(PUBLISHED_MNIST) and payload["planned"] == 8
    assert front_payload({**SPACE, "published": None}, (), POINTS, {})["published"] == []
    text = front_markdown(payload)
    assert text.startswith("# Exploration hand: 8 points, 5 on the Pareto front")
    assert "| fast | accuracy | 8 | p8 | 0.96 |" in text
    assert "| 4 ★ | p4 | ecp5-85k | 0.97 |" in text and "| 3 | p3 | ecp5-85k | 0.94 |" in text
    assert "| Spiker+ | Xilinx Artix-7 | 0.9385 | 780 | 7612 |" in text and "![" in text
    assert "does not fit" in text
