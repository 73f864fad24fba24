"""Spike serializer: masks to events at one per cycle, against its Python model."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from esl_hw.rtl_gen.spikes import SpikeSerializer, mask_layout, serialize_masks


def run_serializer(lanes: int, words: list[tuple[int, int, int]], gaps: bool, seed: int = 0):
    """Feed ``words``; return the accepted events and the cycles taken."""
    dut = SpikeSerializer(group_bits=4, lanes=lanes, index_bits=4 + lanes.bit_length())
    rng = np.random.default_rng(seed)
    events: list[tuple[int, int]] = []
    expected = len(serialize_masks(words, lanes))
    state = {"cycles": 0}

    async def testbench(ctx) -> None:
        position, cycle = 0, 0
        while len(events) < expected:
            send = position < len(words) and not (gaps and rng.random() < 0.3)
            ctx.set(dut.masks.valid, send)
            if send:
                group, mask, eos = words[position]
                ctx.set(dut.masks.payload, {"group": group, "mask": mask, "eos": eos})
            ready = not (gaps and rng.random() < 0.4)
            ctx.set(dut.spikes.ready, ready)
            if ready and ctx.get(dut.spikes.valid):
                events.append((ctx.get(dut.spikes.payload.index), ctx.get(dut.spikes.payload.eos)))
            if send and ctx.get(dut.masks.ready):
                position += 1
            await ctx.tick()
            cycle += 1
            assert cycle < 10000, "serializer hangs"
        state["cycles"] = cycle

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return events, state["cycles"]


def random_words(rng: np.random.Generator, lanes: int, count: int) -> list[tuple[int, int, int]]:
    words = []
    for _ in range(count):
        if rng.random() < 0.2:  # the end of a step, half of them with the last group's spikes
            mask = int(rng.integers(1, 1 << lanes)) if rng.random() < 0.5 else 0
            words.append((int(rng.integers(16)) if mask else 0, mask, 1))
        else:
            words.append((int(rng.integers(16)), int(rng.integers(1, 1 << lanes)), 0))
    return words


@pytest.mark.parametrize("lanes", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("gaps", [False, True])
def test_serializer_matches_model(lanes, gaps) -> None:
    rng = np.random.default_rng(lanes)
    words = random_words(rng, lanes, 40)
    events, _ = run_serializer(lanes, words, gaps, seed=lanes)
    assert events == serialize_masks(words, lanes)


def test_serializer_emits_one_event_per_cycle() -> None:
    words = [(3, 0b1011, 0), (0, 0, 1), (1, 0b1000, 0), (2, 0b1111, 0), (3, 0b0101, 1), (0, 0, 1)]
    events, cycles = run_serializer(4, words, gaps=False)
    assert events == [(12, 0), (13, 0), (15, 0), (0, 1), (7, 0), (8, 0), (9, 0), (10, 0), (11, 0)] + [
        (12, 0),
        (14, 0),
        (0, 1),
        (0, 1),
    ]
    assert cycles <= len(events) + 2


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="got 3"):
        SpikeSerializer(4, 3, 6)
    with pytest.raises(ValueError, match="group_bits=0"):
        mask_layout(0, 4)
