"""CSR integrate front end: the hit stream equals the CSR expansion, without bubbles."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator
from rtl_support import random_layer

from esl_hw.artifact import Model, layer_from_dense
from esl_hw.rtl_gen.integrate import MUX_FANIN, CsrIntegrator, event_layout
from esl_hw.rtl_gen.plan import plan_model


def integrator_for(layer, syn_block_words: int | None = None) -> CsrIntegrator:
    output = layer_from_dense(np.ones((layer.n_out, 1), dtype=np.int64), "output", 2)
    return CsrIntegrator(plan_model(Model((layer, output), timesteps=2))[0], syn_block_words=syn_block_words)


def run_integrator(front: CsrIntegrator, stream: list[tuple[int, int]], step_delay: int = 3):
    """Feed ``stream``; acknowledge each marker ``step_delay`` cycles after it is offered.

    Returns the hits and markers in order (``("hit", col, weight, cycle)`` / ``("eos", cycle)``)
    and the cycle of the first accepted event.
    """
    trace: list[tuple] = []
    first = []

    async def testbench(ctx) -> None:
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


@pytest.mark.parametrize("seed", range(6))
def test_hits_follow_csr_rows_and_markers(seed) -> None:
    rng = np.random.default_rng(seed)
    layer = random_layer(rng, 16, 11, [0.0, 0.2, 0.5, 1.0][seed % 4] or 0.05, w_bits=5, v_bits=8, threshold=9)
    steps = [sorted(rng.choice(16, rng.integers(0, 10), replace=False).tolist()) for _ in range(4)]
    stream = [(index, 0) for step in steps for index in [*step, -1]]
    stream = [(0, 1) if index < 0 else (index, 0) for index, _ in stream]
    trace, _ = run_integrator(integrator_for(layer), stream)
    got, hits = [], []
    for item in trace:
        if item[0] == "eos":
            got.append(hits)
            hits = []
        else:
            hits.append((item[1], item[2]))
    assert got == [expected_hits(layer, step) for step in steps]


def test_back_to_back_rows_stream_without_bubbles() -> None:
    rng = np.random.default_rng(1)
    mask = rng.random((20, 9)) < 0.5
    mask[:, 0] = True  # no empty row
    layer = layer_from_dense(rng.integers(-8, 8, (20, 9)) * mask, "lif", 5, v_bits=8, threshold=9, mask=mask)
    stream = [(index, 0) for index in range(20)] + [(0, 1)]
    trace, first = run_integrator(integrator_for(layer), stream)
    cycles = [item[3] for item in trace if item[0] == "hit"]
    assert len(cycles) == layer.nnz
    # Seven cycles from the first accepted event to the first hit (A, E, P, R, H, G, Q), then one
    # hit every cycle.
    assert cycles == list(range(first + 7, first + 7 + layer.nnz))


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
