"""The two-pin synthesis shim keeps every core port alive behind din/dout."""

from __future__ import annotations

import re

import numpy as np
from amaranth.back import verilog
from conftest import random_model

from esl_hw.fpga.shim import SHIM_TOP, SynthShim, core_port_bits
from esl_hw.rtl_gen import SNNCore


def test_core_port_bits_counts_both_directions() -> None:
    model = random_model(np.random.default_rng(2), (20, 12, 4))
    core = SNNCore(model)
    core._MustUse__silence = True  # inspected, never elaborated
    inputs, outputs = core_port_bits(core)
    # events: valid + index (5 bits) + eos; outputs.ready
    shape = core.bus_shape
    host = 2 + shape.id_bits + shape.addr_bits + shape.data_bits  # valid, write, mem, addr, wdata
    rewire = 1 + 1 + 32 + 32  # start, layer (two layers), k, seed
    assert inputs == 1 + 5 + 1 + 1 + host + rewire
    assert outputs > 32 * 10  # ten 32-bit counters at least


def test_shim_has_only_clock_reset_and_two_pins() -> None:
    model = random_model(np.random.default_rng(2), (20, 12, 4))
    text = verilog.convert(SynthShim(model), name=SHIM_TOP, emit_src=False)
    header = re.search(rf"module {SHIM_TOP}\((.*?)\);", text, re.S).group(1)
    assert sorted(port.strip() for port in header.split(",")) == ["clk", "din", "dout", "rst"]
