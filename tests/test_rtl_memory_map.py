"""Memory map table, its Python model, and the host port of SNNCore in the Amaranth simulator."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from amaranth.sim import Simulator
from rtl_host import dump, host_read, host_write
from rtl_support import random_model

from esl_hw.encoding import spike_events
from esl_hw.neuron_kinds import neuron_kind
from esl_hw.reference import run
from esl_hw.rtl_gen import SNNCore
from esl_hw.rtl_gen.memory_map import (
    BUS_STAGES,
    READ_LATENCY,
    bus_shape,
    decode_pointer,
    decode_synapse,
    expected_read,
    memory_images,
    memory_map,
    region_id,
)
from esl_hw.rtl_gen.plan import plan_model, split_lanes


def test_memory_map_lists_every_memory_in_id_order() -> None:
    model = random_model(np.random.default_rng(1), [7, 5, 6, 3], density=0.5, w_bits=5)
    lanes = 2
    plans = plan_model(model, lanes)
    regions = memory_map(plans)
    assert [region.id for region in regions] == list(range(3 * 3 * lanes))
    expected = []
    for plan in plans:
        state = ("pot", plan.layer.v_bits) if plan.is_lif else ("acc", plan.acc_bits)
        expected += [(plan.index, "ptr", b, plan.n_in + 1, plan.ptr_bits + 1) for b in range(lanes)]
        expected += [(plan.index, "syn", b, max(1, plan.lane_nnz(b)), plan.syn_bits) for b in range(lanes)]
        expected += [(plan.index, state[0], b, plan.groups, state[1]) for b in range(lanes)]
    assert [(r.layer, r.kind, r.lane, r.depth, r.width) for r in regions] == expected
    assert region_id(plans, 1, "syn", 1) == 9
    assert region_id(plans, 2, "acc", 0) == 16
    with pytest.raises(KeyError, match="'pot' of lane 0 in layer 2"):
        region_id(plans, 2, "pot", 0)
    shape = bus_shape(regions)
    assert shape.id_bits == 5
    assert shape.data_bits == max(r.width for r in regions)
    assert 1 << shape.addr_bits >= max(r.depth for r in regions) > 1 << (shape.addr_bits - 1)


@pytest.mark.parametrize("lanes", [1, 2, 4])
def test_python_model_holds_the_artifact_in_storage_order(lanes) -> None:
    model = random_model(np.random.default_rng(lanes), [9, 7, 5], density=0.6, w_bits=6)
    plans = plan_model(model, lanes)
    images = memory_images(model, lanes)
    for plan in plans:
        row_ptr, col, weight = split_lanes(plan.layer, lanes)
        for lane in range(lanes):
            words = images[region_id(plans, plan.index, "ptr", lane)]
            pointers = [decode_pointer(plan, word) for word in words]
            starts = row_ptr[lane].tolist()
            empty = [start == end for start, end in zip(starts, starts[1:], strict=False)] + [False]
            assert pointers == list(zip(starts, empty, strict=True))
            words = images[region_id(plans, plan.index, "syn", lane)]
            decoded = [decode_synapse(plan, word) for word in words[: len(col[lane])]]
            pairs = zip(col[lane].tolist(), weight[lane].tolist(), strict=True)
            assert decoded == [(column // lanes, value) for column, value in pairs]
    assert expected_read(images, 0, 1) == images[0][1]
    assert expected_read(images, len(images), 0) == 0
    assert expected_read(images, 0, len(images[0])) == 0


def run_host_session(model, lanes: int, writes: dict[int, list[int]], samples: list[list[list[int]]]):
    """Dump every memory, read off the map, write ``writes`` (id -> words from address 0), dump
    again, then run ``samples`` (per sample, per step the input indices); return what it saw."""
    core = SNNCore(model, lanes=lanes)
    seen: dict = {"outputs": [], "busy_refused": True}

    async def bench(ctx) -> None:
        seen["before"] = await dump(ctx, core)
        seen["off_map"] = await host_read(ctx, core, len(core.regions), [0]) + await host_read(
            ctx, core, 0, [model.layers[0].n_in + 1]
        )
        for mem, words in writes.items():
            await host_write(ctx, core, mem, 0, words)
        seen["after"] = await dump(ctx, core)
        for sample in samples:
            stream = [item for step in sample for item in [*((i, 0) for i in step), (0, 1)]]
            position, outputs = 0, []
            ctx.set(core.outputs.ready, 1)
            finished = False
            while not finished:
                if position > 0:  # mid-inference the host port waits (and holds no event off)
                    ctx.set(core.host_valid, 1)
                    seen["busy_refused"] &= not ctx.get(core.host_ready)
                ctx.set(core.events.valid, position < len(stream))
                if position < len(stream):
                    index, eos = stream[position]
                    ctx.set(core.events.payload, {"index": index, "eos": eos})
                    position += bool(ctx.get(core.events.ready))
                if ctx.get(core.outputs.valid):
                    outputs.append(ctx.get(core.outputs.payload.value))
                finished = bool(ctx.get(core.done))
                await ctx.tick()
            ctx.set(core.host_valid, 0)
            ctx.set(core.events.valid, 0)
            await ctx.tick()
            seen["outputs"].append(outputs)
        seen["end"] = await dump(ctx, core)

    sim = Simulator(core)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return core, seen


def with_new_weights(model, rng: np.random.Generator):
    """``model`` with the same connectivity and new random weights (what the host port writes)."""
    layers = tuple(
        dataclasses.replace(layer, weight=rng.integers(-4 if layer.kind == "lif" else -16, 16, layer.nnz))
        for layer in model.layers
    )
    return dataclasses.replace(model, layers=layers)


@pytest.mark.parametrize("lanes", [1, 2, 4])
def test_host_port_reads_writes_and_the_core_runs_the_written_model(lanes) -> None:
    rng = np.random.default_rng(10 + lanes)
    model = random_model(rng, [8, 6, 5], density=0.6, timesteps=3, v_bits=8, threshold=6, w_bits=5)
    # Same connectivity, new weights: written through the host port into the synapse memories.
    rewritten = with_new_weights(model, rng)
    plans = plan_model(model, lanes)
    new_images = memory_images(rewritten, lanes)
    regions = memory_map(plans)
    writes = {r.id: new_images[r.id] for r in regions if r.kind == "syn"}
    pot = next(r for r in regions if r.kind == "pot")
    writes[pot.id] = [int(value) for value in rng.integers(0, 1 << pot.width, pot.depth)]
    spikes = rng.random((model.timesteps, 2, 8)) < 0.5
    samples = [spike_events(spikes[:, sample]) for sample in range(2)]
    _, seen = run_host_session(model, lanes, writes, [])
    images = memory_images(model, lanes)
    assert seen["before"] == {mem: images[mem] for mem in seen["before"]}
    assert seen["off_map"] == [0, 0]
    expected_after = {mem: writes.get(mem, images[mem]) for mem in seen["after"]}
    assert seen["after"] == expected_after
    del writes[pot.id]  # a written potential would be the next inference's initial state
    _, seen = run_host_session(model, lanes, writes, samples)
    reference = run(rewritten, spikes)
    assert seen["outputs"] == [reference.outputs[sample].tolist() for sample in range(2)]
    assert reference.outputs.any() and (reference.outputs != run(model, spikes).outputs).any()
    assert seen["busy_refused"]


@pytest.mark.parametrize("lanes", [1, 2])
def test_host_port_reaches_the_synaptic_currents_of_a_cubalif_layer(lanes) -> None:
    """A cubalif layer with a bias: its ``isyn`` memories are mapped after the potentials, read
    0 while idle, are written and read back; a written ``c`` (and ``v``) is the next inference's
    initial state (checked on a silent inference: the biases drive the neurons), and every state
    memory is 0 again after it."""
    rng = np.random.default_rng(30 + lanes)
    model = random_model(rng, [5, 6, 3], density=0.6, timesteps=1, v_bits=8, threshold=20, w_bits=5)
    hidden = dataclasses.replace(model.layers[0], kind="cubalif", syn_shift=1, bias=rng.integers(-3, 4, 6))
    output = dataclasses.replace(model.layers[1], bias=rng.integers(-5, 6, 3))
    model = dataclasses.replace(model, layers=(hidden, output))
    plans = plan_model(model, lanes)
    regions = memory_map(plans)
    assert [r.kind for r in regions] == [
        k for k in ("ptr", "syn", "pot", "isyn", "ptr", "syn", "acc") for _ in range(lanes)
    ]
    synaptic = [
        [int(c) for c in rng.integers(-128, 128, region.depth)] for region in regions if region.kind == "isyn"
    ]
    potential = [
        [int(v) for v in rng.integers(-30, 30, region.depth)] for region in regions if region.kind == "pot"
    ]
    writes = {}
    for kind, values in (("isyn", synaptic), ("pot", potential)):
        for lane, words in enumerate(values):
            writes[region_id(plans, 0, kind, lane)] = [w & 0xFF for w in words]
    _, seen = run_host_session(model, lanes, writes, [[[]]])
    images = memory_images(model, lanes)
    assert seen["before"] == {mem: images[mem] for mem in seen["before"]}
    assert seen["after"] == {mem: writes.get(mem, images[mem]) for mem in seen["after"]}
    assert seen["end"] == seen["before"]
    # The silent inference from the written state, by the reference's step of the kind.
    c0 = np.array([synaptic[i % lanes][i // lanes] for i in range(6)])[None]
    v0 = np.array([potential[i % lanes][i // lanes] for i in range(6)])[None]
    fired, _ = neuron_kind("cubalif").step((c0, v0), hidden.bias[None], hidden)
    expected = fired[0].astype(np.int64) @ output.dense_weight() + output.bias
    assert fired.any() and seen["outputs"] == [expected.tolist()]


async def host_accesses(ctx, core, accesses: list[tuple[bool, int, int, int]]) -> list[int]:
    """Drive ``(write, mem, addr, data)`` accesses one per cycle, no gap (core idle); return the
    read words, each asserted to arrive exactly ``READ_LATENCY`` cycles after its read."""
    reads, words = [], []
    for tick in range(len(accesses) + READ_LATENCY):
        ctx.set(core.host_valid, tick < len(accesses))
        if tick < len(accesses):
            write, mem, addr, data = accesses[tick]
            ctx.set(core.host_write, write)
            ctx.set(core.host_mem, mem)
            ctx.set(core.host_addr, addr)
            ctx.set(core.host_wdata, data)
            assert ctx.get(core.host_ready)
            if not write:
                reads.append(tick)
        await ctx.tick()
        if ctx.get(core.host_rvalid):
            assert reads and reads.pop(0) == tick + 1 - READ_LATENCY, "read latency"
            words.append(ctx.get(core.host_rdata))
    assert not reads
    return words


@pytest.mark.parametrize("lanes", [1, 2])
def test_host_write_then_read_back_to_back_and_events_wait_for_the_bus(lanes) -> None:
    """Each word written and read back in the next cycle (the read sees the write), one memory's
    reads back to back; the first event waits until the last write has reached its memory
    (``BUS_STAGES`` cycles), and the inference runs the written weights."""
    rng = np.random.default_rng(30 + lanes)
    model = random_model(rng, [8, 6, 5], density=0.6, timesteps=3, v_bits=8, threshold=6, w_bits=5)
    rewritten = with_new_weights(model, rng)
    new_images = memory_images(rewritten, lanes)
    syn = [region for region in memory_map(plan_model(model, lanes)) if region.kind == "syn"]
    spikes = rng.random((model.timesteps, 1, 8)) < 0.5
    stream = [item for step in spike_events(spikes[:, 0]) for item in [*((i, 0) for i in step), (0, 1)]]
    core = SNNCore(model, lanes=lanes)
    seen: dict = {"read_back": {}, "outputs": []}

    async def bench(ctx) -> None:
        for region in syn:
            words = new_images[region.id]
            pairs = [[(True, region.id, a, w), (False, region.id, a, 0)] for a, w in enumerate(words)]
            seen["read_back"][region.id] = await host_accesses(ctx, core, [x for pair in pairs for x in pair])
        reads = [(False, region.id, a, 0) for region in syn for a in range(region.depth)]
        seen["dump"] = await host_accesses(ctx, core, reads)
        last = syn[-1]
        await host_accesses(ctx, core, [(True, last.id, 0, new_images[last.id][0])])  # the last write
        ctx.set(core.host_valid, 0)
        # host_accesses ticked READ_LATENCY cycles after the write: write again, then an event.
        ctx.set(core.host_valid, 1)
        ctx.set(core.host_write, 1)
        await ctx.tick()
        ctx.set(core.host_valid, 0)
        ctx.set(core.outputs.ready, 1)
        position, held, finished = 0, 0, False
        while not finished:
            ctx.set(core.events.valid, position < len(stream))
            if position < len(stream):
                index, eos = stream[position]
                ctx.set(core.events.payload, {"index": index, "eos": eos})
                accepted = bool(ctx.get(core.events.ready))
                held += position == 0 and not accepted
                position += accepted
            if ctx.get(core.outputs.valid):
                seen["outputs"].append(ctx.get(core.outputs.payload.value))
            finished = bool(ctx.get(core.done))
            await ctx.tick()
        seen["held"] = held

    sim = Simulator(core)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    for region in syn:
        assert seen["read_back"][region.id] == new_images[region.id]
    assert seen["dump"] == [word for region in syn for word in new_images[region.id]]
    assert seen["held"] == BUS_STAGES
    assert seen["outputs"] == run(rewritten, spikes).outputs[0].tolist()
