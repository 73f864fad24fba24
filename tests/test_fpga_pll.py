"""PLL divider search (ECP5 EHXPLLL, iCE40 SB_PLL40): every setting inside the data sheet's ranges,
the closest output not above the request, and the UART divisor at every PLL output."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from esl_hw.errors import EslError
from esl_hw.fpga import pll as P
from esl_hw.fpga.pll import ecp5_pll, ice40_filter_range, ice40_pll, pll_for
from esl_hw.fpga.uart import uart_divisor


def _inside(value: Fraction, bounds: tuple[Fraction, Fraction]) -> bool:
    return bounds[0] <= value <= bounds[1]


def check_ecp5(setting: P.PllSetting, f_in: Fraction) -> None:
    """Every EHXPLLL figure in its range and the equations of the module docstring."""
    p = setting.params
    assert p["CLKI_DIV"] in P.ECP5_CLKI_DIV and p["CLKFB_DIV"] in P.ECP5_CLKFB_DIV
    assert p["CLKOP_DIV"] in P.ECP5_CLKOP_DIV and p["CLKOP_CPHASE"] == p["CLKOP_DIV"] // 2 <= 127
    assert setting.f_pfd_mhz == f_in / p["CLKI_DIV"] and _inside(setting.f_pfd_mhz, P.ECP5_PFD)
    assert setting.f_out_mhz == f_in * p["CLKFB_DIV"] / p["CLKI_DIV"] and _inside(
        setting.f_out_mhz, P.ECP5_OUT
    )
    assert setting.f_vco_mhz == setting.f_out_mhz * p["CLKOP_DIV"] and _inside(setting.f_vco_mhz, P.ECP5_VCO)


def check_ice40(setting: P.PllSetting, f_in: Fraction) -> None:
    """Every SB_PLL40 figure in its range and the equations of the module docstring."""
    p = setting.params
    assert p["DIVR"] in P.ICE40_DIVR and p["DIVF"] in P.ICE40_DIVF and p["DIVQ"] in P.ICE40_DIVQ
    assert setting.f_pfd_mhz == f_in / (p["DIVR"] + 1) and _inside(setting.f_pfd_mhz, P.ICE40_PFD)
    assert setting.f_vco_mhz == setting.f_pfd_mhz * (p["DIVF"] + 1) and _inside(
        setting.f_vco_mhz, P.ICE40_VCO
    )
    assert setting.f_out_mhz == setting.f_vco_mhz / 2 ** p["DIVQ"] and _inside(setting.f_out_mhz, P.ICE40_OUT)
    assert p["FILTER_RANGE"] == ice40_filter_range(setting.f_pfd_mhz) and p["FEEDBACK_PATH"] == "SIMPLE"


def _requests(low: float, high: float, count: int) -> list[float]:
    return [round(float(value), 3) for value in np.random.default_rng(0).uniform(low, high, count)]


@pytest.mark.parametrize("request_mhz", [*_requests(3.2, 400, 40), 101.16, 100, 62.5, 25])
def test_ecp5_from_25_mhz_is_legal_and_closest_from_below(request_mhz: float) -> None:
    setting = ecp5_pll(25, request_mhz)
    check_ecp5(setting, Fraction(25))
    assert setting.f_out_mhz <= Fraction(request_mhz)
    # From 25 MHz the outputs are 25 * k / d with d <= 8 (f_pfd >= 3.125 MHz) and k <= 80: up to
    # 25 * 80 / 8 = 250 MHz consecutive outputs differ by at most 25/8 MHz (Farey gaps <= 1/8).
    if request_mhz <= 250:
        assert Fraction(request_mhz) - setting.f_out_mhz <= Fraction(25, 8)
    better = [Fraction(25 * k, d) for d in range(1, 9) for k in range(1, 81)]
    assert (
        max(f for f in better if f <= Fraction(request_mhz) and f >= Fraction(3125, 1000))
        == setting.f_out_mhz
    )


def test_ecp5_exact_frequencies_and_the_101_mhz_core() -> None:
    assert ecp5_pll(25, 101.16).params == {"CLKI_DIV": 1, "CLKFB_DIV": 4, "CLKOP_DIV": 8, "CLKOP_CPHASE": 4,
                                            "CLKOP_FPHASE": 0}  # fmt: skip
    assert ecp5_pll(25, 101.16).f_out_hz == 100_000_000
    assert ecp5_pll(25, 62.5).f_out_mhz == Fraction(125, 2)
    assert ecp5_pll(25, 86.9).f_out_mhz == Fraction(600, 7)  # 85.714 MHz: 25 * 24 / 7


@pytest.mark.parametrize("request_mhz", [*_requests(16.9, 275, 40), 35.0, 22.0, 24])
def test_ice40_from_12_mhz_is_legal_and_within_2_3_percent(request_mhz: float) -> None:
    setting = ice40_pll(12, request_mhz)
    check_ice40(setting, Fraction(12))
    assert setting.f_out_mhz <= Fraction(request_mhz)
    # f_pfd = 12 MHz (DIVR 0 is the only legal one), so f_out = 12 (DIVF + 1) / 2**DIVQ with
    # DIVF + 1 >= 45: consecutive outputs differ by at most 1/44 of the lower one.
    assert Fraction(request_mhz) - setting.f_out_mhz <= setting.f_out_mhz / 44


def test_ice40_exact_frequencies() -> None:
    setting = ice40_pll(12, 24)
    assert setting.f_out_hz == 24_000_000 and setting.params["DIVF"] == 63 and setting.params["DIVQ"] == 5
    assert ice40_pll(12, 22.0).f_out_mhz == Fraction(87, 4)  # 21.75 MHz


def test_filter_range_table() -> None:
    assert [ice40_filter_range(Fraction(f)) for f in (10, 16, 17, 30, 50, 80, 101, 133)] == [
        1,
        1,
        2,
        3,
        4,
        5,
        6,
        6,
    ]


def test_requests_out_of_reach_are_one_line_errors() -> None:
    with pytest.raises(EslError, match="iCE40 PLL cannot make 12 MHz or less: its lowest output is 16 MHz"):
        ice40_pll(12, 12)
    with pytest.raises(EslError, match="no legal iCE40 PLL setting at or below 16.1 MHz"):
        ice40_pll(12, 16.1)  # the lowest from 12 MHz is 12 * 86 / 64 = 16.125 MHz
    with pytest.raises(EslError, match="ECP5 PLL input 5 MHz outside 8..400 MHz"):
        ecp5_pll(5, 50)
    with pytest.raises(EslError, match="requested clock must be a positive number of MHz, got -1"):
        ecp5_pll(25, -1)
    with pytest.raises(EslError, match="no PLL for FPGA family 'gowin'"):
        pll_for("gowin", 27, 50)


@pytest.mark.parametrize("family, f_in", [("ecp5", 25), ("ice40", 12)])
def test_uart_divisor_from_every_pll_output_is_well_within_tolerance(family: str, f_in: int) -> None:
    # The link runs in the PLL's domain with divisor round(f_pll / baud): from 16 MHz up, at
    # 115200 baud, the divisor is at least 138 and the baud error at most 0.5 / 138 = 0.37%,
    # far inside the 2% uart_divisor allows (and the +-4% 8N1 sampling in the middle of a bit needs).
    for request in np.arange(16.9, 270, 0.7):
        setting = pll_for(family, f_in, float(request))
        divisor = uart_divisor(setting.f_out_hz, 115200)
        assert abs(setting.f_out_hz / divisor - 115200) / 115200 < 0.004


def test_summary_reports_the_actual_frequencies() -> None:
    summary = ice40_pll(12, 22.0).summary(22.0)
    assert summary["primitive"] == "SB_PLL40_PAD" and summary["requested_mhz"] == 22.0
    assert summary["f_out_mhz"] == 21.75 and summary["f_vco_mhz"] == 696.0 and summary["f_pfd_mhz"] == 12.0
    assert summary["params"]["DIVF"] == 57
