"""Access-count strobes: inference parity, sums per parity, ``stat_*`` shapes, and the reductions."""

from __future__ import annotations

import pytest
from amaranth import Module, Signal, unsigned
from amaranth.sim import Simulator

from esl_hw.rtl_gen.strobes import (
    add_strobes,
    all_of,
    any_of,
    drive_stat,
    inference_parity,
    stat_shape,
    strobe_pair,
    strobes_by_parity,
)


def settle(m: Module, probes: dict, cases: list[list[tuple[Signal, int]]]) -> list[dict]:
    """Drive each case's ``(signal, value)`` pairs, then read every probe (combinational)."""
    seen = []

    async def testbench(ctx) -> None:
        for case in cases:
            for signal, value in case:
                ctx.set(signal, value)
            seen.append({name: ctx.get(probe) for name, probe in probes.items()})

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
    return seen


@pytest.mark.parametrize("timesteps", [1, 2, 3])
def test_inference_parity_toggles_at_every_timesteps_th_marker(timesteps: int) -> None:
    m = Module()
    taken = Signal()
    parity = inference_parity(m, taken, timesteps, "lane0")
    assert parity.name == "lane0_inference"
    pattern = [1, 0, 1, 1, 0, 1, 1, 1, 0, 1]
    seen = []

    async def testbench(ctx) -> None:
        for bit in pattern:
            ctx.set(taken, bit)
            await ctx.tick()
            seen.append(ctx.get(parity))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    markers = 0
    expected = []
    for bit in pattern:
        markers += bit
        expected.append((markers // timesteps) % 2)
    assert seen == expected


def test_strobes_are_summed_per_parity_and_in_all() -> None:
    m = Module()
    counts = [Signal(3, name=f"count{i}") for i in range(3)]
    parities = [Signal(name=f"parity{i}") for i in range(3)]
    strobes = list(zip(counts, parities, strict=True))
    pair = Signal(strobe_pair(6))
    single = Signal(stat_shape(6, streaming=False))
    even, odd = strobes_by_parity(strobes)
    m.d.comb += [*drive_stat(pair, strobes, streaming=True), *drive_stat(single, strobes, streaming=False)]
    probes = {"even": even, "odd": odd, "pair0": pair[0], "pair1": pair[1], "single": single}
    cases = [
        [*zip(counts, values, strict=True), *zip(parities, tags, strict=True)]
        for values, tags in (([2, 1, 3], [0, 1, 0]), ([2, 2, 2], [1, 1, 1]), ([0, 0, 0], [0, 1, 0]))
    ]
    got = settle(m, probes, cases)
    assert got == [
        {"even": 5, "odd": 1, "pair0": 5, "pair1": 1, "single": 6},
        {"even": 0, "odd": 6, "pair0": 0, "pair1": 6, "single": 6},
        {"even": 0, "odd": 0, "pair0": 0, "pair1": 0, "single": 0},
    ]


def test_stat_shape_is_one_count_or_a_pair() -> None:
    assert stat_shape(6, streaming=False) == unsigned(3)
    assert stat_shape(6, streaming=True) == strobe_pair(6)
    assert strobe_pair(8).length == 2 and strobe_pair(8).elem_shape == unsigned(4)


def test_reductions_of_single_bit_signals() -> None:
    m = Module()
    bits = [Signal(name=f"bit{i}") for i in range(3)]
    probes = {"any": any_of(bits), "all": all_of(bits), "sum": add_strobes(bits)}
    cases = [list(zip(bits, values, strict=True)) for values in ([0, 0, 0], [1, 0, 1], [1, 1, 1])]
    got = settle(m, probes, cases)
    assert got == [
        {"any": 0, "all": 0, "sum": 0},
        {"any": 1, "all": 0, "sum": 2},
        {"any": 1, "all": 1, "sum": 3},
    ]
