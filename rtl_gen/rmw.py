"""Pipelined read-modify-write of a lane's state memory: ``mem[col] <- mem[col] + w`` per hit.

A lane's currents (:mod:`esl_hw.rtl_gen.lif`) and accumulators (:mod:`esl_hw.rtl_gen.output`)
take one synaptic hit per cycle from the lane's integrator
(:class:`~esl_hw.rtl_gen.integrate.CsrIntegrator`) without a stall: a read, the word registered,
the sum written two cycles later, and the sums still in flight forwarded to a later hit of the
same address (no read of an address written in the same cycle is ever used: the memories carry
``no_rw_check``).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Module, Mux, Signal, signed

from esl_hw.rtl_gen.plan import LayerPlan


@dataclass
class RmwPorts:
    """What :func:`read_modify_write` drives into a memory during the integrate phase, and whether
    an update is still in flight (``busy``: the memory must not be handed to another phase;
    ``busy_old``: an update of a step whose marker the integrator has taken). With two banks
    ``read_bank`` and ``write_bank`` name the bank of the read and of the write (else 0)."""

    read_addr: Signal
    read_en: Signal
    write_addr: Signal
    write_data: Signal
    write_en: Signal
    busy: Signal
    busy_old: object = 0
    read_bank: object = 0
    write_bank: object = 0
    write_inference: object = 0


def read_modify_write(m: Module, plan: LayerPlan, front, read_data, lane: int) -> RmwPorts:
    """Pipelined ``mem[col] <- mem[col] + w`` for ``front``'s hits, one per cycle, no stall.

    ::

        cycle h   : read mem[col]                     (hit presented by ``front``)
        cycle h+1 : the word at the read port         (stage 1)
        cycle h+2 : mem[col] <- x + w                 (stage 2; x registered from stage 1)

    The read of cycle ``h`` misses the writes of cycles ``h`` and ``h+1`` (the read port is not
    transparent), so stage 2 takes ``x`` from the sum written one cycle earlier (``s3``) or two
    cycles earlier (``s4``) when it went to the same ``col``, else from the memory: every
    block-RAM output goes straight into a register and the adder starts from flip-flops.
    ``read_data`` is the memory's read-port data (signed, ``plan.acc_bits`` wide), or a pair of
    read-port data ``(bank 0, bank 1)`` of two memories: each hit updates the bank of its step
    (``front.hit_bank``, carried through the stages), each word is registered on its own and
    the choice is made behind the registers, next to the adder; a sum is forwarded only to a hit
    of the same bank. The caller routes the returned ports to the memory of ``read_bank`` and
    ``write_bank``. ``write_inference`` is the parity of the written hit's inference
    (``front.hit_inference`` carried to stage 2), for the counters.
    """
    acc = signed(plan.acc_bits)
    s1_valid = Signal(name=f"rmw1_valid{lane}")
    s1_col = Signal(plan.local_bits, name=f"rmw1_col{lane}")
    s1_weight = Signal(signed(plan.w_bits), name=f"rmw1_weight{lane}")
    s2_valid = Signal(name=f"rmw2_valid{lane}")
    s2_col = Signal(plan.local_bits, name=f"rmw2_col{lane}")
    s2_weight = Signal(signed(plan.w_bits), name=f"rmw2_weight{lane}")
    banks = tuple(read_data) if isinstance(read_data, tuple | list) else (read_data,)
    if len(banks) not in (1, 2):
        raise ValueError(f"read_modify_write takes one or two read ports, got {len(banks)}")
    banked = len(banks) == 2
    s1_bank = Signal(name=f"rmw1_bank{lane}")
    s2_bank = Signal(name=f"rmw2_bank{lane}")
    s3_bank = Signal(name=f"rmw3_bank{lane}")
    s2_words = [Signal(acc, name=f"rmw2_data{lane}_{bank}", reset_less=True) for bank in range(len(banks))]
    s2_data = Mux(s2_bank, s2_words[1], s2_words[0]) if banked else s2_words[0]
    s2_from3 = Signal(name=f"rmw2_from3_{lane}")
    s2_from4 = Signal(name=f"rmw2_from4_{lane}")
    s3_valid = Signal(name=f"rmw3_valid{lane}")
    s3_col = Signal(plan.local_bits, name=f"rmw3_col{lane}")
    s3_sum = Signal(acc, name=f"rmw3_sum{lane}")
    s4_sum = Signal(acc, name=f"rmw4_sum{lane}")
    total = Signal(acc, name=f"rmw_sum{lane}")
    m.d.sync += [
        s1_valid.eq(front.hit_valid),
        s1_col.eq(front.hit_col),
        s1_weight.eq(front.hit_weight),
        s2_valid.eq(s1_valid),
        s2_col.eq(s1_col),
        s2_weight.eq(s1_weight),
        *(word.eq(data) for word, data in zip(s2_words, banks, strict=True)),
        s2_from3.eq(s2_valid & (s2_col == s1_col) & (s2_bank == s1_bank if banked else 1)),
        s2_from4.eq(s3_valid & (s3_col == s1_col) & (s3_bank == s1_bank if banked else 1)),
        s3_valid.eq(s2_valid),
        s3_col.eq(s2_col),
        s3_sum.eq(total),
        s4_sum.eq(s3_sum),
    ]
    m.d.comb += total.eq(Mux(s2_from3, s3_sum, Mux(s2_from4, s4_sum, s2_data)) + s2_weight)
    busy = Signal(name=f"rmw_busy{lane}")
    m.d.comb += busy.eq(s1_valid | s2_valid)
    s1_inf = Signal(name=f"rmw1_inf{lane}")
    s2_inf = Signal(name=f"rmw2_inf{lane}")
    m.d.sync += [s1_inf.eq(front.hit_inference), s2_inf.eq(s1_inf)]
    if not banked:
        return RmwPorts(front.hit_col, front.hit_valid, s2_col, total, s2_valid, busy, write_inference=s2_inf)
    m.d.sync += [s1_bank.eq(front.hit_bank), s2_bank.eq(s1_bank), s3_bank.eq(s2_bank)]
    busy_old = Signal(name=f"rmw_busy_old{lane}")
    m.d.comb += busy_old.eq((s1_valid & (s1_bank != front.bank)) | (s2_valid & (s2_bank != front.bank)))
    return RmwPorts(
        front.hit_col,
        front.hit_valid,
        s2_col,
        total,
        s2_valid,
        busy,
        busy_old,
        front.hit_bank,
        s2_bank,
        s2_inf,
    )
