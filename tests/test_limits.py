"""esl_hw.limits: the one table of limits, its helpers, and its agreement with the plan and the docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from esl_hw import limits
from esl_hw.errors import EslError
from esl_hw.limits import check_range, is_int, shown

REPO = Path(__file__).resolve().parents[1]


def test_check_range_returns_the_value_or_names_the_problem() -> None:
    assert check_range(5, 1, 8, "x") == 5
    assert check_range(1, 1, 1, "x") == 1
    for bad in (True, 5.0, "5", None, [5], 0, 9, 2**100):
        with pytest.raises(EslError, match=r"^layer 0: n must be an integer in 1..8, got "):
            check_range(bad, 1, 8, "layer 0: n")


def test_is_int_refuses_bool() -> None:
    assert is_int(3) and is_int(-(2**80)) and not is_int(True) and not is_int(3.0)


def test_shown_is_one_short_line() -> None:
    assert shown("x") == "'x'"
    text = shown("a\n" * 100)
    assert "\n" not in text and len(text) <= 60 and text.endswith("...")


def test_the_numeric_bounds_keep_the_arithmetic_exact() -> None:
    weight = 1 << (limits.W_BITS[1] - 1)
    current = limits.MAX_INPUTS_PER_LAYER * weight
    assert current < 1 << 53  # the reference's float64 matrix product stays exact
    assert current * limits.TIMESTEPS[1] <= 1 << 63  # |acc| fits int64 (only -2^63 reaches the bound)
    assert (1 << (limits.TRAIN_W_BITS[1] - 1)) - 1 < 1 << 24  # float32 holds every trained weight level
    assert limits.MAX_SYNAPSES_PER_LAYER <= limits.MAX_SYNAPSES


def test_the_artifact_admits_every_model_the_hardware_plan_admits() -> None:
    from esl_hw.rtl_gen.plan import LIMITS

    assert LIMITS["neurons per layer"] <= limits.MAX_NEURONS_PER_LAYER
    assert LIMITS["inputs per layer"] <= limits.MAX_INPUTS_PER_LAYER
    assert LIMITS["synapses per layer"] <= limits.MAX_SYNAPSES_PER_LAYER
    assert LIMITS["timesteps"] == limits.TIMESTEPS[1]
    assert LIMITS["potential bits"] == limits.V_BITS[1]


def test_the_hardware_limits_are_read_from_this_table() -> None:
    from esl_hw.rtl_gen.plan import LIMITS, MAX_LANES, MAX_REWIRE_W_BITS

    expected = {
        "neurons per layer": limits.MAX_NEURONS_PER_LAYER,
        "inputs per layer": limits.MAX_INPUTS_PER_LAYER,
        "synapses per layer": limits.CORE_MAX_SYNAPSES,
        "current bits": limits.CORE_MAX_CURRENT_BITS,
        "potential bits": limits.V_BITS[1],
        "accumulator bits": limits.CORE_MAX_ACC_BITS,
        "timesteps": limits.TIMESTEPS[1],
    }
    assert expected == LIMITS
    assert MAX_LANES == limits.MAX_LANES == limits.LANES[1] and limits.REWIRE_LANES == limits.LANES
    assert MAX_REWIRE_W_BITS == limits.REWIRE_MAX_W_BITS


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, r"^sparsity.lanes must be a power of two in 1..64, got 0$"),
        (True, r"^sparsity.lanes must be a power of two in 1..64, got True$"),
        ("4", r"^sparsity.lanes must be a power of two in 1..64, got '4'$"),
        (12, r"^sparsity.lanes must be a power of two, got 12$"),
        (128, r"^sparsity.lanes = 128 exceeds the hardware limit 64 by 64$"),
    ],
)
def test_check_lanes_is_the_one_lane_rule(value, message) -> None:
    assert [limits.check_lanes(lanes) for lanes in (1, 2, 64)] == [1, 2, 64]
    with pytest.raises(EslError, match=message):
        limits.check_lanes(value, "sparsity.lanes")


def _limits_section() -> str:
    text = (REPO / "docs" / "semantics.md").read_text()
    start = text.index("### Limits")
    return text[start : text.index("\n## ", start) if "\n## " in text[start:] else len(text)]


@pytest.mark.parametrize(
    ("name", "shown_as"),
    [
        ("TIMESTEPS", "1 .. 4096"),
        ("W_BITS", "2 .. 32"),
        ("V_BITS", "2 .. 48"),
        ("PHASE0", "0 .. 255"),
        ("MAX_LAYERS", "64"),
        ("MAX_INPUTS_PER_LAYER", "2^20"),
        ("MAX_NEURONS_PER_LAYER", "2^20"),
        ("MAX_SYNAPSES_PER_LAYER", "2^26"),
        ("MAX_SYNAPSES", "2^27"),
    ],
)
def test_the_docs_state_the_same_limits(name: str, shown_as: str) -> None:
    value = getattr(limits, name)
    if isinstance(value, tuple):
        low, high = (int(part) for part in shown_as.split(" .. "))
        assert value == (low, high)
    else:
        match = re.fullmatch(r"2\^(\d+)", shown_as)
        assert value == (1 << int(match.group(1)) if match else int(shown_as))
    assert re.search(rf"`{name}`.*{re.escape(shown_as)}", _limits_section()), name
