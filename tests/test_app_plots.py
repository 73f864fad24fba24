"""The figures (:mod:`esl_hw.app.plots`): each is a PNG with a title, labelled axes and a legend, and
plots exactly the data it was given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from esl_hw.app import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 8_000, f"{path}: {len(data)} bytes"


def legend_texts(axes) -> list[str]:
    return [text.get_text() for text in axes.get_legend().get_texts()]


def records(epochs: int = 3, layers: tuple[str, ...] = ("fc0", "fc1")) -> list[dict]:
    """``metrics.jsonl`` records as the training loop writes them (two updates per epoch)."""
    result = []
    for epoch in range(1, epochs + 1):
        updates = [
            {
                "iteration": 10 * epoch + step,
                "fraction": 0.3,
                "layers": [
                    {
                        "name": name,
                        "density": 0.2,
                        "active": 50,
                        "pruned": 9 - epoch - step + index,
                        "grown": 9 - epoch - step + index,
                        "ever_active": 60,
                    }  # fmt: skip
                    for index, name in enumerate(layers)
                ],
            }
            for step in range(2)
        ]
        result.append(
            {
                "epoch": epoch,
                "loss": 2.0 / epoch,
                "train_accuracy": 0.5 + epoch / 20,
                "esl_updates": updates,
                "val_accuracy": 0.4 + epoch / 10,
                "float_val_accuracy": 0.45 + epoch / 10,
                "density": [0.2, 0.5][: len(layers)],
                "overall_density": 0.21,
                "seconds": 0.5,
            }  # fmt: skip
        )
    return result


def test_loss_figure_plots_the_losses(tmp_path: Path) -> None:
    figure = plots.loss_figure([1, 2, 3], [2.0, 1.5, 1.2])
    (axes,) = figure.axes
    assert axes.get_title() == "Training loss"
    assert axes.get_xlabel() == "epoch" and axes.get_ylabel() == "loss (cross-entropy)"
    assert legend_texts(axes) == ["training loss (epoch mean)"]
    (line,) = axes.get_lines()
    assert list(line.get_xdata()) == [1, 2, 3] and list(line.get_ydata()) == [2.0, 1.5, 1.2]
    assert_png(plots.save_png(figure, tmp_path / "loss.png"))


def test_accuracy_figure_leaves_out_missing_values() -> None:
    curves = {"validation (QAT)": [0.5, None, 0.7], "training (QAT)": [0.4, 0.6, 0.8], "none": [None] * 3}
    figure = plots.accuracy_figure([1, 2, 3], curves)
    (axes,) = figure.axes
    assert axes.get_title() == "Accuracy per epoch" and axes.get_ylabel() == "accuracy (fraction correct)"
    assert legend_texts(axes) == ["validation (QAT)", "training (QAT)"]
    validation, training = axes.get_lines()
    assert list(validation.get_xdata()) == [1, 3] and list(validation.get_ydata()) == [0.5, 0.7]
    assert list(training.get_ydata()) == [0.4, 0.6, 0.8]
    empty = plots.accuracy_figure([1], {"validation (QAT)": [None]}).axes[0]
    assert not empty.get_lines() and "no accuracy recorded" in empty.texts[0].get_text()


def test_density_and_rewiring_figures_have_one_line_per_layer_and_kind() -> None:
    density = plots.density_figure([1, 2], {"fc0": [0.2, 0.2], "fc1": [0.5, 0.5]}).axes[0]
    assert density.get_title() == "Density per layer" and density.get_xlabel() == "epoch"
    assert legend_texts(density) == ["fc0", "fc1"]
    assert [list(line.get_ydata()) for line in density.get_lines()] == [[0.2, 0.2], [0.5, 0.5]]
    pruned, grown = {"fc0": [5, 4], "fc1": [2, 1]}, {"fc0": [5, 4], "fc1": [2, 1]}
    axes = plots.rewiring_figure([10, 20], pruned, grown).axes[0]
    assert axes.get_title() == "Pruned and regrown connections per update"
    assert axes.get_xlabel() == "training iteration" and axes.get_ylabel() == "connections per update"
    assert legend_texts(axes) == ["fc0 pruned", "fc0 regrown", "fc1 pruned", "fc1 regrown"]
    lines = axes.get_lines()
    assert [list(line.get_ydata()) for line in lines] == [[5, 4], [5, 4], [2, 1], [2, 1]]
    assert all(list(line.get_xdata()) == [10, 20] for line in lines)
    assert lines[0].get_color() == lines[1].get_color() != lines[2].get_color()
    none = plots.rewiring_figure([], {"fc0": []}, {"fc0": []}).axes[0]
    assert "no prune-and-regrow update" in none.texts[0].get_text()


def test_training_history_reads_every_series_from_the_records() -> None:
    history = plots.training_history(records())
    assert history["epochs"] == [1, 2, 3] and history["loss"] == [2.0, 1.0, 2.0 / 3]
    assert history["accuracy"]["validation (QAT)"] == pytest.approx([0.5, 0.6, 0.7])
    assert history["density"] == {"fc0": [0.2] * 3, "fc1": [0.5] * 3}
    assert history["iterations"] == [10, 11, 20, 21, 30, 31]
    assert history["pruned"]["fc0"] == [8, 7, 7, 6, 6, 5] and history["grown"]["fc1"] == [9, 8, 8, 7, 7, 6]
    without_updates = [dict(record, esl_updates=[]) for record in records(1)]
    assert plots.training_history(without_updates)["density"] == {"layer 0": [0.2], "layer 1": [0.5]}


def test_training_curves_are_written(tmp_path: Path) -> None:
    history = records()
    figures = plots.training_figures(history)
    assert list(figures) == list(plots.TRAINING_FILES)
    loss_line = figures["loss.png"].axes[0].get_lines()[0]
    assert list(loss_line.get_ydata()) == [record["loss"] for record in history]
    assert plots.write_training_curves(tmp_path, history) == list(plots.TRAINING_FILES)
    for name in plots.TRAINING_FILES:
        assert_png(tmp_path / name)


def test_confusion_figure_shows_both_matrices_on_one_scale(tmp_path: Path) -> None:
    rtl = np.array([[3, 1, 0], [0, 2, 0], [1, 0, 4]])
    reference = np.array([[4, 0, 0], [0, 2, 0], [1, 0, 4]])
    figure = plots.confusion_figure({"RTL": rtl, "integer reference": reference})
    assert figure.get_suptitle() == "Per-class confusion"
    left, right, colour_bar = figure.axes
    assert left.get_title() == "RTL (11 images)" and right.get_title() == "integer reference (11 images)"
    assert left.get_xlabel() == "predicted class" and left.get_ylabel() == "true class"
    assert np.array_equal(left.get_images()[0].get_array(), rtl)
    assert np.array_equal(right.get_images()[0].get_array(), reference)
    assert left.get_images()[0].get_clim() == right.get_images()[0].get_clim() == (0, 4)
    assert colour_bar.get_ylabel() == "images"
    assert [text.get_text() for text in left.texts] == [str(value) for value in rtl.ravel()]
    assert_png(plots.save_png(figure, tmp_path / "confusion.png"))


def test_cycles_per_step_figure_plots_busiest_and_mean_lane(tmp_path: Path) -> None:
    first = np.array([[10, 14], [12, 8], [9, 9]])
    second = np.array([[3, 1], [0, 2], [5, 5]])
    figure = plots.cycles_per_step_figure({"layer 0": first, "layer 1": second}, 11.5)
    (axes,) = figure.axes
    assert axes.get_title() == "Lane busy cycles per time step (from the reference's events)"
    assert axes.get_xlabel() == "time step" and axes.get_ylabel() == "cycles per step"
    assert legend_texts(axes) == [
        "layer 0: busiest lane",
        "layer 0: mean lane",
        "layer 1: busiest lane",
        "layer 1: mean lane",
        "RTL measured: cycles / T",
    ]
    lines = axes.get_lines()
    assert list(lines[0].get_ydata()) == [14, 12, 9] and list(lines[1].get_ydata()) == [12, 10, 9]
    assert list(lines[2].get_ydata()) == [3, 2, 5] and list(lines[0].get_xdata()) == [0, 1, 2]
    assert list(lines[4].get_ydata()) == [11.5, 11.5]
    assert_png(plots.save_png(figure, tmp_path / "cycles.png"))


def test_cosim_figures_come_from_the_report_keys(tmp_path: Path) -> None:
    report = {
        "lane_busy_cycles_per_step": [[[4.0, 6.0], [5.0, 5.0]], [[1.0, 0.0], [2.0, 2.0]]],
        "cycles_per_inference": 13.0,
        "confusion_rtl": [[2, 0], [1, 1]],
        "confusion_reference": [[2, 0], [1, 1]],
    }
    assert plots.write_cosim_figures(tmp_path, report) == [plots.CYCLES_FILE, plots.CONFUSION_FILE]
    assert_png(tmp_path / plots.CYCLES_FILE)
    assert_png(tmp_path / plots.CONFUSION_FILE)
