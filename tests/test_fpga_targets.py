"""FPGA targets: registry, capacities, cell classification."""

from __future__ import annotations

import pytest

from esl_hw.errors import EslError
from esl_hw.fpga.targets import RESOURCES, TARGETS, cell_kind, get_target


def test_known_targets_have_every_resource_and_a_source() -> None:
    assert set(TARGETS) == {"ecp5-85k", "ecp5-25k", "ice40-up5k"}
    for target in TARGETS.values():
        assert set(target.capacity) == set(RESOURCES)
        assert "Data Sheet" in target.source
        assert target.family in ("ecp5", "ice40")


def test_capacities_match_the_data_sheets() -> None:
    up5k = get_target("ice40-up5k")
    assert up5k.capacity["luts"] == 5280 and up5k.capacity["bram"] == 30 and up5k.capacity["spram"] == 4
    assert up5k.memory_bits == 30 * 4096 + 4 * 262144
    ecp5 = get_target("ecp5-85k")
    assert ecp5.capacity["bram"] == 208 and ecp5.capacity["dsp"] == 156 and ecp5.bram_bits == 18432


def test_unknown_target_names_the_choices() -> None:
    with pytest.raises(EslError, match=r"unknown FPGA target 'xc7a35t' \(expected one of ecp5-85k"):
        get_target("xc7a35t")


@pytest.mark.parametrize(
    ("family", "cell", "kind"),
    [
        ("ecp5", "DP16KD", "bram"),
        ("ecp5", "TRELLIS_DPR16X4", "lutram"),
        ("ecp5", "TRELLIS_FF", "ffs"),
        ("ecp5", "CCU2C", "carry"),
        ("ice40", "SB_RAM40_4K", "bram"),
        ("ice40", "SB_SPRAM256KA", "spram"),
        ("ice40", "SB_DFFESR", "ffs"),
        ("ice40", "SB_LUT4", "luts"),
        ("ice40", "SB_IO", None),
    ],
)
def test_cell_kind(family: str, cell: str, kind: str | None) -> None:
    assert cell_kind(family, cell) == kind
