"""``front.png`` of ``esl-hw explore`` (:mod:`esl_hw.app.explore_plot`): its panels, the front drawn,
the published designs where they report the panel's cost, and an atomic write."""

from __future__ import annotations

from pathlib import Path

from test_app_explore_front import POINTS, SPACE

from esl_hw.app.explore_front import PUBLISHED_MNIST, front_payload
from esl_hw.app.explore_plot import _draw_panel, _label_groups, panels_for, write_front_png

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_panels_follow_what_was_measured() -> None:
    assert panels_for(POINTS) == ["latency_us", "luts", "memory_bits"]
    cosim_only = [{**p, "metrics": {**p["metrics"], "latency_us": None, "luts": None}} for p in POINTS]
    assert panels_for(cosim_only) == ["cycles", "memory_bits"]


def test_published_designs_are_drawn_where_they_report_the_cost() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3)
    try:
        assert _draw_panel(axes[0], "latency_us", POINTS, PUBLISHED_MNIST) == 3
        assert _draw_panel(axes[1], "luts", POINTS, PUBLISHED_MNIST) == 2, "Skydiver reports no LUTs"
        assert _draw_panel(axes[2], "cycles", POINTS, PUBLISHED_MNIST) == 0
        assert len(axes[0].lines) == 2, "the front's step line and snn-fpga's line (no accuracy reported)"
        labels = {text.get_text() for text in axes[0].texts}
        assert {"Skydiver", "Spiker+", "snn-fpga (accuracy n/a)", "1", "8", "2,5"} <= labels, (
            "2 and 5 coincide"
        )
        assert axes[0].get_xscale() == "log", "10 to 780 µs: a range over 20x is drawn on a log scale"
        assert axes[1].get_xscale() == "linear"
    finally:
        plt.close(figure)


def test_points_on_top_of_each_other_share_a_label() -> None:
    def at(latency: float) -> dict:
        return {**POINTS[1], "metrics": {**POINTS[1]["metrics"], "accuracy": 0.90, "latency_us": latency}}

    near = [POINTS[0], at(50.4), POINTS[3]]  # 0.4 µs apart on a panel 150 µs wide
    groups = _label_groups(near, "latency_us", log=False)
    assert [[p["number"] for p in group] for group in groups.values()] == [[1, 2], [4]]
    assert len(_label_groups([POINTS[0], at(60.0), POINTS[3]], "latency_us", log=False)) == 3


def test_front_png_is_written_atomically(tmp_path: Path) -> None:
    payload = front_payload(SPACE, (), POINTS, {})
    path = write_front_png(tmp_path / "front.png", payload)
    width, height = _size(path)
    assert width > 2.5 * height, "three panels side by side"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["front.png"]
    unsynthesised = {"latency_us": None, "luts": None}
    cosim_only = [
        {**p, "hardware": {"target": None}, "metrics": {**p["metrics"], **unsynthesised}} for p in POINTS
    ]
    narrow = _size(write_front_png(tmp_path / "front.png", front_payload(SPACE, (), cosim_only, {})))
    assert narrow[0] < width, "two panels without synthesis"
