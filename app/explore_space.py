"""The space of ``esl-hw explore`` (docs/explore.md): SPACE.yaml read, checked and expanded into points.

A space names the data, the settings every point shares (``fixed``), the settings to explore
(``axes``: each a list of values), the objectives of the Pareto front, the budgets and the search
strategy. A *setting* is a dotted name: a training config key (``sparsity.density``,
``model.hidden``, ``seed``: any key of :mod:`esl_hw.train.config`) or a hardware key
(``hardware.lanes``, ``hardware.target``, ... :data:`HARDWARE`).

Everything is checked when the file is read, before any work: an unknown key, setting, metric,
target or strategy is an :class:`EslError` of one line naming it, and every point of the grid is
validated as a whole (the training config by :func:`esl_hw.train.config.config_from_dict`, the
hardware keys by the rules of the hardware stages), so a combination the trainer or the core
refuses is refused here, naming the point. Relative paths (``dataset``, ``base``) are relative to
the space file's folder.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esl_hw import limits
from esl_hw.app.explore_cache import canonical_digest
from esl_hw.errors import EslError
from esl_hw.limits import shown
from esl_hw.safe_yaml import load_yaml

#: the top-level keys of a space file
SPACE_KEYS = (
    "name",
    "dataset",
    "published",
    "base",
    "fixed",
    "axes",
    "objectives",
    "budgets",
    "strategy",
    "deadlines",
)
#: hardware settings and their defaults
HARDWARE: dict[str, Any] = {
    "hardware.lanes": 1,
    "hardware.target": None,
    "hardware.synapse_memory": "auto",
    "hardware.rewiring": "auto",
    "hardware.lane_fifo_depth": 32,
    "hardware.freq_mhz": None,
    "hardware.samples": 20,
    "hardware.simulator": "verilator",
}
#: metric -> (direction, unit, whether it needs hardware.target)
METRICS: dict[str, tuple[str, str, bool]] = {
    "accuracy": ("max", "fraction", False),
    "cycles": ("min", "cycles", False),
    "latency_us": ("min", "µs", True),
    "luts": ("min", "LUTs", True),
    "ffs": ("min", "FFs", True),
    "bram": ("min", "blocks", True),
    "memory_bits": ("min", "bits", False),
    "energy_j": ("min", "J", False),
    "synapses": ("min", "synapses", False),
    "fmax_mhz": ("max", "MHz", True),
}
STRATEGIES = ("grid", "random", "optuna")
SAMPLERS = ("tpe", "nsga2")
PUBLISHED = ("mnist",)
#: stage -> default deadline in seconds (a stage running longer is stopped, the point fails)
DEADLINES = {"train": 6 * 3600.0, "cosim": 2 * 3600.0, "synth": 4 * 3600.0}
#: the most points a grid may have (every one is validated when the file is read)
MAX_GRID = 20_000
SYNAPSE_MEMORIES = ("auto", "block", "spram")
#: training settings a space may not set, and why
FORBIDDEN = {
    "data.path": "give the data as the space's `dataset` (or --data)",
    "data.dataset": "explore takes image data (IDX or NPZ), data.dataset mnist",
    "model.kind": "the hardware runs LIF networks only (model.kind lif)",
}


@dataclass(frozen=True)
class Budget:
    """Limits a point must meet (``maximum``/``minimum``: metric -> bound; ``target``: only points
    synthesised for it) and the metric by which the best point under them is chosen."""

    name: str
    target: str | None
    maximum: tuple[tuple[str, float], ...]
    minimum: tuple[tuple[str, float], ...]
    best: str = "accuracy"


@dataclass(frozen=True)
class Strategy:
    """How points are chosen: ``grid`` (all), ``random`` (``points`` of the grid, drawn with
    ``seed``), ``optuna`` (``points`` asked from Optuna's multi-objective ``sampler``)."""

    kind: str = "grid"
    points: int | None = None
    seed: int = 0
    sampler: str = "tpe"


@dataclass(frozen=True)
class Point:
    """One point of the space: the axis values that make it (``settings``), the whole training
    config and hardware settings, and its ``id`` (a hash of both)."""

    settings: dict[str, Any]
    config: dict[str, Any]
    hardware: dict[str, Any]
    id: str

    def label(self) -> str:
        """The axis values, short: ``sparsity.density=0.05 hardware.lanes=4``."""
        return " ".join(f"{name}={_compact(value)}" for name, value in self.settings.items()) or "(fixed)"


@dataclass(frozen=True)
class Space:
    """A checked space file (:func:`load_space`)."""

    source: str
    name: str
    dataset: str | None
    published: str | None
    base: dict[str, Any]
    fixed: dict[str, Any]
    axes: tuple[tuple[str, tuple[Any, ...]], ...]
    objectives: tuple[str, ...]
    budgets: tuple[Budget, ...]
    strategy: Strategy
    deadlines: dict[str, float] = field(default_factory=lambda: dict(DEADLINES))

    @property
    def grid_size(self) -> int:
        return math.prod(len(values) for _, values in self.axes)

    def choice(self, index: int) -> tuple[int, ...]:
        """The value index of each axis of grid point ``index`` (the last axis varies fastest)."""
        digits = []
        for _, values in reversed(self.axes):
            index, digit = divmod(index, len(values))
            digits.append(digit)
        return tuple(reversed(digits))

    def point(self, choice: tuple[int, ...]) -> Point:
        """The point taking value ``choice[i]`` of axis ``i``."""
        settings = {name: values[index] for (name, values), index in zip(self.axes, choice, strict=True)}
        return make_point(self.base, {**self.fixed, **settings}, settings)

    def uses_targets(self) -> bool:
        """Whether any point is synthesised (a target fixed or on an axis)."""
        values = [self.fixed.get("hardware.target")]
        values += [value for name, axis in self.axes if name == "hardware.target" for value in axis]
        return any(value is not None for value in values)

    def to_dict(self) -> dict[str, Any]:
        """The resolved space as plain data (written as ``space.yaml`` and into ``front.json``)."""
        return {
            "name": self.name,
            "dataset": self.dataset,
            "published": self.published,
            "base": self.base,
            "fixed": self.fixed,
            "axes": {name: list(values) for name, values in self.axes},
            "objectives": list(self.objectives),
            "budgets": [
                {
                    "name": budget.name,
                    "target": budget.target,
                    "max": dict(budget.maximum),
                    "min": dict(budget.minimum),
                    "best": budget.best,
                }
                for budget in self.budgets
            ],
            "strategy": {
                "kind": self.strategy.kind,
                "points": self.strategy.points,
                "seed": self.strategy.seed,
                "sampler": self.strategy.sampler,
            },
            "deadlines": dict(self.deadlines),
        }


def _compact(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ",".join(_compact(item) for item in value) + "]"
    return "null" if value is None else str(value)


def _apply(config: dict[str, Any], name: str, value: Any) -> None:
    """Set the training setting ``name`` (``section.key`` or ``seed``) in the config mapping."""
    if "." not in name:
        config[name] = value
        return
    section, key = name.split(".", 1)
    part = config.setdefault(section, {})
    if not isinstance(part, dict):
        raise EslError(f"config: {section} must be a mapping")
    part[key] = value


def _check_hardware(name: str, value: Any) -> Any:
    """``value`` of the hardware setting ``name`` if valid; else :class:`EslError` naming both."""
    from esl_hw.rtl_gen.hardware import check_fifo_depth

    if name == "hardware.lanes":
        return limits.check_lanes(value, name)
    if name == "hardware.target":
        if value is not None and not isinstance(value, str):
            _bad(name, value, "a target name or null")
        if value is not None:
            from esl_hw.fpga.targets import get_target

            get_target(value)
        return value
    if name == "hardware.synapse_memory":
        return _one_of(name, value, SYNAPSE_MEMORIES)
    if name == "hardware.rewiring":
        if value is not True and value is not False and value != "auto":
            _bad(name, value, "true, false or auto")
        return value
    if name == "hardware.lane_fifo_depth":
        return check_fifo_depth(value, name)
    if name == "hardware.freq_mhz":
        if value is not None and not (
            isinstance(value, int | float) and not isinstance(value, bool) and 1 <= value <= 1000
        ):
            _bad(name, value, "a clock of 1..1000 MHz or null (the target's)")
        return value
    if name == "hardware.samples":
        if not limits.is_int(value) or not 1 <= value <= 100_000:
            _bad(name, value, "1..100000 test images")
        return value
    if name == "hardware.simulator":
        from esl_hw.sim.build import SIMULATORS

        return _one_of(name, value, SIMULATORS)
    raise EslError(f"unknown hardware setting {name!r} (known: {', '.join(HARDWARE)})")


def _bad(name: str, value: Any, expected: str) -> None:
    raise EslError(f"{name} must be {expected}, got {shown(value)}")


def _one_of(name: str, value: Any, names: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in names:
        _bad(name, value, f"one of {', '.join(names)}")
    return value


def make_point(base: dict[str, Any], settings: Mapping[str, Any], shown_settings: Mapping[str, Any]) -> Point:
    """The :class:`Point` of ``settings`` (every fixed and axis setting) over the training config
    ``base``, validated as a whole; ``shown_settings`` are the axis values that name it."""
    from esl_hw.train.config import config_from_dict, config_to_dict

    config = json.loads(json.dumps(base))
    hardware = dict(HARDWARE)
    for name, value in settings.items():
        if name.startswith("hardware."):
            hardware[name] = _check_hardware(name, value)
        else:
            _apply(config, name, value)
    config = config_to_dict(config_from_dict(config))
    target = hardware["hardware.target"]
    if hardware["hardware.synapse_memory"] == "spram":
        from esl_hw.fpga.targets import get_target

        if target is not None and not get_target(target).capacity["spram"]:
            raise EslError(f"hardware.synapse_memory spram: target {target} has no SPRAM")
    hardware = {name.removeprefix("hardware."): value for name, value in hardware.items()}
    identity = canonical_digest({"config": config, "hardware": hardware})[:12]
    return Point(dict(shown_settings), config, hardware, identity)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EslError(f"{where} must be a mapping, got {shown(value)}")
    return value


def _check_setting(name: Any, where: str) -> str:
    if not isinstance(name, str) or not name:
        raise EslError(f"{where}: a setting must be a dotted name, got {shown(name)}")
    if name in FORBIDDEN:
        raise EslError(f"{where}: {name} cannot be set here: {FORBIDDEN[name]}")
    if name.startswith("hardware.") and name not in HARDWARE:
        raise EslError(f"{where}: unknown hardware setting {name!r} (known: {', '.join(HARDWARE)})")
    return name


def _check_value(base: dict[str, Any], fixed: dict[str, Any], name: str, value: Any, where: str) -> None:
    """Validate one setting on its own over ``base`` and ``fixed`` (so its error names it)."""
    try:
        make_point(base, {**fixed, name: value}, {})
    except EslError as error:
        raise EslError(f"{where} {name}={_compact(value)}: {str(error).removeprefix('config: ')}") from None


def _check_key(base: dict[str, Any], fixed: dict[str, Any], name: str, value: Any) -> None:
    """Refuse a training setting the config does not know (its values are checked with the grid)."""
    try:
        make_point(base, {**fixed, name: value}, {})
    except EslError as error:
        if "unknown key" in str(error):
            raise EslError(f"axes: {name}: {str(error).removeprefix('config: ')}") from None


def _axes(raw: Any, base: dict[str, Any], fixed: dict[str, Any]) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    axes = []
    for name, values in _mapping(raw, "axes").items():
        _check_setting(name, "axes")
        if name in fixed:
            raise EslError(f"axes: {name} is also in fixed; give it in one place")
        if not isinstance(values, list) or not values:
            raise EslError(f"axes: {name} must be a non-empty list of values, got {shown(values)}")
        if len({json.dumps(value, sort_keys=True) for value in values}) != len(values):
            raise EslError(f"axes: {name} lists a value twice")
        for value in values:
            if name.startswith("hardware."):
                _check_value(base, fixed, name, value, "axes:")
        if not name.startswith("hardware."):  # a value may need another axis's: the grid is checked whole
            _check_key(base, fixed, name, values[0])
        axes.append((name, tuple(values)))
    return tuple(axes)


def _metric(value: Any, where: str) -> str:
    if not isinstance(value, str) or value not in METRICS:
        raise EslError(f"{where}: unknown metric {shown(value)} (known: {', '.join(METRICS)})")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EslError(f"{where} must be a finite number, got {shown(value)}")
    return float(value)


def _budgets(raw: Any) -> tuple[Budget, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise EslError(f"budgets must be a list of budgets, got {shown(raw)}")
    budgets = []
    for index, item in enumerate(raw):
        where = f"budgets[{index}]"
        item = _mapping(item, where)
        unknown = sorted(set(item) - {"name", "target", "max", "min", "best"})
        if unknown:
            raise EslError(f"{where}: unknown key {unknown[0]!r} (known: name, target, max, min, best)")
        target = item.get("target")
        if target is not None:
            _check_hardware("hardware.target", target)
        maximum = tuple(
            (_metric(key, f"{where}.max"), _number(value, f"{where}.max.{key}"))
            for key, value in _mapping(item.get("max"), f"{where}.max").items()
        )
        minimum = tuple(
            (_metric(key, f"{where}.min"), _number(value, f"{where}.min.{key}"))
            for key, value in _mapping(item.get("min"), f"{where}.min").items()
        )
        if not maximum and not minimum:
            raise EslError(f"{where}: give at least one limit (max: or min:)")
        best = _metric(item.get("best", "accuracy"), f"{where}.best")
        name = item.get("name")
        if name is None:
            parts = [f"{key} <= {value:g}" for key, value in maximum]
            parts += [f"{key} >= {value:g}" for key, value in minimum]
            name = ", ".join(parts) + (f" on {target}" if target else "")
        elif not isinstance(name, str) or not name.strip():
            raise EslError(f"{where}.name must be a non-empty string, got {shown(name)}")
        budgets.append(Budget(name, target, maximum, minimum, best))
    return tuple(budgets)


def _strategy(raw: Any, grid_size: int) -> Strategy:
    raw = _mapping(raw, "strategy")
    unknown = sorted(set(raw) - {"kind", "points", "seed", "sampler"})
    if unknown:
        raise EslError(f"strategy: unknown key {unknown[0]!r} (known: kind, points, seed, sampler)")
    kind = _one_of("strategy.kind", raw.get("kind", "grid"), STRATEGIES)
    points = raw.get("points")
    if points is not None and (not limits.is_int(points) or points < 1):
        raise EslError(f"strategy.points must be a positive integer, got {shown(points)}")
    if kind != "grid" and points is None:
        raise EslError(f"strategy.kind {kind} needs strategy.points (how many points to evaluate)")
    if kind == "grid" and points is not None:
        raise EslError("strategy.points applies to random and optuna; a grid evaluates every point")
    seed = raw.get("seed", 0)
    if not limits.is_int(seed) or not limits.SEED[0] <= seed <= limits.SEED[1]:
        raise EslError(f"strategy.seed must be an integer in 0..{limits.SEED[1]}, got {shown(seed)}")
    sampler = _one_of("strategy.sampler", raw.get("sampler", "tpe"), SAMPLERS)
    return Strategy(kind, None if points is None else min(points, grid_size), seed, sampler)


def _deadlines(raw: Any) -> dict[str, float]:
    deadlines = dict(DEADLINES)
    for stage, value in _mapping(raw, "deadlines").items():
        if stage not in DEADLINES:
            raise EslError(f"deadlines: unknown stage {shown(stage)} (known: {', '.join(DEADLINES)})")
        if _number(value, f"deadlines.{stage}") <= 0:
            raise EslError(f"deadlines.{stage} must be positive seconds, got {value}")
        deadlines[stage] = float(value)
    return deadlines


def _objectives(raw: Any, uses_targets: bool) -> tuple[str, ...]:
    if raw is None:
        return ("accuracy", "latency_us") if uses_targets else ("accuracy", "cycles")
    if not isinstance(raw, list) or len(raw) < 2:
        raise EslError(f"objectives must be a list of at least 2 metrics, got {shown(raw)}")
    names = tuple(_metric(name, "objectives") for name in raw)
    if len(set(names)) != len(names):
        raise EslError("objectives: a metric is listed twice")
    for name in names:
        if METRICS[name][2] and not uses_targets:
            raise EslError(f"objectives: {name} needs synthesis; set hardware.target (fixed or on an axis)")
    return names


def _path(value: Any, folder: Path, key: str) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or "\0" in value:
        raise EslError(f"{key} must be a path or null, got {shown(value)}")
    path = Path(value).expanduser()
    return path if path.is_absolute() else folder / path


def _base_config(raw: Any, folder: Path) -> dict[str, Any]:
    from esl_hw.train.config import config_to_dict, default_config, load_config

    path = _path(raw, folder, "base")
    config = config_to_dict(default_config() if path is None else load_config(path))
    if config["data"]["path"] is not None or config["data"]["dataset"] != "mnist":
        raise EslError(f"base {path}: give the data as the space's `dataset`, not the config's data.path")
    if config["model"]["kind"] != "lif":
        raise EslError(f"base {path}: {FORBIDDEN['model.kind']}")
    return config


def space_from_dict(raw: Any, source: Path) -> Space:
    """Check the data of a space file read from ``source`` and return the :class:`Space`."""
    if not isinstance(raw, dict):
        raise EslError(f"the space must be a mapping of {', '.join(SPACE_KEYS)}, got {shown(raw)}")
    unknown = [key for key in raw if key not in SPACE_KEYS]
    if unknown:
        raise EslError(f"unknown key {shown(unknown[0])} (known: {', '.join(SPACE_KEYS)})")
    folder = source.parent
    base = _base_config(raw.get("base"), folder)
    fixed = {}
    for name, value in _mapping(raw.get("fixed"), "fixed").items():
        _check_setting(name, "fixed")
        _check_value(base, fixed, name, value, "fixed:")
        fixed[name] = value
    axes = _axes(raw.get("axes"), base, fixed)
    name = raw.get("name", source.stem)
    if not isinstance(name, str) or not name.strip():
        raise EslError(f"name must be a non-empty string, got {shown(name)}")
    published = raw.get("published")
    if published is not None:
        _one_of("published", published, PUBLISHED)
    dataset = _path(raw.get("dataset"), folder, "dataset")
    space = Space(
        source=str(source),
        name=name,
        dataset=None if dataset is None else str(dataset),
        published=published,
        base=base,
        fixed=fixed,
        axes=axes,
        objectives=(),
        budgets=_budgets(raw.get("budgets")),
        strategy=Strategy(),
        deadlines=_deadlines(raw.get("deadlines")),
    )
    if space.grid_size > MAX_GRID:
        raise EslError(f"axes: {space.grid_size} points, more than {MAX_GRID}; explore fewer values")
    objectives = _objectives(raw.get("objectives"), space.uses_targets())
    strategy = _strategy(raw.get("strategy"), space.grid_size)
    space = dataclasses.replace(space, objectives=objectives, strategy=strategy)
    for index in range(space.grid_size):
        choice = space.choice(index)
        try:
            space.point(choice)
        except EslError as error:
            label = " ".join(f"{n}={_compact(v[i])}" for (n, v), i in zip(space.axes, choice, strict=True))
            raise EslError(f"point {label}: {str(error).removeprefix('config: ')}") from None
    return space


def load_space(path: str | Path) -> Space:
    """Read and check the space file ``path``; every error is one line ``space PATH: problem``."""
    path = Path(path)
    raw = load_yaml(path, "space")
    try:
        return space_from_dict(raw, path)
    except EslError as error:
        raise EslError(f"space {path}: {error}") from None


def grid_points(space: Space) -> list[Point]:
    """Every point of the grid, in order (the last axis varies fastest)."""
    return [space.point(choice) for choice in itertools.product(*(range(len(v)) for _, v in space.axes))]
