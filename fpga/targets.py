"""FPGA targets: devices, their capacities (with sources) and how the yowasp tools address them.

Capacities come from the vendors' data sheets:

- Lattice, *ECP5 and ECP5-5G Family Data Sheet*, FPGA-DS-02012, Table 1.1 (LFE5U-25F and
  LFE5U-85F): LUT4s, EBR blocks of 18 kbit (``DP16KD``), 18x18 multipliers (``MULT18X18D``).
  Every slice holds two LUT4s and two flip-flops, so the flip-flop count equals the LUT count.
- Lattice, *iCE40 UltraPlus Family Data Sheet*, FPGA-DS-02008, Table 1.1 (iCE40UP5K): 5,280
  logic cells (one LUT4 and one flip-flop each), 30 EBR blocks of 4 kbit (``SB_RAM40_4K``), 4
  SPRAM blocks of 256 kbit (``SB_SPRAM256KA``, 16K x 16), 8 DSPs (``SB_MAC16``).

A resource name in :attr:`Target.capacity` is one of :data:`RESOURCES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from esl_hw.errors import EslError

#: Resource kinds a report counts, in report order.
RESOURCES = ("luts", "ffs", "bram", "spram", "dsp", "lutram")

#: What each resource kind is, for reports.
RESOURCE_LABELS = {
    "luts": "LUT4 / logic cells",
    "ffs": "flip-flops",
    "bram": "block RAM (EBR)",
    "spram": "single-port RAM (SPRAM)",
    "dsp": "DSP / multipliers",
    "lutram": "LUT RAM (16x4 blocks)",
}


@dataclass(frozen=True)
class Target:
    """One FPGA device the flow can synthesise for.

    Attributes
    ----------
    name : str
        Name on the command line (``--target``).
    device : str
        Vendor part name.
    family : str
        ``"ecp5"`` or ``"ice40"``: selects ``synth_<family>`` and ``nextpnr-<family>``.
    nextpnr_args : tuple of str
        Device and package options of nextpnr.
    capacity : dict
        Available count per resource kind (keys in :data:`RESOURCES`).
    bram_bits : int
        Bits of one block RAM (data bits, without parity).
    spram_bits : int
        Bits of one SPRAM block (0 when the device has none).
    default_freq_mhz : float
        Clock constraint when the user gives none.
    board : str
        The board of this device that :mod:`esl_hw.fpga.boards` builds for.
    source : str
        Where the capacities come from.
    """

    name: str
    device: str
    family: str
    nextpnr_args: tuple[str, ...]
    capacity: dict[str, int] = field(default_factory=dict)
    bram_bits: int = 0
    spram_bits: int = 0
    default_freq_mhz: float = 100.0
    board: str = ""
    source: str = ""

    @property
    def memory_bits(self) -> int:
        """On-chip block memory in bits (block RAM plus SPRAM)."""
        return self.capacity["bram"] * self.bram_bits + self.capacity["spram"] * self.spram_bits


_ECP5_SOURCE = "Lattice ECP5 and ECP5-5G Family Data Sheet, FPGA-DS-02012, Table 1.1"
_ICE40_SOURCE = "Lattice iCE40 UltraPlus Family Data Sheet, FPGA-DS-02008, Table 1.1"

#: Every target, by command-line name.
TARGETS: dict[str, Target] = {
    "ecp5-85k": Target(
        name="ecp5-85k",
        device="LFE5U-85F",
        family="ecp5",
        nextpnr_args=("--85k", "--package", "CABGA381", "--speed", "6"),
        # 84K LUT4s; 208 EBR; 156 multipliers; 669 kbit distributed RAM = 10,455 16x4 blocks.
        capacity={"luts": 83640, "ffs": 83640, "bram": 208, "spram": 0, "dsp": 156, "lutram": 10455},
        bram_bits=18432,
        default_freq_mhz=100.0,
        board="ulx3s",
        source=_ECP5_SOURCE,
    ),
    "ecp5-25k": Target(
        name="ecp5-25k",
        device="LFE5U-25F",
        family="ecp5",
        nextpnr_args=("--25k", "--package", "CABGA381", "--speed", "6"),
        capacity={"luts": 24288, "ffs": 24288, "bram": 56, "spram": 0, "dsp": 28, "lutram": 3036},
        bram_bits=18432,
        default_freq_mhz=100.0,
        board="ulx3s",
        source=_ECP5_SOURCE,
    ),
    "ice40-up5k": Target(
        name="ice40-up5k",
        device="iCE40UP5K",
        family="ice40",
        nextpnr_args=("--up5k", "--package", "sg48"),
        capacity={"luts": 5280, "ffs": 5280, "bram": 30, "spram": 4, "dsp": 8, "lutram": 0},
        bram_bits=4096,
        spram_bits=262144,
        default_freq_mhz=24.0,
        board="icebreaker",
        source=_ICE40_SOURCE,
    ),
}


def get_target(name: str) -> Target:
    """The target called ``name``; an unknown name raises :class:`EslError` listing the known ones."""
    if not isinstance(name, str) or name not in TARGETS:
        raise EslError(f"unknown FPGA target {name!r} (expected one of {', '.join(TARGETS)})")
    return TARGETS[name]


#: Netlist cell types per family and resource kind (after ``synth_<family>``).
CELL_KINDS: dict[str, dict[str, tuple[str, ...]]] = {
    "ecp5": {
        "luts": ("LUT4", "LUT2", "TRELLIS_COMB"),
        "ffs": ("TRELLIS_FF",),
        "bram": ("DP16KD", "PDPW16KD"),
        "spram": (),
        "dsp": ("MULT18X18D", "ALU54B"),
        "lutram": ("TRELLIS_DPR16X4", "DPR16X4C", "TRELLIS_RAM16X2"),
        "carry": ("CCU2C",),
    },
    "ice40": {
        "luts": ("SB_LUT4",),
        "ffs": (
            "SB_DFF",
            "SB_DFFE",
            "SB_DFFSR",
            "SB_DFFR",
            "SB_DFFS",
            "SB_DFFESR",
            "SB_DFFER",
            "SB_DFFES",
            "SB_DFFSS",
            "SB_DFFESS",
            "SB_DFFN",
            "SB_DFFNE",
            "SB_DFFNSR",
            "SB_DFFNR",
            "SB_DFFNS",
            "SB_DFFNESR",
            "SB_DFFNER",
            "SB_DFFNES",
            "SB_DFFNSS",
            "SB_DFFNESS",
        ),  # fmt: skip
        "bram": ("SB_RAM40_4K", "SB_RAM40_4KNR", "SB_RAM40_4KNW", "SB_RAM40_4KNRNW"),
        "spram": ("SB_SPRAM256KA",),
        "dsp": ("SB_MAC16",),
        "lutram": (),
        "carry": ("SB_CARRY",),
    },
}


def cell_kind(family: str, cell_type: str) -> str | None:
    """Resource kind of a netlist cell type of ``family`` (``"carry"`` for carry chains), or None."""
    for kind, types in CELL_KINDS[family].items():
        if cell_type in types:
            return kind
    return None
