"""The hidden layer core's sweep: its sequencer and one leak-and-fire datapath per lane.

:class:`~esl_hw.rtl_gen.lif.LifLayerCore` wires them to its memories: once every lane has written
the last update of a step, :class:`SweepControl` reads one group (``L`` neurons, one per lane) per
cycle and carries it through the stages; :class:`LeakFireLane` computes, per lane, with ``I =
cur + bias`` (``bias`` 0 without one)::

    lif:      u = clamp_vbits(v − (v >>> k) + I)           (v + I without leak)
    cubalif:  c = clamp_vbits(c − (c >>> ks) + I)          (c + I without synaptic decay)
              u = clamp_vbits(v − (v >>> k) + c)
    spike = u ≥ θ ;  v ← (0 or u − θ) where spike, else u

Sweep pipeline, one register stage each: A issues the reads of group ``addr``; B: the words at
the memories' read ports; R: registered next to the block RAMs; C: registered again next to the
datapath (the bias added to the current here); D: the total registered; for ``cubalif`` S: the
clamped ``c`` and the membrane total registered; E: spikes and updates registered, written back
and pushed into the spike-mask FIFO.

With fewer groups than stages (:func:`forwards`) a sweep may read a group that the sweep before
still has in flight, if that group's write-back (stage E) comes at most two cycles after the new
read (stage A): the new read's stage C then takes the written potential (and ``c``) from stage E
or from one of two registers that keep the last two writes (``forward``), not the stale word.
So a step of a one-group layer takes ``G + S − 3`` cycles, not ``S + 1``.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from esl_hw.artifact import signed_range
from esl_hw.errors import EslError
from esl_hw.rtl_gen.plan import LayerPlan, check_fifo_depth, unsigned_bits
from esl_hw.rtl_gen.spikes import mask_layout
from esl_hw.rtl_gen.strobes import any_of

#: Register stages of the sweep after stage A (the reads) of a ``lif`` layer: B, R, C, D, E.
SWEEP_STAGES = "brcde"

#: The same for a ``cubalif`` layer: S (the synaptic current clamped and added to the membrane)
#: between D and E.
CUBA_SWEEP_STAGES = "brcdse"


#: Writes a sweep's stage C can take a potential from instead of the word read: the one in stage E
#: in the cycle the new read is in stage R, and the two before it (registered).
FORWARD_SLOTS = 3


def forwards(plan: LayerPlan) -> bool:
    """Whether ``plan``'s sweep forwards written-back potentials to a read of the next sweep:
    only with fewer groups than stages can a sweep read a group still in flight."""
    return plan.groups < len(sweep_stages(plan))


def sweep_stages(plan: LayerPlan) -> str:
    """The register stages of ``plan``'s sweep after stage A (:data:`SWEEP_STAGES`, or
    :data:`CUBA_SWEEP_STAGES` for a ``cubalif`` layer)."""
    return CUBA_SWEEP_STAGES if plan.is_cuba else SWEEP_STAGES


def last_group_lanes(plan: LayerPlan) -> int:
    """Lanes holding a neuron in the last group (``n_out - (groups - 1)·L``); the others have
    none there."""
    return plan.layer.n_out - (plan.groups - 1) * plan.lanes


class SweepControl(wiring.Component):
    """The sweep's sequencer: when a step's sweep starts, which group and bank each stage holds,
    when a bank is given back to the lanes, the step counter and the spike-mask words.

    The lanes integrate step ``t`` into current bank ``t mod 2`` (each lane toggles its bank at
    every end-of-step marker it takes, :class:`~esl_hw.rtl_gen.integrate.CsrIntegrator`). A
    sweep starts once every lane has written its last update of the step (``lanes_done``), the
    sweep before has issued its last group, and no group of that sweep still in flight would be
    read again more than :data:`FORWARD_SLOTS` − 1 cycles before it is written back (group ``g`` in
    stage ``s`` of ``S``: a hazard when ``g + s < S − 3``; when ``g + s < S`` for a group of the
    sweep two before, whose current bank is read again and whose cleared currents are not
    forwarded; only possible with fewer than ``S`` groups). So sweeps follow each other back to
    back, each taking the bank just integrated (``own``), and the lanes' done flags are cleared
    by ``release``, a registered pulse one cycle after the start. Groups ``0 .. groups - 1`` are
    issued one per cycle while the spike-mask FIFO has room for every group in flight (``room``,
    registered: with X = FIFO level + groups in flight, X(t) <= X(t-1) + issue(t-1), so room(t) =
    [X(t-1) + issue(t-1) < depth - 1] implies X(t) < depth - 1), so nothing stalls after stage A.
    ``bank_free`` pulses when the sweep's last group is in stage ``S − 5`` (A for ``lif``, B for
    ``cubalif``): a lane that takes its next marker in the cycle after reads that bank five
    cycles later at the earliest (stages P to Q of the integrator), after the last group's write
    in stage E; ``own`` gives the bank's ports back in the cycle after that write. A group in
    stage E with a spike, and the sweep's last group in any case, pushes ``{group, mask, eos}``,
    ``eos`` set on the last group: the end of the step needs no word of its own (``step`` counts
    the steps of an inference at stage E, modulo ``T``).

    Parameters
    ----------
    plan : LayerPlan
        The hidden layer's plan (``groups``, ``local_bits``, lanes ``L``, steps ``T`` and the
        number of stages, :func:`sweep_stages`).
    mask_depth : int
        Depth of the spike-mask FIFO.

    Attributes
    ----------
    lanes_done : In(1)
        Every lane has written every update of the step to be swept.
    release : Out(1)
        The sweep started the cycle before: clears the lanes' done flags.
    bank_free : Out(1)
        The bank of the sweep may be integrated into again: the lanes may take their next marker.
    own : Out(2)
        Bit ``b``: the sweep owns current bank ``b`` (reads and clears it).
    read_bank : Out(1)
        The bank read in stage A.
    write_bank : Out(1)
        The bank of the group in stage E (cleared there).
    odd : Out(1)
        The bank of the group in stage R.
    issue : Out(1)
        Group ``addr`` is read this cycle (stage A).
    addr : Out(range(groups + 1))
        The group read (stage A).
    d_idx : Out(local_bits)
        The group in the stage before E (D; S for ``cubalif``).
    e_valid : Out(1)
        Stage E holds a group this cycle (its potentials and cleared currents are written).
    e_idx : Out(local_bits)
        The group in stage E.
    step : Out(range(T))
        The time step of the group in stage E.
    last_step : Out(1)
        ``step`` is the inference's last (the potentials are then cleared).
    read_inference : Out(1)
        Parity of the inference of the step read in stage A (toggles after each inference's
        ``T``-th sweep has started; for the counters).
    write_inference : Out(1)
        Parity of the inference of the group in stage E.
    spikes : In(L)
        Per lane, whether its neuron of stage E's group spiked.
    mask_level : In(range(mask_depth + 1))
        Words in the spike-mask FIFO.
    mask_word : Out(mask_layout(local_bits, L))
        The word to push: ``{group, mask, eos}``.
    mask_push : Out(1)
        Push ``mask_word`` this cycle.
    forward : Out(FORWARD_SLOTS)
        One-hot, in the cycle a group is in stage R: stage C takes that group's potential from
        the write in stage E now (bit 0), one cycle ago (bit 1) or two cycles ago (bit 2), the
        latest of them, instead of the word read (0 without :func:`forwards`).
    """

    def __init__(self, plan: LayerPlan, mask_depth: int) -> None:
        if not isinstance(plan, LayerPlan) or not plan.is_lif:
            self._MustUse__silence = True  # never elaborated: no unused-elaboratable warning
            raise ValueError(f"SweepControl needs the plan of a LIF layer (lif or cubalif), got {plan!r}")
        try:
            check_fifo_depth(mask_depth, "mask_depth")
        except EslError:
            self._MustUse__silence = True
            raise
        self.plan = plan
        self.mask_depth = mask_depth
        super().__init__(
            {
                "lanes_done": In(1),
                "release": Out(1),
                "bank_free": Out(1),
                "own": Out(2),
                "read_bank": Out(1),
                "write_bank": Out(1),
                "odd": Out(1),
                "issue": Out(1),
                "addr": Out(range(plan.groups + 1)),
                "d_idx": Out(plan.local_bits),
                "e_valid": Out(1),
                "e_idx": Out(plan.local_bits),
                "step": Out(unsigned_bits(plan.timesteps - 1)),
                "last_step": Out(1),
                "read_inference": Out(1),
                "write_inference": Out(1),
                "spikes": In(plan.lanes),
                "mask_level": In(range(mask_depth + 1)),
                "mask_word": Out(mask_layout(plan.local_bits, plan.lanes)),
                "mask_push": Out(1),
                "forward": Out(FORWARD_SLOTS),
            }
        )

    def elaborate(self, platform) -> Module:
        plan, groups = self.plan, self.plan.groups
        m = Module()
        stages = sweep_stages(plan)
        valid = {stage: Signal(name=f"{stage}_valid") for stage in stages}
        idx = {stage: Signal(plan.local_bits, name=f"{stage}_idx") for stage in stages}
        bank = {stage: Signal(name=f"{stage}_bank") for stage in stages}
        inference = {stage: Signal(name=f"{stage}_inference") for stage in stages}
        last = {stage: Signal(name=f"{stage}_last") for stage in stages}  # the sweep's last group
        sweeping = Signal()  # groups are left to issue
        room = Signal(init=1)
        a_last = Signal()
        issue = self.issue
        m.d.comb += [a_last.eq(self.addr == groups - 1), issue.eq(sweeping & room)]
        in_flight = sum(valid[stage] for stage in stages)
        m.d.sync += room.eq(self.mask_level + in_flight + issue < self.mask_depth - 1)
        first = stages[0]
        m.d.sync += [
            valid[first].eq(issue),
            idx[first].eq(self.addr),
            bank[first].eq(self.read_bank),
            inference[first].eq(self.read_inference),
            last[first].eq(a_last),
        ]
        for before, after in zip(stages, stages[1:], strict=False):
            m.d.sync += [
                valid[after].eq(valid[before]),
                idx[after].eq(idx[before]),
                bank[after].eq(bank[before]),
                inference[after].eq(inference[before]),
                last[after].eq(last[before]),
            ]
        with m.If(issue):
            m.d.sync += self.addr.eq(self.addr + 1)
            with m.If(a_last):
                m.d.sync += sweeping.eq(0)
        e_last = valid["e"] & last["e"]
        m.d.comb += [
            self.d_idx.eq(idx[stages[-2]]),
            self.e_valid.eq(valid["e"]),
            self.e_idx.eq(idx["e"]),
            self.write_bank.eq(bank["e"]),
            self.write_inference.eq(inference["e"]),
            self.odd.eq(bank["r"]),
            self.last_step.eq(self.step == plan.timesteps - 1),
            self.mask_word.group.eq(idx["e"]),
            self.mask_word.mask.eq(self.spikes),
            self.mask_word.eos.eq(last["e"]),
            self.mask_push.eq(valid["e"] & ((self.spikes != 0) | last["e"])),
        ]
        with m.If(e_last):
            m.d.sync += self.step.eq(Mux(self.last_step, 0, self.step + 1))
        tail = len(stages) - 5  # the stage of the last group when its bank is given back
        if tail == 0:
            m.d.comb += self.bank_free.eq(issue & a_last)
        else:
            m.d.comb += self.bank_free.eq(valid[stages[tail - 1]] & last[stages[tail - 1]])

        start = Signal()
        next_bank = Signal()
        next_inference = Signal()  # the inference of the next sweep to start
        steps_started = Signal(range(plan.timesteps), name="steps_started")
        hazard = self._hazard(stages, valid, idx, bank, next_bank)
        m.d.comb += start.eq(self.lanes_done & ~sweeping & ~self.release & ~hazard)
        if forwards(plan):
            self._forward(m, valid, idx)
        m.d.sync += self.release.eq(start)
        with m.If(start):
            m.d.sync += [
                sweeping.eq(1),
                self.addr.eq(0),
                self.read_bank.eq(next_bank),
                next_bank.eq(~next_bank),
                self.read_inference.eq(next_inference),
            ]
            if plan.timesteps == 1:
                m.d.sync += next_inference.eq(~next_inference)
            else:
                with m.If(steps_started == plan.timesteps - 1):
                    m.d.sync += [steps_started.eq(0), next_inference.eq(~next_inference)]
                with m.Else():
                    m.d.sync += steps_started.eq(steps_started + 1)
        for index in range(2):
            with m.If(start & (next_bank == index)):
                m.d.sync += self.own[index].eq(1)
            with m.Elif(e_last & (bank["e"] == index)):
                m.d.sync += self.own[index].eq(0)
        return m

    def _hazard(self, stages: str, valid: dict, idx: dict, bank: dict, next_bank: Signal):
        """A group of a sweep before, in flight, that a sweep starting now would read too early:
        group ``g`` in stage ``s`` (1 = B .. S = E) is written ``S − s`` cycles later and read
        again ``g + 1`` cycles later (or later, if the issue stalls), and stage C of that read
        takes writes up to two cycles after it (:meth:`_forward`). The currents the sweep two
        before cleared (its bank is ``next_bank``) are not forwarded. Never with ``S`` groups or
        more."""
        depth = len(stages)
        if self.plan.groups >= depth:
            return 0
        terms = []
        for s, stage in enumerate(stages[:-1], 1):
            forwarded = depth - FORWARD_SLOTS - s  # g below it: written too late
            if forwarded > 0:
                terms.append(valid[stage] & (idx[stage] < forwarded))
            terms.append(valid[stage] & (bank[stage] == next_bank) & (idx[stage] < depth - s))
        return any_of(terms)

    def _forward(self, m: Module, valid: dict, idx: dict) -> None:
        """``forward``: the group in stage R was written in stage E now, one or two cycles ago
        (the latest such write), so stage C takes that write, not the word read."""
        written = [(valid["e"], idx["e"])]
        for age in range(1, FORWARD_SLOTS):
            older = (Signal(name=f"w{age}_valid"), Signal(self.plan.local_bits, name=f"w{age}_idx"))
            m.d.sync += [older[0].eq(written[-1][0]), older[1].eq(written[-1][1])]
            written.append(older)
        hits = [valid["r"] & was_valid & (was_idx == idx["r"]) for was_valid, was_idx in written]
        latest = [hit & ~any_of(hits[:age]) if age else hit for age, hit in enumerate(hits)]
        m.d.comb += self.forward.eq(Cat(*latest))


class LeakFireLane(wiring.Component):
    """Leak and fire of one lane's neuron per cycle, from the words at the memories' read ports
    (stage B) to stage E::

        R: v, cur_even, cur_odd (and bias, c) registered (next to the block RAMs)
        C: v (c) and I = the swept bank's cur (+ bias) registered (bank 1 when ``odd``); with
           :func:`forwards`, v (c) the forwarded write instead when ``forward``
        D: lif:     total = v − (v >>> k) + I registered                    (no leak: v + I)
           cubalif: c_total = c − (c >>> ks) + I, v − (v >>> k) registered
        S: cubalif: c' = clamp_vbits(c_total), total = v − (v >>> k) + c' registered
        E: u = clamp_vbits(total), spike = total ≥ θ, c' registered; with ``reset: subtract``
           also the potential after the reset, ``u − θ`` where ``total ≥ θ`` (``max − θ`` when
           ``total > max``), else ``u``

    ``total ≥ θ`` equals ``u ≥ θ`` because ``1 ≤ θ ≤ max``. In a lane without a neuron in the
    last group (:func:`last_group_lanes`) ``spike`` and ``here`` are 0 for that group. The bias
    and ``c`` ports exist only when the layer has them, the ``forward`` ports only with
    :func:`forwards` (a ``lif`` layer without a bias has the
    datapath of version 1, register for register).

    Parameters
    ----------
    plan : LayerPlan
        The hidden layer's plan (``v_bits``, ``acc_bits``, ``bias_bits``, leak shift ``k``,
        synaptic shift ``ks``, threshold θ, reset).
    lane : int
        The lane (``0 .. L - 1``).

    Attributes
    ----------
    potential : In(signed(v_bits))
        ``v`` of the neuron at the potential memory's read port (stage B).
    current_even, current_odd : In(signed(acc_bits))
        The two current banks' words at their read ports (stage B).
    bias : In(signed(bias_bits))
        With a bias: the neuron's bias at the bias memory's read port (stage B).
    synaptic : In(signed(v_bits))
        ``cubalif``: ``c`` at the synaptic-current memory's read port (stage B).
    odd : In(1)
        The swept bank is bank 1 (taken while the words are in R).
    d_idx : In(local_bits)
        The group in the stage before E (D; S for ``cubalif``).
    spike : Out(1)
        Stage E: the neuron spiked.
    updated : Out(signed(v_bits))
        Stage E: ``u``.
    after : Out(signed(v_bits))
        Stage E: the potential after the step's reset (``0`` or ``u − θ`` when it spiked, else
        ``u``), before the clear that ends an inference.
    synaptic_updated : Out(signed(v_bits))
        ``cubalif``, stage E: ``c'``, the synaptic current after this step.
    here : Out(1)
        Stage E: the lane holds a neuron of the group (always, but in the last group).
    forward : In(1)
        With :func:`forwards`: stage C takes ``forward_potential`` (and ``forward_synaptic``), the
        group's latest write, instead of the words in stage R.
    forward_potential, forward_synaptic : In(signed(v_bits))
        The forwarded potential and, ``cubalif``, synaptic current.
    """

    def __init__(self, plan: LayerPlan, lane: int) -> None:
        if not isinstance(plan, LayerPlan) or not plan.is_lif:
            self._MustUse__silence = True  # never elaborated: no unused-elaboratable warning
            raise ValueError(f"LeakFireLane needs the plan of a LIF layer (lif or cubalif), got {plan!r}")
        if isinstance(lane, bool) or not isinstance(lane, int) or not 0 <= lane < plan.lanes:
            self._MustUse__silence = True  # never elaborated: no unused-elaboratable warning
            raise ValueError(f"lane must be in 0..{plan.lanes - 1}, got {lane!r}")
        self.plan = plan
        self.lane = lane
        v_bits = plan.layer.v_bits
        members = {
            "potential": In(signed(v_bits)),
            "current_even": In(signed(plan.acc_bits)),
            "current_odd": In(signed(plan.acc_bits)),
            "odd": In(1),
            "d_idx": In(plan.local_bits),
            "spike": Out(1),
            "updated": Out(signed(v_bits)),
            "after": Out(signed(v_bits)),
            "here": Out(1),
        }
        if plan.has_bias:
            members["bias"] = In(signed(plan.bias_bits))
        if plan.is_cuba:
            members["synaptic"] = In(signed(v_bits))
            members["synaptic_updated"] = Out(signed(v_bits))
        if forwards(plan):
            members["forward"] = In(1)
            members["forward_potential"] = In(signed(v_bits))
            if plan.is_cuba:
                members["forward_synaptic"] = In(signed(v_bits))
        super().__init__(members)

    @property
    def current_bits(self) -> int:
        """Width of ``I`` in stage C: the current word's, one more with a bias."""
        plan = self.plan
        return max(plan.acc_bits, plan.bias_bits) + 1 if plan.has_bias else plan.acc_bits

    def elaborate(self, platform) -> Module:
        plan, layer = self.plan, self.plan.layer
        v_bits = layer.v_bits
        m = Module()
        r_pot = Signal(signed(v_bits), name="r_pot", reset_less=True)
        r_curs = [
            Signal(signed(plan.acc_bits), name=f"r_cur_{parity}", reset_less=True)
            for parity in ("even", "odd")
        ]
        c_pot = Signal(signed(v_bits), name="c_pot", reset_less=True)
        c_cur = Signal(signed(self.current_bits), name="c_cur", reset_less=True)
        currents = (self.current_even, self.current_odd)
        selected = Mux(self.odd, r_curs[1], r_curs[0])
        m.d.sync += [
            r_pot.eq(self.potential),
            *(r_cur.eq(current) for r_cur, current in zip(r_curs, currents, strict=True)),
            c_pot.eq(self._forwarded("forward_potential", r_pot)),
        ]
        if plan.has_bias:
            r_bias = Signal(signed(plan.bias_bits), name="r_bias", reset_less=True)
            m.d.sync += [r_bias.eq(self.bias), c_cur.eq(selected + r_bias)]
        else:
            m.d.sync += c_cur.eq(selected)
        if plan.is_cuba:
            total = self._synaptic_stages(m, c_pot, c_cur)
        else:
            total = Signal(signed(max(v_bits, self.current_bits) + 2), name="d_total")
            m.d.sync += total.eq(_leak(c_pot, layer.leak_shift) + c_cur)
        self._fire(m, total)
        return m

    def _forwarded(self, port: str, word: Signal):
        """``word`` (stage R), or the forwarded write ``port`` where ``forward`` says so."""
        if not forwards(self.plan):
            return word
        return Mux(self.forward, getattr(self, port), word)

    def _synaptic_stages(self, m: Module, c_pot: Signal, c_cur: Signal) -> Signal:
        """``cubalif``: ``c`` through R and C, stage D (``c_total`` and the leaked ``v``) and
        stage S (``c'`` and the membrane total); returns the total."""
        layer, v_bits = self.plan.layer, self.plan.layer.v_bits
        r_syn = Signal(signed(v_bits), name="r_syn", reset_less=True)
        c_syn = Signal(signed(v_bits), name="c_syn", reset_less=True)
        d_syn_total = Signal(signed(max(v_bits, self.current_bits) + 2), name="d_syn_total")
        d_leaked = Signal(signed(v_bits + 1), name="d_leaked")
        s_syn = Signal(signed(v_bits), name="s_syn")
        s_total = Signal(signed(v_bits + 2), name="s_total")
        clamped = _clamp(d_syn_total, v_bits)
        m.d.sync += [
            r_syn.eq(self.synaptic),
            c_syn.eq(self._forwarded("forward_synaptic", r_syn)),
            d_syn_total.eq(_leak(c_syn, layer.syn_shift) + c_cur),
            d_leaked.eq(_leak(c_pot, layer.leak_shift)),
            s_syn.eq(clamped),
            s_total.eq(d_leaked + clamped),
            self.synaptic_updated.eq(s_syn),
        ]
        return s_total

    def _fire(self, m: Module, total: Signal) -> None:
        """Stage E from the stage before it: ``u``, ``spike`` (gated in the last group of a lane
        without a neuron there), ``here`` and the potential after the reset."""
        plan, layer = self.plan, self.plan.layer
        theta = layer.threshold
        _, high = signed_range(layer.v_bits)
        m.d.sync += self.updated.eq(_clamp(total, layer.v_bits))
        if plan.subtract_reset:
            reset = Mux(total > high, high - theta, total - theta)
            m.d.sync += self.after.eq(Mux(total >= theta, reset, _clamp(total, layer.v_bits)))
        else:
            m.d.comb += self.after.eq(Mux(self.spike, 0, self.updated))
        if self.lane < last_group_lanes(plan):  # a neuron in every group: no register for a constant
            m.d.sync += self.spike.eq(total >= theta)
            m.d.comb += self.here.eq(1)
            return
        d_here = ~(self.d_idx == plan.groups - 1)
        m.d.sync += [self.spike.eq(d_here & (total >= theta)), self.here.eq(d_here)]


def _leak(value, shift: int | None):
    """``value − (value >>> shift)``; ``value`` itself without a shift."""
    return value if shift is None else value - (value >> shift)


def _clamp(value, bits: int):
    """``value`` clamped to the signed ``bits`` range."""
    low, high = signed_range(bits)
    return Mux(value < low, low, Mux(value > high, high, value))
