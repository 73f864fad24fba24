"""The read-modify-write pipeline of a lane's state memory (esl_hw.rtl_gen.rmw)."""

import numpy as np
import pytest
from amaranth.sim import Simulator


@pytest.mark.parametrize("seed", range(3))
def test_read_modify_write_never_uses_a_read_that_collides_with_a_write(seed) -> None:
    """The memories carry ``no_rw_check`` (a read of the address written in the same cycle is
    undefined on the FPGA): here such a read returns garbage, and the sums must still be exact."""
    from types import SimpleNamespace

    from amaranth import Module, Mux, Signal, signed
    from amaranth.lib.memory import Memory

    from esl_hw.rtl_gen.integrate import NO_RW_CHECK
    from esl_hw.rtl_gen.rmw import read_modify_write

    words, acc_bits = 3, 16
    plan = SimpleNamespace(acc_bits=acc_bits, local_bits=2, w_bits=6)
    front = SimpleNamespace(
        hit_valid=Signal(), hit_col=Signal(2), hit_weight=Signal(signed(6)), hit_inference=Signal()
    )
    m = Module()
    m.submodules.mem = mem = Memory(shape=signed(acc_bits), depth=words, init=[], attrs=NO_RW_CHECK)
    read, write = mem.read_port(), mem.write_port()
    collided = Signal()
    m.d.sync += collided.eq(read.en & write.en & (read.addr == write.addr))
    rmw = read_modify_write(m, plan, front, Mux(collided, 0x5A5A, read.data), 0)
    m.d.comb += [
        read.addr.eq(rmw.read_addr),
        read.en.eq(rmw.read_en),
        write.addr.eq(rmw.write_addr),
        write.data.eq(rmw.write_data),
        write.en.eq(rmw.write_en),
    ]
    rng = np.random.default_rng(seed)
    hits = [
        (bool(rng.random() < 0.8), int(rng.integers(words)), int(rng.integers(-32, 32))) for _ in range(300)
    ]
    collisions = []

    async def testbench(ctx) -> None:
        for valid, col, weight in [*hits, *[(False, 0, 0)] * 4]:
            ctx.set(front.hit_valid, valid)
            ctx.set(front.hit_col, col)
            ctx.set(front.hit_weight, weight)
            await ctx.tick()
            collisions.append(ctx.get(collided))
        sums = [sum(w for v, c, w in hits if v and c == col) for col in range(words)]
        assert [ctx.get(mem.data[col]) for col in range(words)] == sums

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert sum(collisions) > 10  # the garbage was offered, and discarded
