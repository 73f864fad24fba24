"""CSR integrate front end: the hit stream equals the CSR expansion, without bubbles."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from amaranth.sim import Simulator
from rtl_support import random_layer

from esl_hw.artifact import Model, layer_from_dense
from esl_hw.rtl_gen.integrate import MUX_FANIN, SPRAM, SPRAM_WORDS, CsrIntegrator, event_layout
from esl_hw.rtl_gen.memory_map import ACCESS_LATENCY
from esl_hw.rtl_gen.plan import LayerPlan, plan_model


def plan_for(layer) -> LayerPlan:
    output = layer_from_dense(np.ones((layer.n_out, 1), dtype=np.int64), "output", 2)
    return plan_model(Model((layer, output), timesteps=2))[0]


def integrator_for(
    layer, syn_block_words: int | None = None, row_queue_depth: int | None = None
) -> CsrIntegrator:
    return CsrIntegrator(plan_for(layer), syn_block_words=syn_block_words, row_queue_depth=row_queue_depth)


def run_integrator(front: CsrIntegrator, stream: list[tuple[int, int]], step_delay: int = 3, before=None):
    """Feed ``stream``; acknowledge each marker ``step_delay`` cycles after it is offered.
    ``before`` (an async function of the testbench context) runs first.

    Returns the hits and markers in order (``("hit", col, weight, cycle)`` / ``("eos", cycle)``)
    and the cycle of the first accepted event.
    """
    trace: list[tuple] = []
    first = []

    async def testbench(ctx) -> None:
        if before is not None:
            await before(ctx)
        position, waited, cycle = 0, 0, 0
        markers = sum(eos for _, eos in stream)
        while sum(item[0] == "eos" for item in trace) < markers:
            send = position < len(stream)
            ctx.set(front.events.valid, send)
            if send:
                index, eos = stream[position]
                ctx.set(front.events.payload, {"index": index, "eos": eos})
            if ctx.get(front.hit_valid):
                trace.append(("hit", ctx.get(front.hit_col), ctx.get(front.hit_weight), cycle))
            acknowledge = False
            if ctx.get(front.step_valid):
                waited += 1
                acknowledge = waited > step_delay
            ctx.set(front.step_ready, acknowledge)
            if acknowledge:
                trace.append(("eos", cycle))
                waited = 0
            if send and ctx.get(front.events.ready):
                if not first:
                    first.append(cycle)
                position += 1
            await ctx.tick()
            cycle += 1
            if cycle > 10000:
                raise AssertionError("integrator hangs")

    sim = Simulator(front)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return trace, first[0]


def expected_hits(layer, indices) -> list[tuple[int, int]]:
    hits = []
    for index in indices:
        for position in range(layer.row_ptr[index], layer.row_ptr[index + 1]):
            hits.append((int(layer.col[position]), int(layer.weight[position])))
    return hits


@pytest.mark.parametrize("queue", [0, 1, 3, 8])
@pytest.mark.parametrize("seed", range(6))
def test_hits_follow_csr_rows_and_markers(seed, queue) -> None:
    rng = np.random.default_rng(seed)
    layer = random_layer(rng, 16, 11, [0.0, 0.2, 0.5, 1.0][seed % 4] or 0.05, w_bits=5, v_bits=8, threshold=9)
    steps = [sorted(rng.choice(16, rng.integers(0, 10), replace=False).tolist()) for _ in range(4)]
    stream = [(index, 0) for step in steps for index in [*step, -1]]
    stream = [(0, 1) if index < 0 else (index, 0) for index, _ in stream]
    trace, _ = run_integrator(integrator_for(layer, row_queue_depth=queue), stream)
    got, hits = [], []
    for item in trace:
        if item[0] == "eos":
            got.append(hits)
            hits = []
        else:
            hits.append((item[1], item[2]))
    assert got == [expected_hits(layer, step) for step in steps]


@pytest.mark.parametrize("queue", [0, 8])
def test_back_to_back_rows_stream_without_bubbles(queue) -> None:
    rng = np.random.default_rng(1)
    mask = rng.random((20, 9)) < 0.5
    mask[:, 0] = True  # no empty row
    layer = layer_from_dense(rng.integers(-8, 8, (20, 9)) * mask, "lif", 5, v_bits=8, threshold=9, mask=mask)
    stream = [(index, 0) for index in range(20)] + [(0, 1)]
    trace, first = run_integrator(integrator_for(layer, row_queue_depth=queue), stream)
    cycles = [item[3] for item in trace if item[0] == "hit"]
    assert len(cycles) == layer.nnz
    # Seven cycles from the first accepted event to the first hit (A, E, P, R, H, G, Q), then one
    # hit every cycle: the row queue adds no latency.
    assert cycles == list(range(first + 7, first + 7 + layer.nnz))


@pytest.mark.parametrize("depth", [-1, 1.5, True, "8"])
def test_integrator_rejects_a_bad_row_queue_depth(depth) -> None:
    layer = layer_from_dense(np.ones((3, 2), dtype=np.int64), "lif", 4, v_bits=8, threshold=9)
    with pytest.raises(ValueError, match="row_queue_depth must be an integer >= 0"):
        integrator_for(layer, row_queue_depth=depth)


def test_empty_rows_cost_at_most_one_cycle_each() -> None:
    dense = np.zeros((10, 4), dtype=np.int64)
    dense[0, :] = 1
    dense[9, :] = 2
    layer = layer_from_dense(dense, "lif", 4, v_bits=8, threshold=9)
    stream = [(index, 0) for index in range(10)] + [(0, 1)]
    trace, first = run_integrator(integrator_for(layer), stream, step_delay=0)
    hits = [item for item in trace if item[0] == "hit"]
    assert [(col, weight) for _, col, weight, _ in hits] == expected_hits(layer, range(10))
    assert hits[-1][3] - first <= 8 + 10 + 7


def run_in_band(front: CsrIntegrator, stream: list[tuple[int, int]]) -> tuple[list[tuple], list[int]]:
    """Feed ``stream`` with ``step_ready`` held high: markers are taken in band. Returns the hits
    ``(col, weight, bank, cycle)`` and the cycles the markers were taken."""
    hits: list[tuple] = []
    taken: list[int] = []

    async def testbench(ctx) -> None:
        position, cycle = 0, 0
        ctx.set(front.step_ready, 1)
        while len(taken) < sum(eos for _, eos in stream) or cycle < taken[-1] + 8:
            send = position < len(stream)
            ctx.set(front.events.valid, send)
            if send:
                index, eos = stream[position]
                ctx.set(front.events.payload, {"index": index, "eos": eos})
            if ctx.get(front.hit_valid):
                hit = (ctx.get(front.hit_col), ctx.get(front.hit_weight), ctx.get(front.hit_bank), cycle)
                hits.append(hit)
            if ctx.get(front.step_taken):
                taken.append(cycle)
            if send and ctx.get(front.events.ready):
                position += 1
            await ctx.tick()
            cycle += 1
            assert cycle < 10000, "integrator hangs"

    sim = Simulator(front)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return hits, taken


def steps_in_band(layer, steps: list[list[int]], queue: int) -> tuple[list[int], list[int]]:
    """Run ``steps`` (each its events, then a marker) through ``layer``'s integrator with a row
    queue of ``queue`` entries and markers taken in band; assert that the hits are each step's CSR
    expansion in bank ``k mod 2``. Returns the hits' cycles and the cycles the markers were taken."""
    stream = [item for step in steps for item in [*((index, 0) for index in step), (0, 1)]]
    hits, taken = run_in_band(integrator_for(layer, row_queue_depth=queue), stream)
    want = [
        (col, weight, number % 2)
        for number, step in enumerate(steps)
        for col, weight in expected_hits(layer, step)
    ]
    assert [hit[:3] for hit in hits] == want
    return [hit[3] for hit in hits], taken


@pytest.mark.parametrize("queue", [0, 8])
@pytest.mark.parametrize("seed", range(4))
def test_markers_are_taken_in_band_and_switch_the_bank(seed, queue) -> None:
    """With ``step_ready`` high a marker is taken right behind its step's last row, the hits of
    step ``k`` carry bank ``k mod 2``, in CSR order, and a row after a marker follows the row
    before it with one idle cycle (the marker's slot) at most."""
    rng = np.random.default_rng(seed)
    mask = rng.random((12, 7)) < 0.5
    mask[:, 0] = True  # no empty row
    layer = layer_from_dense(rng.integers(-8, 8, (12, 7)) * mask, "lif", 5, v_bits=8, threshold=9, mask=mask)
    steps = [sorted(rng.choice(12, rng.integers(1, 6), replace=False).tolist()) for _ in range(5)]
    cycles, taken = steps_in_band(layer, steps, queue)
    gaps = [after - before for before, after in zip(cycles, cycles[1:], strict=False)]
    assert max(gaps) <= 2 and sum(gap - 1 for gap in gaps) == len(steps) - 1
    assert len(taken) == len(steps) and taken == sorted(taken)


@pytest.mark.parametrize("queue", [0, 1, 2, 8])
def test_the_row_queue_lets_empty_rows_pass_a_streaming_row(queue) -> None:
    """Rows of 3, 1, 0 and 0 synapses, repeated: without a queue the row of 1 waits in stage P
    while the row of 3 streams, the two empty rows behind it only pass after, and the next row of
    3 starts two cycles late; with a queue the row of 1 waits in the queue, P drops the empty
    rows meanwhile, and the hits follow each other without a gap. The hits are the CSR expansion
    either way, and a marker after them still switches the bank."""
    dense = np.zeros((24, 5), dtype=np.int64)
    dense[::4, 1:4] = np.arange(1, 19).reshape(6, 3)
    dense[1::4, 0] = -np.arange(1, 7)
    layer = layer_from_dense(dense, "lif", 6, v_bits=8, threshold=9)
    cycles, taken = steps_in_band(layer, [list(range(24)), [3, 4, 5, 6]], queue)
    gaps = [after - before - 1 for before, after in zip(cycles[:24], cycles[1:24], strict=False)]
    assert gaps == ([0] * 23 if queue else [0, 0, 0, 2] * 5 + [0, 0, 0])
    assert len(taken) == 2 and taken[0] < cycles[24]


def test_event_layout_rejects_zero_width() -> None:
    with pytest.raises(ValueError, match="got 0"):
        event_layout(0)


@pytest.mark.parametrize("lanes", [2, 4])
def test_each_lane_streams_its_bank_of_every_row(lanes) -> None:
    rng = np.random.default_rng(lanes)
    layer = random_layer(rng, 14, 11, 0.6, w_bits=5, v_bits=8, threshold=9)
    output = layer_from_dense(np.ones((layer.n_out, 1), dtype=np.int64), "output", 2)
    plan = plan_model(Model((layer, output), timesteps=2), lanes)[0]
    indices = sorted(rng.choice(14, 9, replace=False).tolist())
    stream = [(index, 0) for index in indices] + [(0, 1)]
    for lane in range(lanes):
        trace, _ = run_integrator(CsrIntegrator(plan, lane), stream)
        hits = [(item[1], item[2]) for item in trace if item[0] == "hit"]
        want = [
            (col // lanes, weight) for col, weight in expected_hits(layer, indices) if col % lanes == lane
        ]
        assert hits == want


def test_integrator_rejects_a_bad_lane() -> None:
    layer = layer_from_dense(np.ones((2, 2), dtype=np.int64), "lif", 4, v_bits=8, threshold=3)
    output = layer_from_dense(np.ones((2, 1), dtype=np.int64), "output", 2)
    plan = plan_model(Model((layer, output), timesteps=2), 2)[0]
    with pytest.raises(ValueError, match="lane must be in 0..1, got 2"):
        CsrIntegrator(plan, 2)


@pytest.mark.parametrize("words", [2, 4, 8])
def test_synapse_memory_split_into_blocks_streams_the_same_hits(words) -> None:
    # 2-word blocks: more than MUX_FANIN blocks, so one registered multiplexer level more.
    rng = np.random.default_rng(words)
    mask = rng.random((12, 7)) < 0.6
    mask[:, 0] = True  # no empty row: back-to-back rows across block boundaries
    layer = layer_from_dense(rng.integers(-8, 8, (12, 7)) * mask, "lif", 5, v_bits=8, threshold=9, mask=mask)
    front = integrator_for(layer, syn_block_words=words)
    stream = [(index, 0) for index in range(12)] + [(0, 1)] + [(index, 0) for index in (11, 3, 0)] + [(0, 1)]
    trace, first = run_integrator(front, stream)
    hits = [item for item in trace if item[0] == "hit"]
    assert [(col, weight) for _, col, weight, _ in hits] == expected_hits(layer, [*range(12), 11, 3, 0])
    first_step = [cycle for _, _, _, cycle in hits[: layer.nnz]]
    latency = 7 + (-(-layer.nnz // words) > MUX_FANIN)
    assert first_step == list(range(first + latency, first + latency + layer.nnz))
    depths = synapse_block_depths(integrator_for(layer, syn_block_words=words))
    assert depths == [min(words, layer.nnz - start) for start in range(0, layer.nnz, words)]


def synapse_block_depths(front: CsrIntegrator) -> list[int]:
    """Depths of the synapse memory blocks ``syn_mem``, ``syn_mem1``, … (elaborated for inspection)."""
    front._MustUse__silence = True
    module = front.elaborate(None)
    module._MustUse__silence = True
    submodules = {name: entry[0] for name, entry in module._named_submodules.items()}
    for submodule in submodules.values():
        submodule._MustUse__silence = True
    count = sum(name.startswith("syn_mem") for name in submodules)
    return [submodules["syn_mem" + (str(block) if block else "")].depth for block in range(count)]


@pytest.mark.parametrize("words", [0, 3, True])
def test_integrator_rejects_a_bad_block_size(words) -> None:
    layer = layer_from_dense(np.ones((2, 2), dtype=np.int64), "lif", 4, v_bits=8, threshold=3)
    with pytest.raises(ValueError, match="power of two"):
        integrator_for(layer, syn_block_words=words)


async def access_read(ctx, port, addresses: list[int]) -> list[int]:
    """Read ``addresses`` through an access port, one per cycle; each word must arrive exactly
    ``ACCESS_LATENCY`` cycles after its read."""
    words = []
    for tick in range(len(addresses) + ACCESS_LATENCY):
        issue = tick < len(addresses)
        ctx.set(port.r_en, issue)
        if issue:
            ctx.set(port.addr, addresses[tick])
        if tick >= ACCESS_LATENCY:
            words.append(ctx.get(port.r_data))
        await ctx.tick()
    return words


async def access_write(ctx, port, words: list[int]) -> None:
    """Write ``words`` from address 0 through an access port, one per cycle."""
    ctx.set(port.w_en, 1)
    for addr, word in enumerate(words):
        ctx.set(port.addr, addr)
        ctx.set(port.w_data, word)
        await ctx.tick()
    ctx.set(port.w_en, 0)


def layer_and_rewritten(seed: int):
    """A 12-input layer and another one with as many synapses in other rows (rows 0 and 5
    empty) and other weights: what a host may write over the first one's memories."""
    rng = np.random.default_rng(seed)
    mask = rng.random((12, 7)) < 0.6
    layer = layer_from_dense(rng.integers(-8, 8, (12, 7)) * mask, "lif", 5, v_bits=8, threshold=9, mask=mask)
    other = np.zeros((12, 7), dtype=bool)
    free = [(row, col) for row in range(12) if row not in (0, 5) for col in range(7)]
    for pick in rng.choice(len(free), layer.nnz, replace=False):
        other[free[pick]] = True
    weights = rng.integers(-8, 8, (12, 7)) * other
    return layer, layer_from_dense(weights, "lif", 5, v_bits=8, threshold=9, mask=other)


@pytest.mark.parametrize("words", [2, 8, None])
def test_host_access_reaches_every_synapse_block_and_the_flagged_pointers(words) -> None:
    # 2-word blocks: more than MUX_FANIN blocks (a registered multiplexer level in the datapath).
    layer, written = layer_and_rewritten(7)
    front = integrator_for(layer, syn_block_words=words)
    plan, new_plan = front.plan, plan_for(written)
    seen = {}

    async def bench(ctx) -> None:
        seen["ptr"] = await access_read(ctx, front.ptr_access, list(range(plan.n_in + 1)))
        seen["syn"] = await access_read(ctx, front.syn_access, list(range(plan.syn_depth())))
        await access_write(ctx, front.ptr_access, new_plan.ptr_words())
        await access_write(ctx, front.syn_access, new_plan.syn_init())
        seen["ptr_after"] = await access_read(ctx, front.ptr_access, list(range(plan.n_in + 1)))
        seen["syn_after"] = await access_read(ctx, front.syn_access, list(range(plan.syn_depth()))[::-1])

    sim = Simulator(front)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen["ptr"] == plan.ptr_words() and seen["syn"] == plan.syn_init()
    assert seen["ptr_after"] == new_plan.ptr_words() and seen["syn_after"] == new_plan.syn_init()[::-1]
    assert any(word >> plan.ptr_bits for word in seen["ptr_after"])  # empty rows flagged


def spram_integrator(layer) -> CsrIntegrator:
    """The integrator of ``layer`` with its synapses in SPRAM: one 16384-word single-port block."""
    return CsrIntegrator(replace(plan_for(layer), synapse_memory="spram"))


def test_spram_synapses_are_one_huge_block_per_16384_words() -> None:
    layer, _ = layer_and_rewritten(8)
    front = spram_integrator(layer)
    assert front.syn_block_words == SPRAM_WORDS
    memories = [entry[0] for entry in front.elaborate(None)._named_submodules.values()]
    syn = [memory for memory in memories if memory.attrs.get("ram_style") == "huge"]
    assert len(syn) == 1 and syn[0].depth == layer.nnz and syn[0].attrs == SPRAM


@pytest.mark.parametrize("words", [2, 8, "spram"])
def test_rows_written_through_the_host_access_stream_as_written(words) -> None:
    # "spram": one block whose read and write share the address, as SPRAM's single port does.
    layer, written = layer_and_rewritten(8)
    front = spram_integrator(layer) if words == "spram" else integrator_for(layer, syn_block_words=words)
    new_plan = plan_for(written)
    stream = [*((index, 0) for index in range(12)), (0, 1), *((index, 0) for index in (5, 11, 0, 3)), (0, 1)]

    async def load(ctx) -> None:
        await access_write(ctx, front.ptr_access, new_plan.ptr_words())
        await access_write(ctx, front.syn_access, new_plan.syn_init())

    trace, _ = run_integrator(front, stream, before=load)
    hits = [(item[1], item[2]) for item in trace if item[0] == "hit"]
    assert hits == expected_hits(written, [*range(12), 5, 11, 0, 3])
