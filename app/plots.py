"""PNG figures of the commands: training curves, confusion matrices, lane busy cycles per step.

One function per figure, each taking plain data (sequences, dicts, numpy arrays) and returning a
:class:`matplotlib.figure.Figure` with a title, labelled axes and a legend (or a colour bar);
:func:`save_png` writes one. The figures are drawn on matplotlib's Agg canvas directly, without
pyplot, so no GUI backend is ever loaded and no global figure state is kept.

Which command writes which file: :func:`write_training_curves` (every training run, into the run
folder), :data:`CONFUSION_FILE` (``compare``, ``demo``), :data:`CYCLES_FILE` (``sim``, ``demo``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: File names of the training curves, in the order :func:`training_figures` returns them.
TRAINING_FILES = ("loss.png", "accuracy.png", "density.png", "rewiring.png")
CONFUSION_FILE = "confusion.png"
CYCLES_FILE = "cycles_per_step.png"
DPI = 100


def _figure(width: float = 6.4, height: float = 4.0) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _note(axes: Any, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes)


def save_png(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` to ``path`` as PNG; return the path."""
    path = Path(path)
    figure.savefig(path, format="png", dpi=DPI)
    return path


def loss_figure(epochs: Sequence[int], loss: Sequence[float]) -> Figure:
    """Training loss (mean over the epoch's samples) against the epoch."""
    figure = _figure()
    axes = figure.add_subplot()
    axes.plot(list(epochs), list(loss), marker="o", label="training loss (epoch mean)")
    axes.set(title="Training loss", xlabel="epoch", ylabel="loss (cross-entropy)")
    axes.legend()
    return figure


def accuracy_figure(epochs: Sequence[int], curves: Mapping[str, Sequence[float | None]]) -> Figure:
    """Accuracies against the epoch, one line per entry of ``curves`` (``None`` values are left out,
    e.g. a validation accuracy without a validation split)."""
    figure = _figure()
    axes = figure.add_subplot()
    for name, values in curves.items():
        points = [(epoch, value) for epoch, value in zip(epochs, values, strict=True) if value is not None]
        if points:
            axes.plot(*zip(*points, strict=True), marker="o", label=name)
    axes.set(title="Accuracy per epoch", xlabel="epoch", ylabel="accuracy (fraction correct)")
    if axes.get_lines():
        axes.legend(loc="lower right")
    else:
        _note(axes, "no accuracy recorded")
    return figure


def density_figure(epochs: Sequence[int], densities: Mapping[str, Sequence[float]]) -> Figure:
    """Connection density of each sparse layer (``densities``: layer name -> one value per epoch)."""
    figure = _figure()
    axes = figure.add_subplot()
    for name, values in densities.items():
        axes.plot(list(epochs), list(values), marker="o", label=name)
    axes.set(title="Density per layer", xlabel="epoch", ylabel="density (active / possible connections)")
    axes.legend()
    return figure


def rewiring_figure(
    iterations: Sequence[int], pruned: Mapping[str, Sequence[int]], grown: Mapping[str, Sequence[int]]
) -> Figure:
    """Connections pruned and regrown in each prune-and-regrow update, per layer (``pruned`` and
    ``grown``: layer name -> one count per update at ``iterations``)."""
    figure = _figure()
    axes = figure.add_subplot()
    for index, name in enumerate(pruned):
        style = {"color": f"C{index}"}
        axes.plot(list(iterations), list(pruned[name]), marker="o", label=f"{name} pruned", **style)
        axes.plot(list(iterations), list(grown[name]), "x--", label=f"{name} regrown", **style)
    axes.set(
        title="Pruned and regrown connections per update",
        xlabel="training iteration",
        ylabel="connections per update",
    )
    if len(iterations):
        axes.legend()
    else:
        _note(axes, "no prune-and-regrow update in this run")
    return figure


def training_history(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The series the training curves plot, from the records of ``metrics.jsonl`` (one per epoch).

    Returns ``epochs``, ``loss``, ``accuracy`` (name -> per epoch), ``density`` (layer -> per
    epoch), ``iterations`` (of the updates) and ``pruned``/``grown`` (layer -> per update).
    """
    updates = [update for record in records for update in record.get("esl_updates", [])]
    names = [layer["name"] for layer in updates[0]["layers"]] if updates else []
    widths = {len(record["density"]) for record in records}
    if len(widths) == 1 and len(names) != next(iter(widths)):
        names = [f"layer {index}" for index in range(next(iter(widths)))]

    def per_update(key: str) -> dict[str, list[int]]:
        return {
            name: [update["layers"][index][key] for update in updates] for index, name in enumerate(names)
        }

    return {
        "epochs": [record["epoch"] for record in records],
        "loss": [record["loss"] for record in records],
        "accuracy": {
            "training (QAT)": [record.get("train_accuracy") for record in records],
            "validation (QAT)": [record.get("val_accuracy") for record in records],
            "validation (float)": [record.get("float_val_accuracy") for record in records],
        },
        "density": {name: [record["density"][i] for record in records] for i, name in enumerate(names)},
        "iterations": [update["iteration"] for update in updates],
        "pruned": per_update("pruned"),
        "grown": per_update("grown"),
    }


def training_figures(records: Sequence[Mapping[str, Any]]) -> dict[str, Figure]:
    """The training curves of ``records`` (``metrics.jsonl``), keyed by :data:`TRAINING_FILES`."""
    history = training_history(records)
    epochs = history["epochs"]
    figures = (
        loss_figure(epochs, history["loss"]),
        accuracy_figure(epochs, history["accuracy"]),
        density_figure(epochs, history["density"]),
        rewiring_figure(history["iterations"], history["pruned"], history["grown"]),
    )
    return dict(zip(TRAINING_FILES, figures, strict=True))


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl`` (one JSON object per line, per epoch)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_training_curves(folder: Path, records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Write the curves of ``records`` (:data:`TRAINING_FILES`) into ``folder``; return the names."""
    for name, figure in training_figures(records).items():
        save_png(figure, folder / name)
    return list(TRAINING_FILES)


def confusion_figure(matrices: Mapping[str, np.ndarray]) -> Figure:
    """Confusion matrices side by side (``matrices``: title -> ``[classes, classes]`` counts, row =
    true label, column = predicted class), one colour scale for all, counts written in the cells."""
    figure = _figure(5.2 * len(matrices), 4.6)
    arrays = [np.asarray(matrix) for matrix in matrices.values()]
    top = max(1, max(int(array.max(initial=0)) for array in arrays))
    image = None
    for index, (title, counts) in enumerate(zip(matrices, arrays, strict=True)):
        axes = figure.add_subplot(1, len(arrays), index + 1)
        image = axes.imshow(counts, cmap="Blues", vmin=0, vmax=top)
        classes = counts.shape[0]
        axes.set(
            title=f"{title} ({int(counts.sum())} images)",
            xlabel="predicted class",
            ylabel="true class",
            xticks=range(classes),
            yticks=range(classes),
        )
        if classes <= 20:
            for (row, column), value in np.ndenumerate(counts):
                colour = "white" if value > top / 2 else "black"
                axes.text(column, row, str(value), ha="center", va="center", fontsize=7, color=colour)
    if image is not None:
        figure.colorbar(image, ax=figure.axes, label="images", shrink=0.8)
    figure.suptitle("Per-class confusion")
    return figure


def cycles_per_step_figure(
    lane_busy: Mapping[str, np.ndarray], measured_cycles_per_step: float | None = None
) -> Figure:
    """Busy cycles of the lanes in every time step, per layer core (``lane_busy``: layer name ->
    ``[T, L]`` cycles of each lane in each step): the busiest lane and the mean over the lanes, with
    the RTL's measured cycles per inference over T as a horizontal line.
    """
    figure = _figure()
    axes = figure.add_subplot()
    steps = 0
    for index, (name, busy) in enumerate(lane_busy.items()):
        busy, colour = np.asarray(busy, dtype=np.float64), f"C{index}"
        steps = max(steps, busy.shape[0])
        axes.plot(busy.max(axis=1), marker="o", color=colour, label=f"{name}: busiest lane")
        axes.plot(busy.mean(axis=1), linestyle="--", color=colour, label=f"{name}: mean lane")
    if measured_cycles_per_step is not None:
        axes.axhline(measured_cycles_per_step, color="black", linestyle=":", label="RTL measured: cycles / T")
    axes.set(
        title="Lane busy cycles per time step (from the reference's events)",
        xlabel="time step",
        ylabel="cycles per step",
        xticks=range(steps),
    )
    axes.legend(fontsize="small")
    return figure


def write_cosim_figures(folder: Path, report: Mapping[str, Any]) -> list[str]:
    """Write the figures of a co-simulation report (``sim.json``'s keys) into ``folder``: the lanes'
    busy cycles per step (:data:`CYCLES_FILE`) and the confusion of the RTL and the reference on
    the same images (:data:`CONFUSION_FILE`); return the names."""
    busy = [np.asarray(layer, dtype=np.float64) for layer in report["lane_busy_cycles_per_step"]]
    steps = busy[0].shape[0]
    lanes = {f"layer {index}": layer for index, layer in enumerate(busy)}
    save_png(cycles_per_step_figure(lanes, report["cycles_per_inference"] / steps), folder / CYCLES_FILE)
    matrices = {"RTL": report["confusion_rtl"], "integer reference": report["confusion_reference"]}
    save_png(
        confusion_figure({name: np.asarray(counts) for name, counts in matrices.items()}),
        folder / CONFUSION_FILE,
    )
    return [CYCLES_FILE, CONFUSION_FILE]
