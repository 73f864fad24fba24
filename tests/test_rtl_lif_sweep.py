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
from esl_hw.neuron_kinds import neuron_kind
from esl_hw.rtl_gen.lif_sweep import (
    FORWARD_SLOTS,
    SWEEP_STAGES,
    LeakFireLane,
    SweepControl,
    last_group_lanes,
    sweep_stages,
)
from esl_hw.rtl_gen.plan import plan_model
from esl_hw.rtl_gen.spikes import mask_layout


def lif_plan(rng, n_out: int, lanes: int, timesteps: int = 3, kind: str = "lif", **params):
    """The plan of a random hidden layer (``kind``) of ``n_out`` neurons on ``lanes`` lanes."""
    layer = random_layer(rng, 6, n_out, 0.6, kind, w_bits=int(rng.integers(2, 9)), **params)
    output = layer_from_dense(np.ones((n_out, 1), dtype=np.int64), "output", 2)
    return plan_model(Model((layer, output), timesteps=timesteps), lanes)[0]


def simulate(dut, bench) -> None:
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def leaked(value: int, shift: int | None) -> int:
    return value if shift is None else value - (value >> shift)


def clamp(value: int, bits: int) -> int:
    low, high = signed_range(bits)
    return min(max(value, low), high)


def lane_model(plan, potential: int, synaptic: int, current: int, bias: int) -> dict[str, int]:
    """Python model of one neuron's sweep: the reference's step of the layer's kind
    (:mod:`esl_hw.neuron_kinds`, the oracle) on ``I = current + bias``, and ``u`` beside it."""
    layer = plan.layer
    kind = neuron_kind(layer.kind)
    if plan.is_cuba:
        state = (np.array([[synaptic]]), np.array([[potential]]))
        synaptic = clamp(leaked(synaptic, layer.syn_shift) + current + bias, layer.v_bits)
        total = leaked(potential, layer.leak_shift) + synaptic
    else:
        state = np.array([[potential]])
        total = leaked(potential, layer.leak_shift) + current + bias
    fired, state = kind.step(state, np.array([[current + bias]], dtype=np.int64), layer)
    updated = clamp(total, layer.v_bits)
    assert (total >= layer.threshold) == (updated >= layer.threshold) == bool(fired[0, 0])
    result = {"spike": int(fired[0, 0]), "updated": updated, "after": int(kind.potential(state)[0, 0])}
    if plan.is_cuba:
        result["synaptic_updated"] = int(state[0][0, 0])
        assert result["synaptic_updated"] == synaptic
    return result


#: (kind, lanes, n_out, v_bits, leak shift, synaptic shift, bias, reset)
LANE_CASES = [
    ("lif", 1, 5, 8, None, None, False, "zero"),
    ("lif", 1, 7, 4, 1, None, False, "zero"),
    ("lif", 2, 5, 6, 2, None, False, "zero"),
    ("lif", 4, 10, 12, 3, None, False, "zero"),
    ("lif", 8, 17, 9, 1, None, False, "zero"),
    ("lif", 16, 20, 5, None, None, False, "zero"),
    ("lif", 2, 7, 7, 2, None, True, "zero"),
    ("lif", 1, 6, 6, None, None, False, "subtract"),
    ("lif", 4, 9, 10, 3, None, True, "subtract"),
    ("cubalif", 1, 5, 8, 2, 1, False, "zero"),
    ("cubalif", 2, 7, 6, None, None, True, "zero"),
    ("cubalif", 4, 10, 9, 1, 3, True, "subtract"),
    ("cubalif", 8, 13, 5, 3, None, False, "subtract"),
]


def random_lane_word(rng, plan, v_near: int) -> dict[str, int]:
    """One neuron's words at the read ports: near the threshold (small currents) or anywhere
    in the ranges (both clamps), a random bank and group."""
    v_low, v_high = signed_range(plan.layer.v_bits)
    c_low, c_high = signed_range(plan.acc_bits)
    b_low, b_high = signed_range(plan.bias_bits) if plan.has_bias else (0, 0)
    if rng.random() < 0.5:  # near the threshold
        potential = min(v_high, int(rng.integers(v_near - 4, v_near + 4)))
        synaptic = int(rng.integers(-3, 4))
        bias = int(rng.integers(max(b_low, -2), min(b_high, 2) + 1))
        even, odd = (int(c) for c in rng.integers(max(c_low, -3), min(c_high, 3) + 1, 2))
    else:
        potential, synaptic = (int(x) for x in rng.integers(v_low, v_high + 1, 2))
        bias = int(rng.integers(b_low, b_high + 1))
        even, odd = (int(c) for c in rng.integers(c_low, c_high + 1, 2))
    group = int(rng.integers(0, plan.groups))
    bank = int(rng.random() < 0.5)
    return {
        "potential": potential,
        "synaptic": synaptic,
        "bias": bias,
        "even": even,
        "odd": odd,
        "bank": bank,
        "group": group,
    }


@pytest.mark.parametrize(
    ("kind", "lanes", "n_out", "v_bits", "leak_shift", "syn_shift", "bias", "reset"), LANE_CASES
)
def test_leak_fire_lane_matches_the_reference_step(
    kind, lanes, n_out, v_bits, leak_shift, syn_shift, bias, reset
):
    """Every lane, random potentials, synaptic currents, currents and biases over their whole
    ranges (both clamps) and near the threshold, the bank switched at random, and in lanes without
    a neuron in the last group, that group gated off: spikes, ``u``, the potential after the
    reset and ``c'`` equal the reference's step of the kind."""
    rng = np.random.default_rng(lanes * 100 + n_out + v_bits)
    _, v_high = signed_range(v_bits)
    threshold = int(rng.integers(1, leaked(v_high, leak_shift) + 1))  # reachable from v alone
    params = {"v_bits": v_bits, "threshold": threshold, "leak_shift": leak_shift, "reset": reset}
    if kind == "cubalif":
        params["syn_shift"] = syn_shift
    if bias:
        params["bias"] = rng.integers(-(1 << v_bits), 1 << v_bits, n_out)
    plan = lif_plan(rng, n_out, lanes, kind=kind, **params)
    assert (plan.has_bias, plan.is_cuba, plan.subtract_reset) == (
        bias,
        kind == "cubalif",
        reset == "subtract",
    )
    latency = len(sweep_stages(plan)) - 1  # from the words at the ports (B) to E
    # Near the threshold: the potential whose leaked value is the threshold.
    leak = 0 if leak_shift is None else 1 << leak_shift
    v_near = threshold if leak_shift is None else -(-threshold * leak // (leak - 1))
    assert (lanes > 1) == (last_group_lanes(plan) < lanes)
    for lane in range(lanes):
        fire = LeakFireLane(plan, lane)
        inputs: list[dict[str, int]] = []
        checked = {"spikes": 0, "gated": 0, "quiet": 0}

        async def bench(ctx, fire=fire, inputs=inputs, checked=checked, lane=lane) -> None:
            for cycle in range(400):
                word = random_lane_word(rng, plan, v_near)
                inputs.append(word)
                ctx.set(fire.potential, word["potential"])
                ctx.set(fire.current_even, word["even"])
                ctx.set(fire.current_odd, word["odd"])
                if bias:
                    ctx.set(fire.bias, word["bias"])
                if kind == "cubalif":
                    ctx.set(fire.synaptic, word["synaptic"])
                if cycle >= 1:  # the bank of the words registered in R
                    ctx.set(fire.odd, inputs[cycle - 1]["bank"])
                if cycle >= latency - 1:  # the group of the words in the stage before E
                    ctx.set(fire.d_idx, inputs[cycle - latency + 1]["group"])
                if cycle >= latency:
                    old = inputs[cycle - latency]
                    current = old["odd"] if old["bank"] else old["even"]
                    want = lane_model(plan, old["potential"], old["synaptic"], current, old["bias"])
                    here = lane < last_group_lanes(plan) or old["group"] != plan.groups - 1
                    spike = want.pop("spike")
                    if not here:  # gated off: never written nor shown
                        want.pop("after")
                    assert {name: ctx.get(getattr(fire, name)) for name in want} == want
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
    stages: int = len(SWEEP_STAGES)
    sweeping: int = 0
    addr: int = 0
    room: int = 1
    step: int = 0
    read_bank: int = 0
    next_bank: int = 0
    release: int = 0
    own: list = field(default_factory=lambda: [0, 0])
    valid: list = field(default_factory=list)
    idx: list = field(default_factory=list)
    bank: list = field(default_factory=list)
    last: list = field(default_factory=list)
    written: list = field(default_factory=list)  # (valid, group) of stage E one and two cycles ago

    def __post_init__(self) -> None:
        self.valid, self.idx, self.bank, self.last = ([0] * self.stages for _ in range(4))
        self.written = [(0, 0)] * (FORWARD_SLOTS - 1)

    def hazard(self) -> bool:
        """A group in flight that a sweep starting now would read more than two cycles before it
        is written back (group ``g`` in stage ``s``: written ``S − s`` cycles later, read ``g + 1``
        cycles later), or at all before it is written if it is of the sweep two before (its
        current bank is the one to be read, and cleared currents are not forwarded)."""
        for s in range(1, self.stages):
            if self.valid[s - 1]:
                same_bank = self.bank[s - 1] == self.next_bank
                if self.idx[s - 1] + s < self.stages - (0 if same_bank else FORWARD_SLOTS):
                    return True
        return False

    def forward(self) -> int:
        """One-hot: stage R's group was written in stage E now, one or two cycles ago (the latest);
        only layers with fewer groups than stages forward."""
        if self.groups >= self.stages or not self.valid[1]:
            return 0
        writes = [(self.valid[-1], self.idx[-1]), *self.written]
        for age, (valid, group) in enumerate(writes):
            if valid and group == self.idx[1]:
                return 1 << age
        return 0

    def outputs(self, spikes: int) -> dict[str, int]:
        issue = int(bool(self.sweeping and self.room))
        a_last = int(self.addr == self.groups - 1)
        tail = self.stages - 5
        bank_free = issue & a_last if tail == 0 else self.valid[tail - 1] & self.last[tail - 1]
        e_valid, e_last = self.valid[-1], self.last[-1]
        return {
            "release": self.release,
            "bank_free": bank_free,
            "own": self.own[0] | self.own[1] << 1,
            "read_bank": self.read_bank,
            "write_bank": self.bank[-1],
            "odd": self.bank[1],
            "issue": issue,
            "addr": self.addr,
            "d_idx": self.idx[-2],
            "e_valid": e_valid,
            "e_idx": self.idx[-1],
            "step": self.step,
            "last_step": int(self.step == self.timesteps - 1),
            "mask_push": int(bool(e_valid and (spikes != 0 or e_last))),
            "forward": self.forward(),
        }

    def tick(self, lanes_done: int, spikes: int, level: int) -> None:
        issue = self.outputs(spikes)["issue"]
        a_last = int(self.addr == self.groups - 1)
        e_last = self.valid[-1] and self.last[-1]
        e_bank = self.bank[-1]
        start = lanes_done and not self.sweeping and not self.release and not self.hazard()
        self.room = int(level + sum(self.valid) + issue < self.depth - 1)
        self.written = [(self.valid[-1], self.idx[-1]), *self.written[:-1]]
        self.valid = [issue, *self.valid[:-1]]
        self.idx = [self.addr & ((1 << self.local_bits) - 1), *self.idx[:-1]]
        self.bank = [self.read_bank, *self.bank[:-1]]
        self.last = [a_last, *self.last[:-1]]
        if issue:
            self.addr += 1
            self.sweeping = int(not a_last)
        if e_last:
            self.step = 0 if self.step == self.timesteps - 1 else self.step + 1
        self.release = int(bool(start))
        for bank in range(2):
            if start and self.next_bank == bank:
                self.own[bank] = 1
            elif e_last and e_bank == bank:
                self.own[bank] = 0
        if start:
            self.sweeping, self.addr, self.read_bank, self.next_bank = (
                1,
                0,
                self.next_bank,
                1 - self.next_bank,
            )


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
    ]
    return m, sweep, masks


@dataclass
class LanesModel:
    """The lanes as the sweep sees them: a lane takes its next marker once the bank of that
    step is free (``ahead`` cleared by ``bank_free``), is done a random number of cycles later
    (``delay``, 0 for back-to-back steps), and its done flag falls with ``release``."""

    rng: np.random.Generator
    busy: int = 12
    ahead: int = 0
    done: int = 0
    countdown: int = -1

    def tick(self, release: int, bank_free: int) -> None:
        if self.countdown == 0:
            self.done, self.countdown = 1, -1
        elif self.countdown > 0:
            self.countdown -= 1
        if not self.ahead:
            self.ahead, self.countdown = 1, int(self.rng.integers(0, self.busy)) if self.busy else 0
        if release:
            self.done = 0
        if bank_free:
            self.ahead = 0


@pytest.mark.parametrize(
    ("lanes", "n_out", "timesteps", "depth", "pop", "kind", "busy"),
    [
        (1, 5, 3, None, 0.9, "lif", 12),
        (1, 9, 2, 2, 0.3, "lif", 12),
        (2, 7, 4, 3, 0.5, "lif", 12),
        (4, 13, 1, None, 0.2, "lif", 12),
        (8, 8, 3, 4, 0.7, "lif", 12),
        (1, 6, 3, 2, 0.4, "cubalif", 12),
        (4, 11, 2, None, 0.6, "cubalif", 12),
        (1, 1, 2, None, 1.0, "lif", 0),
        (1, 2, 3, None, 1.0, "lif", 0),
        (2, 7, 2, None, 1.0, "lif", 0),
        (1, 1, 3, None, 1.0, "cubalif", 0),
        (1, 1, 2, 2, 0.5, "lif", 0),
        (1, 3, 3, None, 1.0, "lif", 0),
        (2, 9, 2, None, 1.0, "lif", 0),
        (1, 2, 3, None, 1.0, "cubalif", 0),
        (4, 40, 2, None, 1.0, "cubalif", 0),
    ],
)
def test_sweep_control_sequences_the_steps_without_losing_a_spike_mask(
    lanes, n_out, timesteps, depth, pop, kind, busy
):
    """The lanes finish their steps after random delays (or back to back), the FIFO is popped at
    random: every output equals the cycle model's, every sweep reads each group once in order,
    a group of the sweep before still in flight only if it is written back at most two cycles
    later (and then takes that write, ``forward``), each step pushes exactly its spiking
    groups' masks with the end of the step on its last group, no mask word is offered to a full
    FIFO, and the sweeps take the banks in turn."""
    rng = np.random.default_rng(lanes * 10 + n_out)
    plan = lif_plan(rng, n_out, lanes, timesteps, kind, v_bits=8, threshold=5)
    whole_step = depth is None
    depth = plan.mask_fifo_depth(depth)
    dut, sweep, masks = sweep_with_fifo(plan, depth)
    model = SweepModel(plan.groups, timesteps, depth, plan.local_bits, stages=len(sweep_stages(plan)))
    assert model.stages == (6 if kind == "cubalif" else 5)
    lanes_model = LanesModel(rng, busy)
    # Per sweep, the lanes' spikes of each group (about 40 % of the groups silent); the first
    # ``sweeps`` are checked word by word, later ones (the sweeps run ahead of the pops) are not.
    sweeps = 40
    tables = [
        rng.integers(0, 1 << lanes, plan.groups) * (rng.random(plan.groups) < 0.6) for _ in range(sweeps)
    ]
    expected = []
    for table in tables:
        expected += [(g, int(m), 0) for g, m in enumerate(table[:-1]) if m] + [
            (plan.groups - 1, int(table[-1]), 1)
        ]
    popped, reads, steps, banks = [], [], [], []
    forwarded, forwards = [], []  # cycles in which a read of a group in flight is in stage R; forward set
    cycles = [0]

    async def bench(ctx) -> None:
        started, in_flight = 0, []
        while len(popped) < len(expected):
            e_valid, e_idx = ctx.get(sweep.e_valid), ctx.get(sweep.e_idx)
            while len(tables) < started:
                tables.append(rng.integers(0, 1 << lanes, plan.groups))
            # Outside stage E the lanes' spike outputs are garbage.
            spikes = int(tables[in_flight[-1] - 1][e_idx]) if e_valid else int(rng.integers(0, 1 << lanes))
            ctx.set(sweep.lanes_done, lanes_model.done)
            ctx.set(sweep.spikes, spikes)
            r_en = int(rng.random() < pop)
            ctx.set(masks.r_en, r_en)
            level, ready = ctx.get(masks.level), ctx.get(masks.w_rdy)
            got = {name: ctx.get(getattr(sweep, name)) for name in model.outputs(spikes)}
            assert got == model.outputs(spikes)
            word = sweep.mask_word
            assert ctx.get(word.group) == e_idx and ctx.get(word.mask) == spikes
            assert ctx.get(word.eos) == model.last[-1]
            if got["mask_push"]:
                assert ready, "a spike mask offered to a full FIFO"
            if got["release"]:  # the sweep started the cycle before
                started += 1
                banks.append((got["read_bank"], got["own"] >> got["read_bank"] & 1))
            if got["issue"]:
                flight = zip(model.valid, model.idx, model.bank, strict=True)
                for s, (valid, group, bank) in enumerate(flight, 1):
                    if valid and group == got["addr"]:  # in flight in stage s (E included)
                        assert model.stages - s < FORWARD_SLOTS, "a group read too long before its write-back"
                        assert bank != got["read_bank"], "a current bank read before its clear"
                        forwarded.append(cycles[0] + 2)  # the cycle the read is in stage R
                reads.append((started, got["addr"]))
            if got["forward"]:
                forwards.append(cycles[0])
            if got["mask_push"] and e_valid and model.last[-1]:
                steps.append(got["step"])
            # Which sweep each stage's group belongs to (for the spike tables).
            in_flight = ([started] if got["issue"] else []) + in_flight[
                : len(in_flight) - (1 if e_valid else 0)
            ]
            if r_en and ctx.get(masks.r_rdy):
                value = ctx.get(masks.r_data)
                group = value & ((1 << plan.local_bits) - 1)
                mask = value >> plan.local_bits & ((1 << lanes) - 1)
                popped.append((group, mask, value >> (plan.local_bits + lanes)))
            model.tick(lanes_model.done, spikes, level)
            lanes_model.tick(got["release"], got["bank_free"])
            await ctx.tick()
            cycles[0] += 1

    simulate(dut, bench)
    # Every read of a group still in flight takes the write forwarded, and only those; with back
    # to back steps a layer of fewer groups than stages relies on it.
    assert forwards == [at for at in forwarded if at < cycles[0]]
    if plan.groups >= model.stages:
        assert not forwarded
    elif busy == 0 and whole_step and plan.groups <= 2:
        assert forwarded  # steps back to back: a sweep of one or two groups reads before the write-back
    assert popped == expected
    assert reads[: sweeps * plan.groups] == [(s, g) for s in range(1, sweeps + 1) for g in range(plan.groups)]
    assert steps == [s % timesteps for s in range(len(steps))] and len(steps) >= sweeps
    # Each sweep takes the bank just integrated, in turn.
    assert banks == [(s % 2, 1) for s in range(len(banks))]


def test_the_default_mask_fifo_covers_the_longest_sweep() -> None:
    """The default spike-mask FIFO depth (``rtl_gen/memories.py``) assumes the longest sweep has
    :data:`~esl_hw.rtl_gen.memories.MAX_SWEEP_STAGES` stages, and only layers of fewer groups than
    their sweep's stages forward."""
    from esl_hw.rtl_gen.lif_sweep import CUBA_SWEEP_STAGES, forwards
    from esl_hw.rtl_gen.memories import MAX_SWEEP_STAGES, whole_step_mask_depth

    assert max(len(SWEEP_STAGES), len(CUBA_SWEEP_STAGES)) == MAX_SWEEP_STAGES
    assert [whole_step_mask_depth(groups) for groups in (1, 6, 7, 40)] == [8, 8, 9, 42]
    rng = np.random.default_rng(5)
    for kind, stages in (("lif", 5), ("cubalif", 6)):
        for n_out in (1, stages - 1, stages, stages + 3):
            plan = lif_plan(rng, n_out, 1, kind=kind, v_bits=8, threshold=5)
            assert forwards(plan) == (n_out < stages)
