"""Amaranth-simulator helpers for the host memory port and rewire requests of SNNCore."""

from __future__ import annotations

from esl_hw.rtl_gen.memory_map import KINDS as HOST_KINDS
from esl_hw.rtl_gen.memory_map import READ_LATENCY


async def host_read(ctx, core, mem: int, addresses) -> list[int]:
    """Read ``mem`` at ``addresses`` through the host port, one access per cycle (core idle); each
    word arrives exactly ``READ_LATENCY`` cycles after its read."""
    addresses = list(addresses)
    words = []
    ctx.set(core.host_write, 0)
    ctx.set(core.host_mem, mem)
    for ticks in range(1, len(addresses) + READ_LATENCY):
        issue = ticks <= len(addresses)
        ctx.set(core.host_valid, issue)
        if issue:
            ctx.set(core.host_addr, addresses[ticks - 1])
            assert ctx.get(core.host_ready), "host access refused while the core is idle"
        await ctx.tick()
        if ctx.get(core.host_rvalid):
            words.append(ctx.get(core.host_rdata))
        assert len(words) == min(len(addresses), max(0, ticks - READ_LATENCY + 1)), "read latency"
    ctx.set(core.host_valid, 0)
    return words


async def host_write(ctx, core, mem: int, start: int, words: list[int]) -> None:
    """Write ``words`` to ``mem`` from address ``start`` through the host port (core idle)."""
    ctx.set(core.host_write, 1)
    ctx.set(core.host_mem, mem)
    for offset, word in enumerate(words):
        ctx.set(core.host_valid, 1)
        ctx.set(core.host_addr, start + offset)
        ctx.set(core.host_wdata, word)
        assert ctx.get(core.host_ready)
        await ctx.tick()
        assert not ctx.get(core.host_rvalid)
    ctx.set(core.host_valid, 0)
    ctx.set(core.host_write, 0)


async def dump(ctx, core, kinds=HOST_KINDS) -> dict[int, list[int]]:
    """Every word of the memories of ``kinds``, by id."""
    return {
        region.id: await host_read(ctx, core, region.id, range(region.depth))
        for region in core.regions
        if region.kind in kinds
    }


async def rewire(ctx, core, layer: int, k: int, seed: int, limit: int = 200_000) -> tuple[bool, int, int]:
    """Request a rewire of ``layer``; wait for ``rewire_done``; return ``(error, state, cycles)``."""
    ctx.set(core.rewire_layer, layer)
    ctx.set(core.rewire_k, k)
    ctx.set(core.rewire_seed, seed)
    ctx.set(core.rewire_start, 1)
    assert ctx.get(core.idle)
    await ctx.tick()
    ctx.set(core.rewire_start, 0)
    cycles = 1
    while not ctx.get(core.rewire_done):
        assert ctx.get(core.rewire_busy) and not ctx.get(core.idle)
        await ctx.tick()
        cycles += 1
        assert cycles < limit, "rewiring did not finish"
    error, state = bool(ctx.get(core.rewire_error)), ctx.get(core.rewire_state)
    await ctx.tick()
    assert ctx.get(core.idle)
    return error, state, cycles
