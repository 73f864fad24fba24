"""FPGA families and targets: devices, their capacities (with sources), their memories, netlist
cells and tools.

A :class:`Family` holds everything the flow needs to know about one FPGA architecture: its block
memories (:class:`~esl_hw.rtl_gen.hardware.RamPrimitive`), whether it has LUT RAM, the netlist and
packed cell types per resource, and the Yosys / nextpnr / packer commands and file names. A
:class:`Target` is one device of a family with its capacities. Adding a device of a known family
is one :class:`Target` in :data:`TARGETS`; adding a family is one :class:`Family` in
:data:`FAMILIES` (and the yowasp tools that address it); the synthesis flow, the board build and
the block estimate read everything else from these objects.

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
from esl_hw.rtl_gen.hardware import ECP5_EBR, ICE40_EBR, ICE40_SPRAM, RamPrimitive

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


@dataclass(frozen=True, eq=False)
class Family:
    """One FPGA family: its memories, netlist cells and tools.

    Attributes
    ----------
    name : str
        Short name (``ecp5``), also the suffix of ``synth_<name>`` and ``nextpnr-<name>``.
    label : str
        Name in messages (``ECP5``).
    block_ram : RamPrimitive
        Its block RAM.
    spram : RamPrimitive or None
        Its single-port RAM, when it has one (not initialised by the bitstream).
    lut_ram : bool
        Whether it has LUT RAM. Without it (the iCE40) Yosys would give every small memory a block
        RAM of its own, so the flow asks for flip-flops for memories of at most
        :data:`esl_hw.fpga.fit.SMALL_DEPTH` words, except those the plan places in block RAM.
    cell_kinds : dict
        Netlist cell types (after ``synth_<name>``) per resource kind of :data:`RESOURCES`, and
        ``carry`` for carry-chain cells.
    carry_luts : int
        LUT4s a carry cell counts for in the netlist count (an ECP5 ``CCU2C`` holds two).
    packed_kinds : dict
        nextpnr's packed cell types (its JSON report's ``utilization``) and their resource kinds.
    synth_options : tuple of str
        Options of ``synth_<name>`` (the iCE40's ``-spram``: SPRAM for memories without contents).
    constraints : str
        Suffix of the pin constraints amaranth-boards writes (``lpf``), also nextpnr's option.
    routed : str
        File nextpnr writes the routed design to (``design.config``) and its option.
    pack : tuple of str
        The packer and its arguments, ``{routed}`` and ``{bitstream}`` standing for the files.
    logic_cells : bool
        Its logic is counted in logic cells of one LUT4 and one flip-flop each (the iCE40): the
        netlist's LUT count misses the flip-flops without a LUT of their own, so the flow counts
        the cells nextpnr packs (``--pack-only``, seconds) before it places and routes.
    """

    name: str
    label: str
    block_ram: RamPrimitive
    spram: RamPrimitive | None
    lut_ram: bool
    cell_kinds: dict[str, tuple[str, ...]]
    carry_luts: int
    packed_kinds: dict[str, str]
    synth_options: tuple[str, ...] = ()
    constraints: str = ""
    routed: tuple[str, str] = ("", "")
    pack: tuple[str, ...] = ()
    logic_cells: bool = False

    def __str__(self) -> str:
        return self.name

    @property
    def synth_command(self) -> str:
        """The Yosys synthesis command (``synth_ecp5``)."""
        return f"synth_{self.name}"

    @property
    def nextpnr(self) -> str:
        """The place-and-route tool (``nextpnr-ecp5``)."""
        return f"nextpnr-{self.name}"

    def cell_kind(self, cell_type: str) -> str | None:
        """Resource kind of a netlist cell type (``"carry"`` for carry chains), or None."""
        for kind, types in self.cell_kinds.items():
            if cell_type in types:
                return kind
        return None

    def nextpnr_files(self, constraints: str | None) -> list[str]:
        """nextpnr's options for the pin constraints (placed freely without a file) and the
        routed design."""
        option = f"--{self.constraints}"
        files = [option, constraints] if constraints else [f"{option}-allow-unconstrained"]
        return files + list(self.routed)

    def pack_args(self, bitstream: str) -> tuple[str, list[str]]:
        """The packer and its arguments that turn the routed design into ``bitstream``."""
        tool, *args = self.pack
        return tool, [arg.format(routed=self.routed[1], bitstream=bitstream) for arg in args]


@dataclass(frozen=True)
class Target:
    """One FPGA device the flow can synthesise for.

    Attributes
    ----------
    name : str
        Name on the command line (``--target``).
    device : str
        Vendor part name.
    family : Family
        Its FPGA family (:data:`FAMILIES`): memories, cells, tools.
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
    family: Family
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

#: Lattice ECP5 (Yosys ``synth_ecp5``, ``nextpnr-ecp5``, ``ecppack``).
ECP5 = Family(
    name="ecp5",
    label="ECP5",
    block_ram=ECP5_EBR,
    spram=None,
    lut_ram=True,
    cell_kinds=CELL_KINDS["ecp5"],
    carry_luts=2,
    packed_kinds={
        "TRELLIS_COMB": "luts",
        "TRELLIS_FF": "ffs",
        "DP16KD": "bram",
        "MULT18X18D": "dsp",
        "TRELLIS_RAMW": "lutram",
    },
    constraints="lpf",
    routed=("--textcfg", "design.config"),
    pack=("ecppack", "--compress", "--input", "{routed}", "--bit", "{bitstream}"),
)

#: Lattice iCE40 (Yosys ``synth_ice40 -spram``, ``nextpnr-ice40``, ``icepack``).
ICE40 = Family(
    name="ice40",
    label="iCE40",
    block_ram=ICE40_EBR,
    spram=ICE40_SPRAM,
    lut_ram=False,
    cell_kinds=CELL_KINDS["ice40"],
    carry_luts=0,
    packed_kinds={
        "ICESTORM_LC": "luts",
        "ICESTORM_RAM": "bram",
        "ICESTORM_SPRAM": "spram",
        "ICESTORM_DSP": "dsp",
    },
    synth_options=("-spram",),
    constraints="pcf",
    routed=("--asc", "design.asc"),
    pack=("icepack", "{routed}", "{bitstream}"),
    logic_cells=True,
)

#: Every family, by name.
FAMILIES: dict[str, Family] = {family.name: family for family in (ECP5, ICE40)}


def get_family(family: Family | str) -> Family:
    """``family`` itself, or the family called so; an unknown name raises :class:`EslError`."""
    if isinstance(family, Family):
        return family
    if not isinstance(family, str) or family not in FAMILIES:
        raise EslError(f"unknown FPGA family {family!r} (expected one of {', '.join(FAMILIES)})")
    return FAMILIES[family]


_ECP5_SOURCE = "Lattice ECP5 and ECP5-5G Family Data Sheet, FPGA-DS-02012, Table 1.1"
_ICE40_SOURCE = "Lattice iCE40 UltraPlus Family Data Sheet, FPGA-DS-02008, Table 1.1"

#: Every target, by command-line name.
TARGETS: dict[str, Target] = {
    "ecp5-85k": Target(
        name="ecp5-85k",
        device="LFE5U-85F",
        family=ECP5,
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
        family=ECP5,
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
        family=ICE40,
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


def cell_kind(family: Family | str, cell_type: str) -> str | None:
    """Resource kind of a netlist cell type of ``family`` (``"carry"`` for carry chains), or None."""
    return get_family(family).cell_kind(cell_type)
