"""PLL settings for the board tops: the closest legal output frequency not above a request.

:func:`ecp5_pll` chooses the dividers of the ECP5 ``EHXPLLL`` with feedback from ``CLKOP``
(ranges of the ECP5 data sheet, DS1044, "sysCLOCK PLL Timing")::

    f_pfd = f_in / CLKI_DIV                   3.125 .. 400 MHz
    f_out = f_in * CLKFB_DIV / CLKI_DIV       3.125 .. 400 MHz
    f_vco = f_out * CLKOP_DIV                 400 .. 800 MHz

:func:`ice40_pll` those of the iCE40 ``SB_PLL40_PAD`` / ``SB_PLL40_CORE`` in SIMPLE feedback
(iCE40 sysCLOCK PLL Design and Usage Guide, TN1251)::

    f_pfd = f_in / (DIVR + 1)                 10 .. 133 MHz
    f_vco = f_pfd * (DIVF + 1)                533 .. 1066 MHz
    f_out = f_vco / 2**DIVQ                   16 .. 275 MHz

Both search every divider exhaustively in exact rational arithmetic and return the highest
``f_out <= f_request`` (ties: the higher ``f_pfd``, then the higher ``f_vco``, for less jitter).
:func:`ecp5_instance` and :func:`ice40_instance` turn a setting into the primitive's Amaranth
:class:`~amaranth.hdl.Instance`; :func:`add_pll_domain` clocks a design's ``sync`` domain from it,
in reset until the PLL reports lock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

from amaranth.hdl import ClockDomain, ClockSignal, Instance, Module, Signal, Value
from amaranth.lib import io
from amaranth.lib.cdc import FFSynchronizer

from esl_hw.errors import EslError

#: ECP5 EHXPLLL ranges in MHz (DS1044) and divider ranges (Project Trellis ``ecppll``).
ECP5_IN = (Fraction(8), Fraction(400))
ECP5_PFD = (Fraction(3125, 1000), Fraction(400))
ECP5_VCO = (Fraction(400), Fraction(800))
ECP5_OUT = (Fraction(3125, 1000), Fraction(400))
ECP5_CLKI_DIV = range(1, 129)
ECP5_CLKFB_DIV = range(1, 81)
ECP5_CLKOP_DIV = range(1, 129)

#: iCE40 SB_PLL40 ranges in MHz (TN1251) and divider ranges (SIMPLE feedback: DIVQ 1..6).
ICE40_IN = (Fraction(10), Fraction(133))
ICE40_PFD = (Fraction(10), Fraction(133))
ICE40_VCO = (Fraction(533), Fraction(1066))
ICE40_OUT = (Fraction(16), Fraction(275))
ICE40_DIVR = range(16)
ICE40_DIVF = range(128)
ICE40_DIVQ = range(1, 7)


@dataclass(frozen=True)
class PllSetting:
    """A legal PLL configuration: the primitive, its frequencies (MHz) and its parameters."""

    primitive: str
    f_in_mhz: Fraction
    f_out_mhz: Fraction
    f_pfd_mhz: Fraction
    f_vco_mhz: Fraction
    params: dict[str, int | str] = field(default_factory=dict)

    @property
    def f_out_hz(self) -> int:
        """The output frequency rounded to whole Hz."""
        return round(self.f_out_mhz * 1_000_000)

    def summary(self, requested_mhz: float) -> dict:
        """The setting for a report: primitive, frequencies in MHz (6 decimals), parameters."""
        figures = {"in": self.f_in_mhz, "out": self.f_out_mhz, "pfd": self.f_pfd_mhz, "vco": self.f_vco_mhz}
        return {
            "primitive": self.primitive,
            "requested_mhz": float(requested_mhz),
            **{f"f_{name}_mhz": round(float(value), 6) for name, value in figures.items()},
            "params": dict(self.params),
        }


def _within(value: Fraction, bounds: tuple[Fraction, Fraction]) -> bool:
    return bounds[0] <= value <= bounds[1]


def _check_request(family: str, f_in: Fraction, f_request: Fraction, inputs, outputs) -> None:
    if not _within(f_in, inputs):
        low, high = (float(bound) for bound in inputs)
        raise EslError(f"{family} PLL input {float(f_in):g} MHz outside {low:g}..{high:g} MHz")
    if f_request < outputs[0]:
        raise EslError(
            f"{family} PLL cannot make {float(f_request):g} MHz or less: its lowest output is "
            f"{float(outputs[0]):g} MHz"
        )


def as_mhz(value: float | Fraction, name: str) -> Fraction:
    """``value`` MHz as an exact fraction (a float to within 1 Hz); not a positive number: EslError."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)) or not value > 0:
        raise EslError(f"{name} must be a positive number of MHz, got {value!r}")
    return Fraction(value).limit_denominator(1_000_000) if isinstance(value, float) else Fraction(value)


def _best(candidates, family: str, f_request: Fraction) -> PllSetting:
    best = max(candidates, key=lambda s: (s.f_out_mhz, s.f_pfd_mhz, s.f_vco_mhz), default=None)
    if best is None:
        raise EslError(f"no legal {family} PLL setting at or below {float(f_request):g} MHz")
    return best


def ecp5_pll(f_in_mhz: float | Fraction, f_request_mhz: float | Fraction) -> PllSetting:
    """The EHXPLLL setting with the highest ``f_out = f_in * CLKFB_DIV / CLKI_DIV <= f_request``.

    ``CLKOP_DIV`` puts ``f_vco = f_out * CLKOP_DIV`` as high as its range allows, and
    ``CLKOP_CPHASE = CLKOP_DIV // 2`` as Project Trellis' ``ecppll`` writes it (``CLKOP_FPHASE = 0``;
    the feedback from ``CLKOP`` makes the phase immaterial). Raises :class:`EslError` when the
    input is out of range or no setting reaches down to the request.
    """
    f_in, f_request = as_mhz(f_in_mhz, "PLL input"), as_mhz(f_request_mhz, "requested clock")
    _check_request("ECP5", f_in, f_request, ECP5_IN, ECP5_OUT)

    def candidates():
        for clki in ECP5_CLKI_DIV:
            f_pfd = f_in / clki
            if not _within(f_pfd, ECP5_PFD):
                continue
            for clkfb in ECP5_CLKFB_DIV:
                f_out = f_pfd * clkfb
                if f_out > f_request:
                    break
                clkop = min(ECP5_CLKOP_DIV[-1], math.floor(ECP5_VCO[1] / f_out))  # the highest f_vco
                if _within(f_out, ECP5_OUT) and clkop in ECP5_CLKOP_DIV and _within(f_out * clkop, ECP5_VCO):
                    params = {
                        "CLKI_DIV": clki,
                        "CLKFB_DIV": clkfb,
                        "CLKOP_DIV": clkop,
                        "CLKOP_CPHASE": clkop // 2,
                        "CLKOP_FPHASE": 0,
                    }
                    yield PllSetting("EHXPLLL", f_in, f_out, f_pfd, f_out * clkop, params)

    return _best(candidates(), "ECP5", f_request)


def ice40_filter_range(f_pfd_mhz: Fraction) -> int:
    """``FILTER_RANGE`` of SB_PLL40 for the phase detector's frequency (the table of icestorm's
    ``icepll``: below 17, 26, 44, 66, 101 MHz: 1 .. 5, else 6)."""
    for limit, value in ((17, 1), (26, 2), (44, 3), (66, 4), (101, 5)):
        if f_pfd_mhz < limit:
            return value
    return 6


def ice40_pll(f_in_mhz: float | Fraction, f_request_mhz: float | Fraction) -> PllSetting:
    """The SB_PLL40 setting (SIMPLE feedback) with the highest
    ``f_out = f_in * (DIVF + 1) / ((DIVR + 1) * 2**DIVQ) <= f_request``; raises :class:`EslError`
    when the input is out of range or the request is below the PLL's lowest output."""
    f_in, f_request = as_mhz(f_in_mhz, "PLL input"), as_mhz(f_request_mhz, "requested clock")
    _check_request("iCE40", f_in, f_request, ICE40_IN, ICE40_OUT)

    def candidates():
        for divr in ICE40_DIVR:
            f_pfd = f_in / (divr + 1)
            if not _within(f_pfd, ICE40_PFD):
                continue
            for divf in ICE40_DIVF:
                f_vco = f_pfd * (divf + 1)
                if not _within(f_vco, ICE40_VCO):
                    continue
                for divq in ICE40_DIVQ:
                    f_out = f_vco / 2**divq
                    if f_out <= f_request and _within(f_out, ICE40_OUT):
                        params = {
                            "DIVR": divr,
                            "DIVF": divf,
                            "DIVQ": divq,
                            "FILTER_RANGE": ice40_filter_range(f_pfd),
                            "FEEDBACK_PATH": "SIMPLE",
                        }
                        yield PllSetting("SB_PLL40_PAD", f_in, f_out, f_pfd, f_vco, params)

    return _best(candidates(), "iCE40", f_request)


#: The PLL search of each FPGA family (:attr:`esl_hw.fpga.targets.Family.name`).
PLL_SEARCH = {"ecp5": ecp5_pll, "ice40": ice40_pll}


def pll_for(family: str, f_in_mhz: float, f_request_mhz: float) -> PllSetting:
    """The PLL setting of ``family`` (``ecp5``, ``ice40``) for ``f_request_mhz`` from ``f_in_mhz``."""
    if family not in PLL_SEARCH:
        raise EslError(f"no PLL for FPGA family {family!r} (expected one of {', '.join(PLL_SEARCH)})")
    return PLL_SEARCH[family](f_in_mhz, f_request_mhz)


def ecp5_instance(setting: PllSetting, clk_in: Value, clk_out: Value, lock: Value) -> Instance:
    """The EHXPLLL of ``setting``: ``clk_in`` to ``CLKI``, ``CLKOP`` to ``clk_out`` and back to
    ``CLKFB``, ``LOCK`` to ``lock`` (the attributes ``ecppll`` writes for nextpnr and Diamond)."""
    p = setting.params
    return Instance(
        "EHXPLLL",
        a_FREQUENCY_PIN_CLKI=f"{float(setting.f_in_mhz):g}",
        a_FREQUENCY_PIN_CLKOP=f"{float(setting.f_out_mhz):.6g}",
        a_ICP_CURRENT="12",
        a_LPF_RESISTOR="8",
        a_MFG_ENABLE_FILTEROPAMP="1",
        a_MFG_GMCREF_SEL="2",
        p_PLLRST_ENA="DISABLED",
        p_INTFB_WAKE="DISABLED",
        p_STDBY_ENABLE="DISABLED",
        p_DPHASE_SOURCE="DISABLED",
        p_OUTDIVIDER_MUXA="DIVA",
        p_CLKOP_ENABLE="ENABLED",
        p_FEEDBK_PATH="CLKOP",
        **{f"p_{name}": value for name, value in p.items()},
        i_CLKI=clk_in,
        i_CLKFB=clk_out,
        i_RST=0,
        i_STDBY=0,
        i_PHASESEL0=0,
        i_PHASESEL1=0,
        i_PHASEDIR=1,
        i_PHASESTEP=1,
        i_PHASELOADREG=1,
        i_PLLWAKESYNC=0,
        i_ENCLKOP=0,
        o_CLKOP=clk_out,
        o_LOCK=lock,
    )


def ice40_instance(setting: PllSetting, pad, clk_out: Value, lock: Value) -> Instance:
    """The SB_PLL40_PAD of ``setting`` on the clock pad ``pad`` (an I/O value of the pin, which
    the PLL takes whole): ``PLLOUTGLOBAL`` to ``clk_out`` (on a global buffer), ``LOCK`` to
    ``lock``."""
    p = setting.params
    return Instance(
        "SB_PLL40_PAD",
        p_FEEDBACK_PATH=p["FEEDBACK_PATH"],
        p_PLLOUT_SELECT="GENCLK",
        p_DIVR=p["DIVR"],
        p_DIVF=p["DIVF"],
        p_DIVQ=p["DIVQ"],
        p_FILTER_RANGE=p["FILTER_RANGE"],
        io_PACKAGEPIN=pad,
        i_RESETB=1,
        i_BYPASS=0,
        o_PLLOUTGLOBAL=clk_out,
        o_LOCK=lock,
    )


#: Time the iCE40 ``sync`` domain stays in reset after the PLL locks: its block RAMs read as zero
#: for about 3 µs after configuration (Amaranth's iCE40 platform waits 15 µs the same way).
ICE40_RESET_S = 15e-6


def add_pll_domain(m: Module, platform, setting: PllSetting) -> None:
    """Clock the ``sync`` domain of ``m`` from the PLL of ``setting``, fed by the platform's default
    clock pin. The pin keeps the platform's clock constraint, from which nextpnr derives the PLL
    output's (``Derived frequency constraint of ... for net clk``; a constraint on the output net
    itself would need a net name that survives flattening).

    ECP5 (EHXPLLL): the domain is reset-less and the global set/reset (``SGSR``, as Amaranth's own
    ECP5 domain) holds every flip-flop while ``LOCK`` (synchronised by two flip-flops outside GSR)
    is low. iCE40 (SB_PLL40_PAD on the clock pad): ``sync`` is in reset while ``LOCK`` is low and
    for :data:`ICE40_RESET_S` after it rises.
    """
    m.domains.sync = sync = ClockDomain("sync", reset_less=setting.primitive == "EHXPLLL")
    clock, lock = sync.clk, Signal(name="pll_lock")
    pin = platform.request(platform.default_clk, dir="-")
    if setting.primitive == "EHXPLLL":
        m.submodules.clk_buf = buffer = io.Buffer("i", pin)
        m.submodules.pll = ecp5_instance(setting, buffer.i, clock, lock)
        gsr = Signal(2, name="gsr_n")
        m.submodules += [
            Instance("FD1S3AX", p_GSR="DISABLED", i_CK=clock, i_D=lock, o_Q=gsr[0]),
            Instance("FD1S3AX", p_GSR="DISABLED", i_CK=clock, i_D=gsr[0], o_Q=gsr[1]),
            Instance("SGSR", i_CLK=clock, i_GSR=gsr[1]),  # active low: reset while not locked
        ]
    else:
        m.submodules.pll = ice40_instance(setting, pin.io, clock, lock)
        m.domains.por = ClockDomain("por", reset_less=True, local=True)
        m.d.comb += ClockSignal("por").eq(clock)
        locked = Signal(name="pll_locked")
        m.submodules.lock_sync = FFSynchronizer(lock, locked, o_domain="por")
        delay = max(1, round(ICE40_RESET_S * setting.f_out_hz))
        timer, ready = Signal(range(delay + 1), name="por_timer"), Signal(name="por_ready")
        with m.If(~locked):
            m.d.por += [timer.eq(0), ready.eq(0)]
        with m.Elif(timer == delay):
            m.d.por += ready.eq(1)
        with m.Else():
            m.d.por += timer.eq(timer + 1)
        m.d.comb += sync.rst.eq(~ready)
