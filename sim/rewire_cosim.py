"""Co-simulate inference, on-chip rewiring, memory read-back and inference again, bit for bit.

:func:`run_rewire_cosim` builds the core with its rewiring unit and the harness
(:mod:`esl_hw.sim.harness`, rewire phase), then runs in one simulation:

1. images ``0 .. split-1`` on the artifact's model, checked against ``esl_hw.reference.run``;
2. one rewire request per layer ``l`` (``k = ks[l]``, LFSR from ``seed``) through the core's
   request ports, checked against :func:`esl_hw.rewiring.rewire_layer` (error flag clear, final
   LFSR state equal);
3. every word of every memory read back through the host port, checked against
   :func:`esl_hw.rtl_gen.memory_map.memory_images` of :func:`esl_hw.rewiring.rewire_model`;
4. images ``split ..`` on the rewired core, checked against the reference on the rewired model.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from esl_hw.artifact import Model
from esl_hw.errors import EslError
from esl_hw.rewiring import DEFAULT_SEED, rewire_layer, rewire_model
from esl_hw.rtl_gen.memory_map import memory_images
from esl_hw.rtl_gen.plan import CorePlan, as_plan, rewire_limit_problem
from esl_hw.sim.build import simulator_environment
from esl_hw.sim.build_cache import writable_cache
from esl_hw.sim.trace import MAX_DETAILS, TraceRecord, compare, select_images


def rewire_expectations(model: Model, ks: Sequence[int], seed: int, lanes: int) -> tuple[Model, list[int]]:
    """The rewired model and every layer's final LFSR state; :class:`EslError` (naming the layer
    and the excess) when a ``k`` exceeds its layer's synapse count."""
    rewired = rewire_model(model, ks, seed, lanes)
    states = [rewire_layer(layer, k, seed, lanes)[1] for layer, k in zip(model.layers, ks, strict=True)]
    return rewired, states


def _memory_problems(record: TraceRecord, rewired: Model, lanes: int) -> list[str]:
    expected = [
        (mem, addr, word)
        for mem, words in enumerate(memory_images(rewired, lanes))
        for addr, word in enumerate(words)
    ]
    if record.memory == expected:
        return []
    if len(record.memory) != len(expected):
        return [f"memory read-back: got {len(record.memory)} words, expected {len(expected)}"]
    wrong = [(got, want) for got, want in zip(record.memory, expected, strict=True) if got != want]
    first, want = wrong[0]
    return [f"memory read-back: {len(wrong)} words differ, first (mem, addr, value) {first} != {want}"]


def check_rewire(config: dict, model: Model, images: np.ndarray, record: TraceRecord) -> dict:
    """The report of a rewire run (``config["rewire"]``: ``split``, ``ks``, ``seed``, ``lanes``):
    :func:`esl_hw.sim.trace.compare` keys over both halves, plus ``rewires`` and
    ``memory_words``; a wrong rewire result or memory word is a problem (``ok`` false)."""
    spec = config["rewire"]
    split, lanes = spec["split"], spec["lanes"]
    rewired, states = rewire_expectations(model, spec["ks"], spec["seed"], lanes)
    potentials = config["trace_potentials"]
    before = compare(model, images[:split], select_images(record, 0, split), potentials)
    after = compare(rewired, images[split:], select_images(record, split, len(images)), potentials)
    problems = before["problems"] + after["problems"]
    expected_rewires = [(layer, 0, state) for layer, state in enumerate(states)]
    if record.rewires != expected_rewires:
        problems.append(f"rewire results {record.rewires} != expected {expected_rewires}")
    problems += _memory_problems(record, rewired, lanes)
    details = before["details"] + [f"after rewiring, {detail}" for detail in after["details"]]
    return {
        "ok": before["ok"] and after["ok"] and not problems,
        "samples": len(images),
        "mismatches": before["mismatches"] + after["mismatches"],
        "mismatched": before["mismatched"] + [split + index for index in after["mismatched"]],
        "details": details[:MAX_DETAILS],
        "predictions": before["predictions"] + after["predictions"],
        "expected_predictions": before["expected_predictions"] + after["expected_predictions"],
        "outputs": before["outputs"] + after["outputs"],
        "counters": before["counters"] + after["counters"],
        "problems": problems,
        "timed_out": record.timed_out,
        "rewires": [list(entry) for entry in record.rewires],
        "memory_words": len(record.memory),
    }


def _rewire_cycle_budget(plan: CorePlan) -> int:
    """A generous watchdog allowance for the rewire phase (draws are random; see rtl_gen.rewire)."""
    budget = 0
    for layer in plan:
        row = layer.layer.max_fanout() + 2
        budget += 4 * (layer.nnz + layer.lanes * layer.n_in + 300) + 64 * layer.nnz * row
    return budget + 4 * sum(region.depth for region in plan.regions)


def run_rewire_cosim(
    model: CorePlan | Model,
    images: np.ndarray,
    split: int,
    ks: Sequence[int],
    seed: int = DEFAULT_SEED,
    simulator: str = "verilator",
    build_dir: str | os.PathLike[str] | None = None,
    lanes: int | None = None,
    trace_potentials: bool = True,
):
    """Run steps 1-4 of the module docstring; return ``(CosimResult, report)``.

    ``model`` is the plan of the core, or the artifact on ``lanes`` lanes (``None``: the model's
    own). ``images`` (``[N, n_in]`` uint8) are split at ``split`` (``1 <= split < N``); ``ks`` has
    one ``k`` per layer. Raises :class:`EslError` for a ``k`` above its layer's synapse count
    (naming the layer and the excess), a model beyond the rewiring unit's limits, a plan without
    the unit or a bad ``split``. ``build_dir`` holds the run folder (a temporary one when
    ``None``); the build goes to the build cache, as for :func:`esl_hw.sim.run_cosim`.
    """
    from esl_hw.sim import runner

    plan = as_plan(model, lanes)
    model, lanes = plan.model, plan.lanes
    problem = rewire_limit_problem(plan)
    if problem is not None:
        raise EslError(f"cannot rewire on chip: {problem}")
    if not plan.rewiring:
        raise EslError("cannot rewire on chip: the plan leaves the rewiring unit out (rewiring=False)")
    images = np.asarray(images)
    if not 1 <= split < len(images):
        raise EslError(f"split must be in 1..{len(images) - 1} (images before and after), got {split!r}")
    rewire_expectations(model, ks, seed, lanes)  # refuses a bad k before building
    words = runner.event_words(model, images)
    capacity = runner.capacity_for(len(words))
    options = [f"+SPLIT={split}", f"+RWSEED={seed:x}", *(f"+RWK{layer}={k}" for layer, k in enumerate(ks))]
    spec = {"split": split, "ks": [int(k) for k in ks], "seed": int(seed), "lanes": lanes}
    with contextlib.ExitStack() as stack:
        if build_dir is None:
            build_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="esl-rewire-"))
        root = Path(build_dir).resolve()
        cache = writable_cache()
        with simulator_environment(simulator, cache / "objcache"):
            started = time.perf_counter()
            folder, built = runner._build(plan, simulator, capacity, cache)
            build_seconds = time.perf_counter() - started
            started = time.perf_counter()
            report, report_path = runner._run(
                model,
                model,
                images,
                words,
                simulator,
                folder,
                root,
                trace_potentials,
                options,
                extra_config={"rewire": spec},
                extra_cycles=_rewire_cycle_budget(plan),
            )
            run_seconds = time.perf_counter() - started
        result = runner._result(model, simulator, report, report_path, build_seconds, run_seconds, built)
        result.lanes, result.config, result.build = plan.lanes, plan.config, folder
        return result, report
