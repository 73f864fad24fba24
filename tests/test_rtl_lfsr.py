"""The LFSR block against esl_hw.rewiring.lfsr_step."""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from esl_hw.rewiring import DEFAULT_SEED, lfsr_step
from esl_hw.rtl_gen.lfsr import Lfsr


def test_lfsr_block_matches_the_reference_sequence() -> None:
    rng = np.random.default_rng(3)
    seeds = [DEFAULT_SEED, 1, 0xFFFFFFFF, 0x80000000, *(int(s) for s in rng.integers(1, 1 << 32, 4))]
    got: list[list[int]] = []

    async def bench(ctx) -> None:
        for seed in seeds:
            ctx.set(lfsr.seed, seed)
            ctx.set(lfsr.load, 1)
            await ctx.tick()
            ctx.set(lfsr.load, 0)
            states = [ctx.get(lfsr.state)]
            for cycle in range(40):
                stepping = cycle % 3 != 2  # hold the state every third cycle
                ctx.set(lfsr.step, stepping)
                following = ctx.get(lfsr.following)
                await ctx.tick()
                if stepping:
                    assert ctx.get(lfsr.state) == following
                    states.append(ctx.get(lfsr.state))
                else:
                    assert ctx.get(lfsr.state) == states[-1]
            ctx.set(lfsr.step, 0)
            got.append(states)

    lfsr = Lfsr()
    sim = Simulator(lfsr)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    for seed, states in zip(seeds, got, strict=True):
        expected = [seed]
        for _ in range(len(states) - 1):
            expected.append(lfsr_step(expected[-1]))
        assert states == expected
