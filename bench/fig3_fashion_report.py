"""The tables and figures of ``fig3_fashion.py`` (ESL-SNN paper Fig. 3 on a Fashion-MNIST stand-in).

From the results of the runs (``fig3_fashion.py``'s scored rows, complete or not): Fig. 3(a)'s
table and plot of VGGSNN accuracy against density, Fig. 3(b)'s tables and plot of the per-layer
density with each redistribution rule, and both figures' ``.json``/``.md``/``.png``
(:func:`write_results`). Every table and figure names the reduced settings and how many of the
planned runs are complete. The figures' names, the redistribution rules and Fig. 3(b)'s density are
defined here; ``fig3_fashion.py`` imports them.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

RULES = ("none", "momentum", "magnitude")
FIG3B_DENSITY = 0.1
STAND_IN = "Fashion-MNIST stand-in, not the paper's CIFAR-10/100 / DVS-CIFAR10"
FIG3A, FIG3B = "fig3a_fashion_vggsnn", "fig3b_redistribution"


def settings(results: dict[str, Any]) -> str:
    """The reduced settings: the line beside every figure and table."""
    vgg, mlp = results["vggsnn"], results["mlp"]
    return (
        f"VGGSNN width {vgg['width']} (channels {vgg['channels']}), T = {vgg['timesteps']}, "
        f"{vgg['train_samples']:,} Fashion-MNIST training images "
        f"({vgg['val_fraction']:.0%} of them validation), "
        f"{vgg['epochs']} epochs, ΔT = {vgg['delta_t']}; MLP 784-800-10 on all of MNIST, "
        f"{mlp['epochs']} epochs, ΔT = {mlp['delta_t']}"
    )


def _complete(results: dict[str, Any], figure: str) -> str:
    done = sum(1 for row in results["runs"] if figure in row["figures"])
    return f"{done} of {results['planned'][figure]} runs complete"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}%"


def _machine_line(results: dict[str, Any]) -> str:
    machine, load = results["machine"], results["load_average"]
    wall = results.get("wall_seconds")
    return (
        f"Machine: {machine['cpu']}, {machine['cores']} cores (shared), Python {machine['python']}, torch "
        f"{machine['torch']}; one run at a time, one torch thread; load average (1, 5, 15 min) "
        f"{', '.join(map(str, load['start']))} at the start, "
        f"{', '.join(map(str, load.get('end') or ['(still running)']))} at the end; "
        + (f"wall time {wall / 60:.1f} min." if wall is not None else "wall time: still running.")
    )


def figures_of(name: str) -> tuple[str, ...]:
    """The figures of the run called ``name`` (:func:`plan`'s names)."""
    vgg_none = name.startswith("vggsnn_") and "_none" in name
    in_3b = f"_d{FIG3B_DENSITY}_" in name
    return ("3a",) * vgg_none + ("3b",) * in_3b


def fig3a_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Fig. 3(a)'s runs (VGGSNN, ``none``), densest first."""
    rows = [row for row in results["runs"] if "3a" in row["figures"]]
    return sorted(rows, key=lambda row: -row["target"])


def fig3a_markdown(results: dict[str, Any]) -> str:
    rows = fig3a_rows(results)
    lines = [
        f"# Fig. 3(a): VGGSNN accuracy vs density ({STAND_IN})",
        "",
        f"Reproduce: `{results['command']}`.",
        "",
        f"**{STAND_IN}.** {settings(results)}; {_complete(results, '3a')}. ERK initialisation, SET prune, "
        "random growth, `redistribute: none`, seed "
        f"{results['seed']}. Float accuracy (conv nets have no integer export) on all "
        f"{results['test_images']:,} test images; best epoch chosen on the validation split.",
        "",
        _machine_line(results),
        "",
        "| density | connections | test accuracy (float) | validation | best epoch | train time (s) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['target']} | {row['connections']:,} | {_percent(row['test_accuracy'])} "
            f"| {_percent(row['val_accuracy'])} | {row['best_epoch']} | {row['train_seconds']:.0f} |"
        )
    lines += ["", PAPER_3A, ""]
    return "\n".join([*lines, *_missing_lines(results, "3a")])


def _missing_lines(results: dict[str, Any], figure: str) -> list[str]:
    """The line naming the runs of ``figure`` ("3a" or "3b") not complete yet (none when all are)."""
    missing = [name for name in results["missing"] if figure in figures_of(name)]
    return [f"Not complete (left out above): {', '.join(missing)}.", ""] if missing else []


#: What the paper's Fig. 3 shows, for the reader's comparison (numbers quoted in configs/ and docs/).
PAPER_3A = (
    "The paper's Fig. 3(a) plots accuracy against density for ResNet19 on CIFAR-10/100 and VGGSNN on "
    "DVS-CIFAR10; the configs quote its 91.09% (CIFAR-10) and 73.48% (CIFAR-100) for ResNet19 at "
    "density 0.5 and 78.3% for VGGSNN on DVS-CIFAR10 at 0.1 (`configs/cifar10_resnet19_d0.5.yaml`, "
    "`cifar100_resnet19_d0.5.yaml`, `dvs_cifar10_vggsnn_d0.1.yaml`). Not comparable with the numbers "
    "above: other data, full-size networks, hundreds of epochs."
)


def _fig3b_rows(results: dict[str, Any], model: str) -> dict[str, dict[str, Any]]:
    """Fig. 3(b)'s runs of ``model`` by redistribution rule."""
    return {
        row["redistribute"]: row
        for row in results["runs"]
        if row["model"] == model and "3b" in row["figures"]
    }


def _start(rows: dict[str, dict[str, Any]]) -> list[float]:
    """The layers' densities before the first update (every rule starts from the same masks); rows of
    an older results file without ``start``: the ``none`` run's constant densities."""
    for row in rows.values():
        if row.get("start"):
            return row["start"]
    none = rows.get("none")
    return none["epochs"][-1] if none else [float("nan")] * len(next(iter(rows.values()))["layer_names"])


def _final(row: dict[str, Any]) -> list[float]:
    return row["epochs"][-1]


def fig3b_markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# Fig. 3(b): per-layer density with and without redistribution ({STAND_IN} for VGGSNN)",
        "",
        f"Reproduce: `{results['command']}`.",
        "",
        f"**VGGSNN on the {STAND_IN}; MLP on MNIST.** {settings(results)}; overall density "
        f"{FIG3B_DENSITY} (the total stays exact: redistribution moves synapses between layers); "
        f"{_complete(results, '3b')}. The MLP is `configs/mnist_multispike_d0.1.yaml` with both layers "
        "sparse from the same start (`init: uniform`, `dense_layers: []`); VGGSNN starts from ERK. "
        "Accuracy: VGGSNN float (no integer export), MLP integer (the hardware's) and float.",
        "",
        _machine_line(results),
        "",
    ]
    for model in ("mlp", "vggsnn"):
        rows = _fig3b_rows(results, model)
        if not rows:
            continue
        any_row = next(iter(rows.values()))
        rules = [rule for rule in RULES if rule in rows]
        title = "MLP 784-800-10, MNIST" if model == "mlp" else f"VGGSNN, {STAND_IN}"
        lines += [
            f"## {title}",
            "",
            "Density per layer at the start and after training (and the layer's parameters):",
            "",
            "| layer | parameters | start | " + " | ".join(f"end, {rule}" for rule in rules) + " |",
            "| --- | ---: | ---: | " + " | ".join("---:" for _ in rules) + " |",
        ]
        start = _start(rows)
        for index, name in enumerate(any_row["layer_names"]):
            ends = " | ".join(f"{_final(rows[rule])[index]:.4f}" for rule in rules)
            lines.append(f"| {name} | {any_row['layer_params'][index]:,} | {start[index]:.4f} | {ends} |")
        accuracy = []
        for rule in rules:
            row = rows[rule]
            text = _percent(row["test_accuracy"])
            if "test_accuracy_integer" in row:
                text = f"{_percent(row['test_accuracy_integer'])} integer, {text} float"
            accuracy.append(f"`{rule}` {text} ({len(row['updates'])} updates)")
        lines += ["", "Test accuracy: " + "; ".join(accuracy) + ".", ""]
    lines += [PAPER_3B, ""]
    return "\n".join([*lines, *_missing_lines(results, "3b")])


PAPER_3B = (
    "The paper's Fig. 3(b): with redistribution the layers' densities oscillate early in training and "
    "settle, each layer ending roughly in proportion to how few parameters it has (the small layers "
    "densest); without it (ESL as trained elsewhere here) every layer keeps its start density."
)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_fig3a(results: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    rows = fig3a_rows(results)
    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    axis.plot([row["density"] for row in rows], [100 * row["test_accuracy"] for row in rows], "o-")
    for row in rows:
        axis.annotate(
            f"{100 * row['test_accuracy']:.1f}",
            (row["density"], 100 * row["test_accuracy"]),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
            fontsize=7,
        )
    axis.set_xscale("log")
    axis.set_xlabel("density (connections / all)")
    axis.set_ylabel("test accuracy, float (%)")
    vgg_settings = settings(results).split("; MLP")[0]
    title = f"Fig. 3(a) VGGSNN, {STAND_IN}. {vgg_settings}; {_complete(results, '3a')}"
    axis.set_title("\n".join(textwrap.wrap(title, 80, break_on_hyphens=False)), fontsize=7)
    low, high = axis.get_ylim()
    axis.set_ylim(low, high + 0.05 * (high - low))  # room for the top label
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_fig3b(results: dict[str, Any], path: Path) -> None:
    """One panel per model and rule: every layer's density at the start and after each ESL update (log
    scale, the same per model), the legend right of each model's last panel."""
    plt = _pyplot()
    models = [model for model in ("mlp", "vggsnn") if _fig3b_rows(results, model)]
    figure, axes = plt.subplots(
        len(models), len(RULES), figsize=(14, 3.4 * len(models)), squeeze=False, sharey="row"
    )
    styles = ("-", "--", "-.", ":")
    for line, model in enumerate(models):
        rows = _fig3b_rows(results, model)
        for column, rule in enumerate(RULES):
            axis = axes[line][column]
            name = "MLP 784-800-10 (MNIST)" if model == "mlp" else "VGGSNN (Fashion-MNIST stand-in)"
            axis.set_title(f"{name}, redistribute {rule}", fontsize=8)
            if rule not in rows:
                axis.text(0.5, 0.5, "not run", ha="center", transform=axis.transAxes)
                continue
            row = rows[rule]
            start = [(0, row["start"])] if row.get("start") else []
            points = start + [(update["iteration"], update["density"]) for update in row["updates"]]
            steps = [step for step, _ in points]
            trace = np.array([densities for _, densities in points], dtype=float)
            for index, layer in enumerate(row["layer_names"]):
                label = f"{layer.removesuffix('.weight')} ({row['layer_params'][index]:,})"
                style = styles[index % len(styles)]
                axis.plot(steps, trace[:, index], style, label=label, linewidth=1.2, color=f"C{index}")
            axis.set_yscale("log")
            axis.set_xlabel("iteration (ESL updates end at t_end = 75% of training)", fontsize=7)
            if column == 0:
                axis.set_ylabel("layer density")
        drawn = [axis for axis in axes[line] if axis.get_lines()] or [axes[line][0]]
        handles, labels = drawn[0].get_legend_handles_labels()
        axes[line][-1].legend(
            handles,
            labels,
            fontsize=6,
            title="layer (parameters)",
            title_fontsize=6,
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
        )
    figure.suptitle(
        f"Fig. 3(b) per-layer density, overall {FIG3B_DENSITY}; VGGSNN on the {STAND_IN}\n"
        f"{settings(results)}; {_complete(results, '3b')}",
        fontsize=8,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_results(results: dict[str, Any], out: Path) -> None:
    """Both figures' ``.json``/``.md`` (and ``.png`` when they have runs) from ``results``."""
    out.mkdir(parents=True, exist_ok=True)
    for stem, figure, markdown, plot in (
        (FIG3A, "3a", fig3a_markdown, plot_fig3a),
        (FIG3B, "3b", fig3b_markdown, plot_fig3b),
    ):
        rows = [row for row in results["runs"] if figure in row["figures"]]
        (out / f"{stem}.json").write_text(json.dumps(results | {"runs": rows}, indent=2) + "\n")
        (out / f"{stem}.md").write_text(markdown(results))
        if rows:
            plot(results, out / f"{stem}.png")
