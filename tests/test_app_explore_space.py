"""The space file of ``esl-hw explore`` (:mod:`esl_hw.app.explore_space`): what it accepts, how it
expands into points, and the one-line errors that name what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from esl_hw.app.explore_space import HARDWARE, grid_points, load_space
from esl_hw.errors import EslError

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "configs" / "explore_tiny.yaml"
EXAMPLE = ROOT / "configs" / "explore_mnist_ecp5.yaml"


def write_space(folder: Path, data: dict, name: str = "space.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def minimal(**changes) -> dict:
    space = {
        "fixed": {"model.hidden": [8], "train.epochs": 1},
        "axes": {"sparsity.density": [0.1, 0.3], "hardware.lanes": [1, 2, 4]},
    }
    space.update(changes)
    return space


def test_shipped_spaces_load() -> None:
    tiny = load_space(TINY)
    assert tiny.grid_size == 4 and tiny.objectives == ("accuracy", "cycles") and tiny.published == "mnist"
    example = load_space(EXAMPLE)
    assert example.grid_size >= 12 and example.strategy.kind == "grid"
    spaces = sorted((ROOT / "configs").glob("explore_*.yaml"))
    assert len(spaces) >= 3
    for path in spaces:
        load_space(path)


def test_points_of_a_grid_carry_whole_configs_and_hardware(tmp_path: Path) -> None:
    space = load_space(write_space(tmp_path, minimal()))
    points = grid_points(space)
    assert len(points) == space.grid_size == 6
    assert [p.settings for p in points[:2]] == [
        {"sparsity.density": 0.1, "hardware.lanes": 1},
        {"sparsity.density": 0.1, "hardware.lanes": 2},
    ]  # the last axis varies fastest
    first = points[0]
    assert first.config["model"]["hidden"] == [8] and first.config["train"]["epochs"] == 1
    assert first.config["sparsity"]["density"] == 0.1 and first.hardware["lanes"] == 1
    assert set(first.hardware) == {name.removeprefix("hardware.") for name in HARDWARE}
    assert len({p.id for p in points}) == 6, "every point has its own id"
    again = grid_points(load_space(write_space(tmp_path, minimal(), "again.yaml")))
    assert [p.id for p in again] == [p.id for p in points], "ids depend on the settings only"
    assert first.label() == "sparsity.density=0.1 hardware.lanes=1"


def test_targets_change_the_default_objectives(tmp_path: Path) -> None:
    space = load_space(write_space(tmp_path, minimal(fixed={"hardware.target": "ice40-up5k"})))
    assert space.objectives == ("accuracy", "latency_us") and space.uses_targets()


def test_paths_are_relative_to_the_space_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "base.yaml").write_text("model:\n  hidden: [12]\ntrain:\n  epochs: 2\n")
    space = load_space(write_space(tmp_path / "sub", minimal(base="base.yaml", dataset="data", fixed={})))
    assert space.base["model"]["hidden"] == [12] and space.dataset == str(tmp_path / "sub" / "data")
    assert grid_points(space)[0].config["train"]["epochs"] == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"axis": [1]}, "unknown key 'axis'"),
        ({"axes": {"model.hiden": [[8]]}}, "axes: model.hiden: unknown key 'model.hiden'"),
        ({"axes": {"hardware.lane": [1]}}, "unknown hardware setting 'hardware.lane'"),
        ({"axes": {"hardware.target": ["ecp5-12k"]}}, "unknown FPGA target 'ecp5-12k'"),
        ({"axes": {"hardware.lanes": [3]}}, "hardware.lanes must be a power of two, got 3"),
        (
            {"axes": {"sparsity.density": [0.1, 1.5]}},
            "point sparsity.density=1.5: sparsity.density =1.5 outside (0, 1]",
        ),
        ({"axes": {"sparsity.density": [0.1, 0.1]}}, "sparsity.density lists a value twice"),
        ({"axes": {"sparsity.density": []}}, "must be a non-empty list"),
        ({"fixed": {"data.path": "x"}}, "data.path cannot be set here"),
        ({"fixed": {"model.kind": "single_spike"}}, "LIF networks only"),
        ({"fixed": {"sparsity.density": 0.2}}, "sparsity.density is also in fixed"),
        ({"objectives": ["accuracy", "luts"]}, "objectives: luts needs synthesis"),
        ({"objectives": ["accuracy", "speed"]}, "unknown metric 'speed'"),
        ({"strategy": {"kind": "random"}}, "strategy.kind random needs strategy.points"),
        ({"strategy": {"kind": "grid", "points": 3}}, "a grid evaluates every point"),
        ({"strategy": {"kind": "bayes"}}, "strategy.kind must be one of grid, random, optuna"),
        ({"budgets": [{"max": {"lut": 10}}]}, "budgets[0].max: unknown metric 'lut'"),
        ({"budgets": [{"best": "accuracy"}]}, "give at least one limit"),
        ({"deadlines": {"train": -1}}, "deadlines.train must be positive"),
        ({"published": "cifar"}, "published must be one of mnist"),
        (
            {
                "axes": {
                    "sparsity.prune": ["magnitude", "set"],
                    "sparsity.grow": ["random", "hardware-random"],
                }
            },
            "point sparsity.prune=set sparsity.grow=hardware-random: sparsity.grow ='hardware-random' needs",
        ),
        (
            {"fixed": {"hardware.synapse_memory": "spram"}, "axes": {"hardware.target": ["ecp5-85k"]}},
            "target ecp5-85k has no SPRAM",
        ),
    ],
)
def test_bad_spaces_are_refused_in_one_line_naming_the_problem(
    tmp_path: Path, change: dict, message: str
) -> None:
    data = minimal()
    data.update(change)
    path = write_space(tmp_path, data)
    with pytest.raises(EslError) as caught:
        load_space(path)
    text = str(caught.value)
    assert "\n" not in text and text.startswith(f"space {path}: ") and message in text, text


def test_a_value_valid_only_with_another_axis_is_accepted(tmp_path: Path) -> None:
    space = minimal(axes={"sparsity.prune": ["magnitude"], "sparsity.grow": ["hardware-random", "random"]})
    points = grid_points(load_space(write_space(tmp_path, space)))
    assert [p.config["sparsity"]["grow"] for p in points] == ["hardware-random", "random"]


def test_malformed_files(tmp_path: Path) -> None:
    (tmp_path / "dup.yaml").write_text("axes: {}\naxes: {}\n")
    with pytest.raises(EslError, match="duplicate key 'axes'"):
        load_space(tmp_path / "dup.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(EslError, match="the space must be a mapping"):
        load_space(tmp_path / "list.yaml")
    with pytest.raises(EslError, match="cannot read"):
        load_space(tmp_path / "absent.yaml")
