"""The LIF sweep's blocks against small Python models (Amaranth simulator)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib import fifo
from amaranth.sim import Simulator
from rtl_support import random_layer

from esl_hw.artifact import Model, layer_from_dense, signed_range
from esl_hw.errors import EslError
from esl_hw.rtl_gen.lif_sweep import SWEEP_STAGES, LeakFireLane, SweepControl, last_group_lanes
from esl_hw.rtl_gen.plan import plan_model
from esl_hw.rtl_gen.spikes import mask_layout


def lif_plan(rng, n_out: int, lanes: int, timesteps: int = 3, **params):
    """The plan of a random LIF layer of ``n_out`` neurons on ``lanes`` lanes."""
    layer = random_layer(rng, 6, n_out, 0.6, w_bits=int(rng.integers(2, 9)), **params)
    output = layer_from_dense(np.ones((n_out, 1), dtype=np.int64), "output", 2)
    return plan_model(Model((layer, output), timesteps=timesteps), lanes)[0]


def simulate(dut, bench) -> None:
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def leak_fire(v: int, current: int, leak_shift: int | None, v_bits: int, threshold: int) -> tuple[bool, int]:
    """Python model of one neuron's sweep: ``(spike, u)`` with ``u = clamp(v - (v >> k) + cur)``."""
    total = (v if leak_shift is None else v - (v >> leak_shift)) + current
    low, high = signed_range(v_bits)
    updated = min(max(total, low), high)
    assert (total >= threshold) == (updated >= threshold)  # 1 <= threshold <= high
    return updated >= threshold, updated


@pytest.mark.parametrize(
    ("lanes", "n_out", "v_bits", "leak_shift"),
    [(1, 5, 8, None), (1, 7, 4, 1), (2, 5, 6, 2), (4, 10, 12, 3), (8, 17, 9, 1), (16, 20, 5, None)],
)
def test_leak_fire_lane_matches_the_lif_equations(lanes, n_out, v_bits, leak_shift) -> None:
    """Every lane, random potentials and currents over their whole ranges (both clamps), the bank
    switched at random, and in lanes without a neuron in the last group, that group gated off."""
    rng = np.random.default_rng(lanes * 100 + n_out)
    v_low, v_high = signed_range(v_bits)
    leak = 0 if leak_shift is None else 1 << leak_shift

    def leaked(v: int) -> int:
        return v if leak_shift is None else v - (v >> leak_shift)

    threshold = int(rng.integers(1, leaked(v_high) + 1))  # reachable from v alone
    plan = lif_plan(rng, n_out, lanes, v_bits=v_bits, threshold=threshold, leak_shift=leak_shift)
    c_low, c_high = signed_range(plan.acc_bits)
    # Near the threshold: the potential whose leaked value is the threshold.
    v_near = threshold if leak_shift is None else -(-threshold * leak // (leak - 1))
    assert (lanes > 1) == (last_group_lanes(plan) < lanes)
    for lane in range(lanes):
        fire = LeakFireLane(plan, lane)
        inputs: list[tuple[int, int, int, int, int]] = []  # potential, even, odd, odd bank, d_idx
        checked = {"spikes": 0, "gated": 0, "quiet": 0}

        async def bench(ctx, fire=fire, inputs=inputs, checked=checked, lane=lane) -> None:
            for cycle in range(400):
                if rng.random() < 0.5:  # near the threshold
                    potential = min(v_high, int(rng.integers(v_near - 4, v_near + 4)))
                    even, odd = (int(c) for c in rng.integers(max(c_low, -3), min(c_high, 3) + 1, 2))
                else:  # anywhere: the clamps at both ends
                    potential = int(rng.integers(v_low, v_high + 1))
                    even, odd = (int(c) for c in rng.integers(c_low, c_high + 1, 2))
                group = int(rng.integers(0, plan.groups))
                inputs.append((potential, even, odd, int(rng.random() < 0.5), group))
                ctx.set(fire.potential, potential)
                ctx.set(fire.current_even, even)
                ctx.set(fire.current_odd, odd)
                if cycle >= 1:  # the bank of the words registered in R
                    ctx.set(fire.odd, inputs[cycle - 1][3])
                if cycle >= 3:  # the group of the words in D
                    ctx.set(fire.d_idx, inputs[cycle - 3][4])
                if cycle >= 4:
                    v, current_even, current_odd, bank, group = inputs[cycle - 4]
                    spike, updated = leak_fire(
                        v, current_odd if bank else current_even, leak_shift, v_bits, threshold
                    )
                    here = lane < last_group_lanes(plan) or group != plan.groups - 1
                    assert ctx.get(fire.updated) == updated
                    assert ctx.get(fire.here) == here
                    assert ctx.get(fire.spike) == (spike and here)
                    checked["spikes"] += spike and here
                    checked["gated"] += spike and not here
                    checked["quiet"] += not spike
                await ctx.tick()

        simulate(fire, bench)
        assert checked["spikes"] > 20 and checked["quiet"] > 20
        assert checked["gated"] > 0 or lane < last_group_lanes(plan)


def test_sweep_blocks_refuse_bad_lanes_depths_and_plans() -> None:
    plan = lif_plan(np.random.default_rng(0), 4, 2, v_bits=6, threshold=3)
    with pytest.raises(ValueError, match="lane must be in 0..1, got 2"):
        LeakFireLane(plan, 2)
    with pytest.raises(EslError, match="mask_depth must be an integer >= 2, got 1"):
        SweepControl(plan, 1)
    layer = layer_from_dense(np.ones((2, 2), dtype=np.int64), "lif", 4, v_bits=8, threshold=3)
    output_plan = plan_model(
        Model((layer, layer_from_dense(np.ones((2, 2), dtype=np.int64), "output", 4)), 2)
    )[1]
    with pytest.raises(ValueError, match="SweepControl needs the plan of a LIF layer"):
        SweepControl(output_plan, 4)
    with pytest.raises(ValueError, match="LeakFireLane needs the plan of a LIF layer"):
        LeakFireLane(output_plan, 0)


@dataclass
class SweepModel:
    """Cycle model of :class:`SweepControl` (its registers, then its outputs and next state)."""

    groups: int
    timesteps: int
    depth: int
    local_bits: int
    sweeping: int = 0
    marking: int = 0
    addr: int = 0
    more: int = 0
    room: int = 1
    step: int = 0
    int_bank: int = 0
    swept: list = field(default_factory=lambda: [0, 0])
    release: int = 0
    valid: list = field(default_factory=lambda: [0] * len(SWEEP_STAGES))
    idx: list = field(default_factory=lambda: [0] * len(SWEEP_STAGES))

    def outputs(self, spikes: int) -> dict[str, int]:
        marking, e_valid = self.marking, self.valid[-1]
        return {
            "release": self.release,
            "int_bank": self.int_bank,
            "swept": self.swept[0] | self.swept[1] << 1,
            "issue": int(self.sweeping and self.more and self.room),
            "addr": self.addr,
            "d_idx": self.idx[3],
            "e_valid": e_valid,
            "e_idx": self.idx[4],
            "step": self.step,
            "last_step": int(self.step == self.timesteps - 1),
            "mask_push": int((e_valid and spikes != 0) or marking),
        }

    def tick(self, lanes_done: int, spikes: int, level: int, ready: int) -> None:
        issue, last_step = self.outputs(spikes)["issue"], self.step == self.timesteps - 1
        sweeping, marking, release = self.sweeping, self.marking, self.release
        addr, more = self.addr, self.more
        in_flight = list(self.valid)
        self.room = int(level + sum(in_flight) + issue < self.depth - 1)
        self.valid = [issue, *in_flight[:-1]]
        self.idx = [addr & ((1 << self.local_bits) - 1), *self.idx[:-1]]
        if issue:
            self.addr, self.more = addr + 1, int(addr != self.groups - 1)
        if sweeping and not more and not any(in_flight):
            self.sweeping, self.marking, self.swept = 0, 1, [0, 0]
        start = int(lanes_done and not sweeping and not marking and not release)
        self.release = start
        if start:
            self.sweeping, self.addr, self.more = 1, 0, 1
            self.swept, self.int_bank = [1 - self.int_bank, self.int_bank], 1 - self.int_bank
        if marking and ready:
            self.marking, self.step = 0, 0 if last_step else self.step + 1


def sweep_with_fifo(plan, depth: int):
    """:class:`SweepControl` pushing into a spike-mask FIFO of ``depth`` words, as in the core."""
    m = Module()
    m.submodules.sweep = sweep = SweepControl(plan, depth)
    width = mask_layout(plan.local_bits, plan.lanes).size
    m.submodules.masks = masks = fifo.SyncFIFOBuffered(width=width, depth=depth)
    m.d.comb += [
        masks.w_data.eq(sweep.mask_word.as_value()),
        masks.w_en.eq(sweep.mask_push),
        sweep.mask_level.eq(masks.level),
        sweep.mask_ready.eq(masks.w_rdy),
    ]
    return m, sweep, masks


@pytest.mark.parametrize(
    ("lanes", "n_out", "timesteps", "depth", "pop"),
    [(1, 5, 3, None, 0.9), (1, 9, 2, 2, 0.3), (2, 7, 4, 3, 0.5), (4, 13, 1, None, 0.2), (8, 8, 3, 4, 0.7)],
)
def test_sweep_control_sequences_the_steps_without_losing_a_spike_mask(lanes, n_out, timesteps, depth, pop):
    """The lanes finish their steps after random delays, the FIFO is popped at random: every
    output equals the cycle model's, every sweep reads each group once in order, each step
    pushes exactly its spiking groups' masks then one end-of-step word, and no mask word is
    offered to a full FIFO."""
    rng = np.random.default_rng(lanes * 10 + n_out)
    plan = lif_plan(rng, n_out, lanes, timesteps, v_bits=8, threshold=5)
    depth = plan.mask_fifo_depth(depth)
    dut, sweep, masks = sweep_with_fifo(plan, depth)
    model = SweepModel(plan.groups, timesteps, depth, plan.local_bits)
    # Per sweep, the lanes' spikes of each group (about 40 % of the groups silent); the first
    # ``sweeps`` are checked word by word, later ones (the sweeps run ahead of the pops) are not.
    sweeps = 40
    tables = [
        rng.integers(0, 1 << lanes, plan.groups) * (rng.random(plan.groups) < 0.6) for _ in range(sweeps)
    ]
    expected = [
        word for table in tables for word in [*((g, int(m), 0) for g, m in enumerate(table) if m), "eos"]
    ]
    popped, reads, steps, banks = [], [], [], []

    async def bench(ctx) -> None:
        started, lanes_busy = 0, 3
        while len(popped) < len(expected):
            lanes_done = int(lanes_busy == 0)
            e_valid, e_idx = ctx.get(sweep.e_valid), ctx.get(sweep.e_idx)
            while len(tables) < started:
                tables.append(rng.integers(0, 1 << lanes, plan.groups))
            # Outside stage E the lanes' spike outputs are garbage.
            spikes = int(tables[started - 1][e_idx]) if e_valid else int(rng.integers(0, 1 << lanes))
            ctx.set(sweep.lanes_done, lanes_done)
            ctx.set(sweep.spikes, spikes)
            r_en = int(rng.random() < pop)
            ctx.set(masks.r_en, r_en)
            level, ready = ctx.get(masks.level), ctx.get(masks.w_rdy)
            got = {name: ctx.get(getattr(sweep, name)) for name in model.outputs(spikes)}
            assert got == model.outputs(spikes)
            word = sweep.mask_word
            assert ctx.get(word.group) == e_idx and ctx.get(word.mask) == spikes
            assert ctx.get(word.eos) == model.marking
            if e_valid and spikes:
                assert ready, "a spike mask offered to a full FIFO"
            if got["release"]:  # the sweep started the cycle before
                started += 1
                banks.append((got["int_bank"], got["swept"]))
                lanes_busy = 1 + int(rng.integers(0, 12))
            elif lanes_busy and not lanes_done:
                lanes_busy -= 1
            if got["issue"]:
                reads.append((started, got["addr"]))
            if got["mask_push"] and ready and model.marking:
                steps.append(got["step"])
            if r_en and ctx.get(masks.r_rdy):
                value = ctx.get(masks.r_data)
                group = value & ((1 << plan.local_bits) - 1)
                mask = value >> plan.local_bits & ((1 << lanes) - 1)
                popped.append("eos" if value >> (plan.local_bits + lanes) else (group, mask, 0))
            model.tick(lanes_done, spikes, level, ready)
            await ctx.tick()

    simulate(dut, bench)
    assert popped == expected
    assert reads[: sweeps * plan.groups] == [(s, g) for s in range(1, sweeps + 1) for g in range(plan.groups)]
    assert steps == [s % timesteps for s in range(len(steps))] and len(steps) >= sweeps
    # Each sweep takes the bank just integrated; the lanes move on to the other one.
    assert banks == [(s % 2, 1 << (1 - s % 2)) for s in range(1, len(banks) + 1)]
