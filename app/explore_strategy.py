"""Which points ``esl-hw explore`` evaluates: the strategies of a space (docs/explore.md).

A planner hands out points (:meth:`Planner.ask`) and hears back their metrics as they finish
(:meth:`Planner.tell`):

- ``grid``: every point of the space, in order (the last axis varies fastest);
- ``random``: ``strategy.points`` distinct points of the grid, drawn with ``strategy.seed``;
- ``optuna``: ``strategy.points`` distinct points asked from an Optuna study with one direction per
  objective (``max`` for accuracy and Fmax, ``min`` for the costs), sampled by multi-objective TPE or
  NSGA-II. Each axis is a categorical parameter over its value indices; a point asked again is told
  its known result at once and does not count. A point without the objectives (it does not fit,
  mismatches, fails) is told as failed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from esl_hw.app.explore_space import METRICS, Point, Space, grid_points
from esl_hw.errors import EslError

#: how many asks per point an Optuna study may make before the search stops (repeats included)
MAX_ASKS_PER_POINT = 50


class Planner:
    """Points in a fixed order (the grid, or a random draw of it)."""

    #: whether the driver may take every point at once (a fixed plan), rather than a few at a time
    #: as results come back (a sampler that learns from them)
    adaptive = False

    def __init__(self, points: list[Point]) -> None:
        self._queue = list(points)
        self.total = len(points)
        self.numbers = {point.id: number for number, point in enumerate(points, start=1)}

    def number(self, point: Point) -> int:
        """The number of ``point`` in reports: its place in the plan (grid or draw order), or for
        Optuna the order in which it was handed out (across sessions)."""
        return self.numbers[point.id]

    def ask(self, count: int) -> list[Point]:
        """Up to ``count`` more points to evaluate (none: the plan is exhausted or waits on results)."""
        given, self._queue = self._queue[:count], self._queue[count:]
        return given

    def tell(self, point: Point, metrics: dict[str, Any] | None) -> None:
        """The metrics of a finished point (``None``: it has none to offer)."""

    def seed(self, records: list[dict[str, Any]]) -> None:
        """The points an earlier session of the exploration finished (``points.jsonl`` records)."""

    def exhausted(self) -> bool:
        """Whether no point is left to hand out."""
        return not self._queue


def random_points(space: Space, count: int, seed: int) -> list[Point]:
    """``count`` distinct points of the grid of ``space`` drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    indices = rng.choice(space.grid_size, size=min(count, space.grid_size), replace=False)
    return [space.point(space.choice(int(index))) for index in indices]


class OptunaPlanner(Planner):
    """Points asked from an Optuna study (ask-and-tell), ``space.strategy.points`` distinct ones."""

    adaptive = True

    def __init__(self, space: Space) -> None:
        optuna = import_optuna()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.space = space
        strategy = space.strategy
        if strategy.sampler == "nsga2":
            sampler = optuna.samplers.NSGAIISampler(seed=strategy.seed)
        else:
            startup = max(2, min(10, (strategy.points or 2) // 3))
            sampler = optuna.samplers.TPESampler(seed=strategy.seed, n_startup_trials=startup)
        directions = ["maximize" if METRICS[name][0] == "max" else "minimize" for name in space.objectives]
        self.study = optuna.create_study(directions=directions, sampler=sampler)
        self.distributions = {
            name: optuna.distributions.CategoricalDistribution(list(range(len(values))))
            for name, values in space.axes
        }
        self.total = strategy.points or 0
        self.asked: dict[str, list[Any]] = {}  # point id -> trials waiting for it
        self.known: dict[str, dict[str, Any] | None] = {}
        self.numbers: dict[str, int] = {}
        self.handed = 0
        self.asks = 0
        self._state = optuna.trial.TrialState

    def ask(self, count: int) -> list[Point]:
        points = []
        while len(points) < count and self.handed < self.total:
            if self.asks >= MAX_ASKS_PER_POINT * self.total:
                self.total = self.handed  # the sampler keeps repeating itself: stop here
                break
            self.asks += 1
            trial = self.study.ask(self.distributions)
            choice = tuple(trial.params[name] for name, _ in self.space.axes)
            point = self.space.point(choice)
            if point.id in self.known:
                self._tell(trial, self.known[point.id])
                continue
            waiting = self.asked.setdefault(point.id, [])
            waiting.append(trial)
            if len(waiting) == 1:
                self.handed += 1
                self.numbers.setdefault(point.id, max(self.numbers.values(), default=0) + 1)
                points.append(point)
        return points

    def seed(self, records: list[dict[str, Any]]) -> None:
        optuna = import_optuna()
        for record in records:
            choice = self._choice(record["settings"])
            if choice is None or record["id"] in self.known:
                continue  # not a point of this space
            metrics = record["metrics"] if record["status"] == "ok" else None
            self.known[record["id"]] = metrics
            self.numbers[record["id"]] = record["number"]
            self.handed += 1
            values = None if metrics is None else [metrics.get(name) for name in self.space.objectives]
            failed = values is None or any(value is None for value in values)
            trial = optuna.trial.create_trial(
                params=dict(zip((name for name, _ in self.space.axes), choice, strict=True)),
                distributions=self.distributions,
                values=None if failed else [float(value) for value in values],
                state=self._state.FAIL if failed else self._state.COMPLETE,
            )
            self.study.add_trial(trial)

    def _choice(self, settings: dict[str, Any]) -> tuple[int, ...] | None:
        """The value index of each axis for the axis ``settings`` of a record (``None``: not in the space)."""
        choice = []
        for name, values in self.space.axes:
            if name not in settings or settings[name] not in values:
                return None
            choice.append(values.index(settings[name]))
        return tuple(choice)

    def tell(self, point: Point, metrics: dict[str, Any] | None) -> None:
        self.known[point.id] = metrics
        for trial in self.asked.pop(point.id, []):
            self._tell(trial, metrics)

    def _tell(self, trial: Any, metrics: dict[str, Any] | None) -> None:
        values = None if metrics is None else [metrics.get(name) for name in self.space.objectives]
        if values is None or any(value is None for value in values):
            self.study.tell(trial, state=self._state.FAIL)
        else:
            self.study.tell(trial, [float(value) for value in values])

    def exhausted(self) -> bool:
        return self.handed >= self.total


def import_optuna() -> Any:
    """The ``optuna`` module, or a one-line :class:`EslError` naming the extra that brings it."""
    try:
        import optuna
    except ImportError:
        raise EslError(
            "strategy optuna needs Optuna: pip install 'esl-hw[explore]' (or pip install optuna)"
        ) from None
    return optuna


PLANNERS: dict[str, Callable[[Space], Planner]] = {
    "grid": lambda space: Planner(grid_points(space)),
    "random": lambda space: Planner(random_points(space, space.strategy.points or 0, space.strategy.seed)),
    "optuna": OptunaPlanner,
}


def planner_for(space: Space) -> Planner:
    """The planner of ``space.strategy.kind``."""
    return PLANNERS[space.strategy.kind](space)
