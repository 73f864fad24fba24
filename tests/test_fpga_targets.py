"""FPGA targets: registry, capacities, cell classification."""

from __future__ import annotations

import pytest

from esl_hw.errors import EslError
from esl_hw.fpga.targets import ECP5, FAMILIES, ICE40, RESOURCES, TARGETS, cell_kind, get_family, get_target


def test_known_targets_have_every_resource_and_a_source() -> None:
    assert set(TARGETS) == {"ecp5-85k", "ecp5-25k", "ice40-up5k"}
    for target in TARGETS.values():
        assert set(target.capacity) == set(RESOURCES)
        assert "Data Sheet" in target.source
        assert target.family is FAMILIES[target.family.name]


def test_families_carry_memories_cells_and_tools() -> None:
    # Everything the flow branches on per family is a field of the family object.
    assert (ECP5.synth_command, ECP5.nextpnr, ICE40.synth_command, ICE40.nextpnr) == (
        "synth_ecp5", "nextpnr-ecp5", "synth_ice40", "nextpnr-ice40"
    )  # fmt: skip
    assert ECP5.lut_ram and not ICE40.lut_ram
    assert ECP5.spram is None and ICE40.spram.shapes == ((16384, 16),) and not ICE40.spram.initialised
    assert ECP5.block_ram.deepest_words(9) == 2048 and ECP5.block_ram.deepest_words(30) == 1024
    assert ECP5.nextpnr_files(None) == ["--lpf-allow-unconstrained", "--textcfg", "design.config"]
    assert ICE40.nextpnr_files("top.pcf") == ["--pcf", "top.pcf", "--asc", "design.asc"]
    assert ECP5.pack_args("top.bit") == (
        "ecppack", ["--compress", "--input", "design.config", "--bit", "top.bit"]
    )  # fmt: skip
    assert ICE40.pack_args("top.bin") == ("icepack", ["design.asc", "top.bin"])
    assert (ECP5.carry_luts, ICE40.carry_luts) == (2, 0)
    with pytest.raises(EslError, match="unknown FPGA family 'gowin'"):
        get_family("gowin")


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
