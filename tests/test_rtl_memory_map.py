"""Memory map table, its Python model, and the host port of SNNCore in the Amaranth simulator."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from amaranth.sim import Simulator
from rtl_host import dump, host_read, host_write
from rtl_support import random_model

from esl_hw.encoding import spike_events
from esl_hw.reference import run
from esl_hw.rtl_gen import SNNCore
from esl_hw.rtl_gen.memory_map import (
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

    sim = Simulator(core)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return core, seen


@pytest.mark.parametrize("lanes", [1, 2, 4])
def test_host_port_reads_writes_and_the_core_runs_the_written_model(lanes) -> None:
    rng = np.random.default_rng(10 + lanes)
    model = random_model(rng, [8, 6, 5], density=0.6, timesteps=3, v_bits=8, threshold=6, w_bits=5)
    # Same connectivity, new weights: written through the host port into the synapse memories.
    new_layers = tuple(
        dataclasses.replace(layer, weight=rng.integers(-4 if layer.kind == "lif" else -16, 16, layer.nnz))
        for layer in model.layers
    )
    rewritten = dataclasses.replace(model, layers=new_layers)
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
