"""The rewiring unit's blocks, one by one, against small Python models (Amaranth simulator)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator
from rtl_support import random_model

from esl_hw.rtl_gen.memory_map import READ_LATENCY, region_id
from esl_hw.rtl_gen.plan import plan_model
from esl_hw.rtl_gen.rewire_passes import (
    HistogramPass,
    LayerTables,
    ReadsInFlight,
    RegrowPass,
    SelectionPass,
    ThresholdPass,
    rewire_widths,
)


def simulate(dut, bench) -> None:
    """Run the async testbench ``bench`` on ``dut`` (with a clock where it has registers)."""
    sim = Simulator(dut)
    sim.add_clock(1e-6, if_exists=True)
    sim.add_testbench(bench)
    sim.run()


def plans_for(seed: int, lanes: int):
    """The layer plans of a random three-layer model of mixed weight widths."""
    rng = np.random.default_rng(seed)
    sizes = [int(size) for size in rng.integers(1, 20, 4)]
    model = random_model(rng, sizes, density=float(rng.uniform(0.1, 0.9)), w_bits=int(rng.integers(2, 9)))
    return list(plan_model(model, lanes))


def with_histogram(block, magnitudes: int, count_bits: int, init):
    """``block`` with a histogram memory of ``init`` on its ``hist`` ports; returns (module, memory)."""
    m = Module()
    m.submodules.block = block
    m.submodules.hist = hist = Memory(shape=count_bits, depth=magnitudes, init=init)
    write, read = hist.write_port(), hist.read_port()
    m.d.comb += [
        read.addr.eq(block.hist.rd_addr),
        read.en.eq(block.hist.rd_en),
        block.hist.rd_data.eq(read.data),
        write.addr.eq(block.hist.wr_addr),
        write.data.eq(block.hist.wr_data),
        write.en.eq(block.hist.wr_en),
    ]
    return m, hist


def signed_field(word: int, low: int, bits: int) -> int:
    value = (word >> low) & ((1 << bits) - 1)
    return value - (1 << bits) if value >> (bits - 1) else value


@pytest.mark.parametrize(("seed", "lanes"), [(0, 1), (1, 2), (2, 4), (3, 8)])
def test_layer_tables_give_each_layers_numbers_and_decode_its_words(seed, lanes) -> None:
    plans = plans_for(seed, lanes)
    tables = LayerTables(plans)
    widths = tables.widths
    rng = np.random.default_rng(seed)
    cases = 0

    async def bench(ctx) -> None:
        nonlocal cases
        for plan in plans:
            for lane in range(lanes):
                for word in rng.integers(0, 1 << widths.data_bits, 12):
                    ctx.set(tables.layer, plan.index)
                    ctx.set(tables.lane, lane)
                    ctx.set(tables.word, int(word))
                    weight = signed_field(int(word), plan.local_bits, plan.w_bits)
                    assert ctx.get(tables.lane_nnz) == plan.lane_nnz(lane)
                    assert ctx.get(tables.n_in) == plan.n_in
                    assert ctx.get(tables.n_out) == plan.n_out
                    assert ctx.get(tables.group_mask) == (1 << plan.local_bits) - 1
                    assert ctx.get(tables.ptr_mask) == (1 << plan.ptr_bits) - 1
                    assert ctx.get(tables.ptr_id) == region_id(plans, plan.index, "ptr", lane)
                    assert ctx.get(tables.syn_id) == region_id(plans, plan.index, "syn", lane)
                    assert ctx.get(tables.group) == int(word) & ((1 << plan.local_bits) - 1)
                    assert ctx.get(tables.magnitude) == abs(weight)
                    cases += 1

    simulate(tables, bench)
    assert cases == len(plans) * lanes * 12


def test_reads_in_flight_deliver_each_read_after_the_read_latency() -> None:
    rng = np.random.default_rng(5)
    reads = ReadsInFlight()
    flight = [0] * READ_LATENCY  # issued, youngest first
    register = 0
    delivered = 0

    async def bench(ctx) -> None:
        nonlocal flight, register, delivered
        for _ in range(3000):
            clear = rng.random() < 0.02
            shift = not clear and rng.random() < 0.85
            issue = bool(rng.random() < 0.6)
            ctx.set(reads.shift, shift)
            ctx.set(reads.clear, clear)
            ctx.set(reads.issue, issue)
            assert ctx.get(reads.valid) == register
            assert ctx.get(reads.busy) == (register or any(flight))
            delivered += register
            if shift:
                register, flight = flight[-1], [int(issue), *flight[:-1]]
            if clear:
                register, flight = 0, [0] * READ_LATENCY
            await ctx.tick()

    simulate(reads, bench)
    assert delivered > 1000


def test_reads_in_flight_arrive_exactly_read_latency_plus_one_cycles_later() -> None:
    reads = ReadsInFlight()

    async def bench(ctx) -> None:
        ctx.set(reads.shift, 1)
        ctx.set(reads.issue, 1)
        await ctx.tick()
        ctx.set(reads.issue, 0)
        for _ in range(READ_LATENCY):
            assert not ctx.get(reads.valid) and ctx.get(reads.busy)
            await ctx.tick()
        assert ctx.get(reads.valid)
        await ctx.tick()
        assert not ctx.get(reads.valid) and not ctx.get(reads.busy)

    simulate(reads, bench)


@pytest.mark.parametrize(("w_max", "count_bits", "spread"), [(2, 8, 2), (4, 3, 3), (6, 10, 33), (8, 12, 129)])
def test_histogram_pass_counts_every_word_with_forwarding(w_max, count_bits, spread) -> None:
    """Back-to-back words of the same magnitude (spread: how many magnitudes occur), gaps, and
    counters that wrap (count_bits = 3)."""
    rng = np.random.default_rng(w_max)
    magnitudes = (1 << (w_max - 1)) + 1
    init = [int(value) for value in rng.integers(0, 1 << count_bits, magnitudes)]
    block = HistogramPass(magnitudes, count_bits, w_max)
    dut, hist = with_histogram(block, magnitudes, count_bits, init)
    counted = Counter()
    recent = [False] * 3

    async def bench(ctx) -> None:
        nonlocal recent
        for cycle in range(1500):
            enable = cycle < 1400 and rng.random() < 0.95
            valid = bool(rng.random() < 0.8)
            magnitude = int(rng.integers(0, min(spread, magnitudes)))
            ctx.set(block.enable, enable)
            ctx.set(block.word_valid, valid)
            ctx.set(block.word_mag, magnitude)
            assert ctx.get(block.busy) == any(recent)
            recent = [enable and valid, *recent[:-1]]
            if enable and valid:
                counted[magnitude] += 1
            await ctx.tick()
        assert not ctx.get(block.busy)
        expected = [(init[index] + counted[index]) % (1 << count_bits) for index in range(magnitudes)]
        assert [ctx.get(hist.data[index]) for index in range(magnitudes)] == expected

    simulate(dut, bench)
    assert max(counted.values()) > 1 << count_bits or count_bits > 3


def threshold_of(hist: list[int], k: int) -> tuple[int, int] | None:
    """The first magnitude ``m`` with ``count(|w| <= m) >= k`` and ``k - count(|w| < m)``."""
    below = 0
    for magnitude, count in enumerate(hist):
        if below + count >= k:
            return magnitude, k - below
        below += count
    return None


@pytest.mark.parametrize("w_max", [2, 3, 5, 8])
def test_threshold_pass_finds_the_magnitude_and_the_ties_and_clears(w_max) -> None:
    rng = np.random.default_rng(10 + w_max)
    magnitudes, count_bits = (1 << (w_max - 1)) + 1, 10
    block = ThresholdPass(magnitudes, count_bits, w_max)
    dut, hist = with_histogram(block, magnitudes, count_bits, [])
    cases = 0

    async def bench(ctx) -> None:
        nonlocal cases
        for _ in range(25):
            counts = [int(c) if rng.random() < 0.6 else 0 for c in rng.integers(0, 12, magnitudes)]
            for index, count in enumerate(counts):
                ctx.set(hist.data[index], count)
            total = sum(counts)
            k = int(rng.choice([0, 1, total, total + 1, int(rng.integers(0, total + 2))]))
            ctx.set(block.k, k)
            ctx.set(block.start, 1)
            await ctx.tick()
            ctx.set(block.start, 0)
            ctx.set(block.enable, 1)
            found, enabled = [], 0
            while not ctx.get(block.done):
                if ctx.get(block.found):
                    found.append((ctx.get(block.magnitude), ctx.get(block.quota)))
                await ctx.tick()
                enabled += 1
                assert enabled <= magnitudes + 2
            ctx.set(block.enable, 0)
            expected = threshold_of(counts, k)
            assert found == ([] if expected is None else [expected])
            assert enabled == magnitudes + 2
            assert [ctx.get(hist.data[index]) for index in range(magnitudes)] == [0] * magnitudes
            cases += 1

    simulate(dut, bench)
    assert cases == 25


def test_selection_pass_prunes_below_the_threshold_and_ties_while_the_quota_lasts() -> None:
    rng = np.random.default_rng(4)
    block = SelectionPass(count_bits=6, w_max=5)
    threshold = quota = 0
    pruned = 0

    async def bench(ctx) -> None:
        nonlocal threshold, quota, pruned
        for cycle in range(4000):
            load = cycle % 200 == 0
            judge = not load and rng.random() < 0.7
            magnitude = int(rng.integers(max(0, threshold - 2), min(16, threshold + 3)))
            ctx.set(block.load, load)
            ctx.set(block.load_threshold, int(rng.integers(0, 17)) if load else 31)
            ctx.set(block.load_quota, int(rng.integers(0, 6)) if load else 63)
            ctx.set(block.judge, judge)
            ctx.set(block.magnitude, magnitude)
            prune = magnitude < threshold or (magnitude == threshold and quota > 0)
            assert (ctx.get(block.threshold), ctx.get(block.quota)) == (threshold, quota)
            assert ctx.get(block.prune) == prune
            if load:
                threshold, quota = ctx.get(block.load_threshold), ctx.get(block.load_quota)
            elif judge and prune:
                pruned += 1
                quota -= magnitude == threshold
            await ctx.tick()

    simulate(block, bench)
    assert pruned > 500


def taken_groups(groups, mags, start, end, pos, threshold, quota) -> set[int]:
    """Groups of the row's words that stay (``q < pos``, or ``q > pos`` and kept under the rule
    with the quota left after ``pos``)."""
    taken = set()
    for q in range(start, end):
        if q < pos:
            taken.add(groups[q])
        elif q > pos:
            tie = mags[q] == threshold and quota > 0
            quota -= tie
            if not (mags[q] < threshold or tie):
                taken.add(groups[q])
    return taken


@pytest.mark.parametrize("lanes", [1, 2, 4])
def test_regrow_pass_accepts_neurons_and_finds_taken_groups(lanes) -> None:
    rng = np.random.default_rng(lanes)
    widths = rewire_widths(plans_for(7, lanes))
    block = RegrowPass(widths)
    outcomes = Counter()

    async def draw(ctx, lane: int, n_out: int, group_mask: int) -> int | None:
        """One draw; the candidate group when accepted."""
        random = int(rng.integers(0, 1 << widths.group_bits))
        ctx.set(block.draw, 1)
        ctx.set(block.random, random)
        ctx.set(block.group_mask, group_mask)
        ctx.set(block.n_out, n_out)
        ctx.set(block.lane, lane)
        group = random & group_mask
        accept = group * lanes + lane < n_out
        assert ctx.get(block.accept) == accept
        await ctx.tick()
        ctx.set(block.draw, 0)
        if accept:
            assert ctx.get(block.candidate) == group and not ctx.get(block.conflict)
        return group if accept else None

    async def check(ctx, groups, mags, start, end) -> tuple[bool, list[int]]:
        """The row check, the test answering each read ``READ_LATENCY + 1`` cycles later."""
        answers, addresses = {}, []
        ctx.set(block.check, 1)
        cycle = 0
        while ctx.get(block.issue) or any(when >= cycle for when in answers):
            word = answers.pop(cycle, None)  # words come back in order; between them, noise
            ctx.set(block.word_valid, word is not None)
            ctx.set(block.word_group, groups[word] if word is not None else int(rng.integers(0, 4)))
            ctx.set(block.word_mag, mags[word] if word is not None else int(rng.integers(0, 4)))
            if ctx.get(block.issue):
                addresses.append(ctx.get(block.addr))
                answers[cycle + READ_LATENCY + 1] = addresses[-1]
            await ctx.tick()
            cycle += 1
        ctx.set(block.check, 0)
        ctx.set(block.word_valid, 0)
        return bool(ctx.get(block.conflict)), addresses

    async def bench(ctx) -> None:
        size = 1 << widths.pos_bits
        for _ in range(200):
            # The row and the rule after judging ``pos``, as the unit holds them from the draw on.
            start = int(rng.integers(0, size - 1))
            end = int(rng.integers(start + 1, min(size - 1, start + 8) + 1))
            pos = int(rng.integers(start, end))
            threshold, quota = int(rng.integers(0, 4)), int(rng.integers(0, 3))
            for name, value in [("row_start", start), ("row_end", end), ("pos", pos)]:
                ctx.set(getattr(block, name), value)
            ctx.set(block.threshold, threshold)
            ctx.set(block.quota, quota)
            n_out = int(rng.integers(1, (1 << widths.group_bits) * lanes + 1))
            group_mask = (1 << int(rng.integers(0, widths.group_bits + 1))) - 1
            group = await draw(ctx, int(rng.integers(0, lanes)), n_out, group_mask)
            outcomes["accepted" if group is not None else "rejected"] += 1
            if group is None:
                continue
            ctx.set(block.quota, int(rng.integers(0, 3)))  # taken at the draw: later changes do not count
            groups = [int(g) for g in rng.integers(0, 4, size)]
            mags = [int(mag) for mag in rng.integers(0, 4, size)]
            conflict, addresses = await check(ctx, groups, mags, start, end)
            assert addresses == list(range(start, end))
            assert conflict == (group in taken_groups(groups, mags, start, end, pos, threshold, quota))
            outcomes["conflict" if conflict else "free"] += 1

    simulate(block, bench)
    assert min(outcomes.values()) > 5, outcomes


def test_blocks_refuse_bad_widths_and_plans() -> None:
    with pytest.raises(ValueError, match="count_bits must be a positive integer, got True"):
        HistogramPass(5, True, 3)
    with pytest.raises(ValueError, match=r"magnitudes must be a positive integer, got 2\.5"):
        ThresholdPass(2.5, 4, 3)
    with pytest.raises(ValueError, match="w_max must be a positive integer, got -1"):
        SelectionPass(4, -1)
    with pytest.raises(TypeError, match=r"plans must be a non-empty list of LayerPlan, got \[\]"):
        LayerTables([])
