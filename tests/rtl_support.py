"""Shared helpers of the rtl_gen tests: random models and an Amaranth-simulator driver."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from amaranth.sim import Simulator

from esl_hw.artifact import Layer, Model, layer_from_dense


def random_layer(
    rng: np.random.Generator,
    n_in: int,
    n_out: int,
    density: float,
    kind: str = "lif",
    w_bits: int = 8,
    **params,
) -> Layer:
    """A random CSR layer; ``density`` 1.0 gives full rows, rows may come out empty."""
    mask = rng.random((n_in, n_out)) < density
    low, high = -(1 << (w_bits - 1)), (1 << (w_bits - 1)) - 1
    dense = rng.integers(low, high + 1, (n_in, n_out)) * mask
    return layer_from_dense(dense, kind, w_bits, mask=mask, **params)


def random_model(
    rng: np.random.Generator,
    sizes: list[int],
    density: float = 0.3,
    timesteps: int = 4,
    v_bits: int = 10,
    threshold: int = 100,
    leak_shift: int | None = 2,
    w_bits: int = 6,
) -> Model:
    """A random model with LIF layers ``sizes[0] -> sizes[1] -> …`` and an output layer last."""
    layers = []
    for index, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        if index == len(sizes) - 2:
            layers.append(random_layer(rng, n_in, n_out, density, "output", w_bits))
        else:
            layers.append(
                random_layer(
                    rng,
                    n_in,
                    n_out,
                    density,
                    "lif",
                    w_bits,
                    v_bits=v_bits,
                    threshold=threshold,
                    leak_shift=leak_shift,
                )
            )
    return Model(tuple(layers), timesteps=timesteps)


@dataclass
class CoreRun:
    """What the Amaranth simulation of :class:`SNNCore` produced for a batch of samples."""

    taps: list[list[tuple[int, int, int, int, int]]] = field(default_factory=list)
    outputs: list[list[int]] = field(default_factory=list)
    predictions: list[int] = field(default_factory=list)
    counters: list[dict[str, int]] = field(default_factory=list)


def simulate_core(core, events: list[list[list[int]]], gaps: bool = False, seed: int = 0) -> CoreRun:
    """Drive ``core`` (an :class:`SNNCore`) with per-sample, per-step input indices.

    Returns per sample the taps ``(layer, step, neuron, potential, spike)``, the outputs, the
    prediction and the latched counters. With ``gaps`` the input stream has random idle cycles
    and the output stream random backpressure.
    """
    from esl_hw.rtl_gen import counter_names

    rng = np.random.default_rng(seed)
    run = CoreRun()
    n_hidden = len(core.model.hidden_layers)
    names = counter_names(core.model)

    async def testbench(ctx) -> None:
        for sample in events:
            stream = [(0, 1) if index is None else (index, 0) for step in sample for index in [*step, None]]
            position = 0
            taps: list = []
            outputs: list[int] = []
            finished = False
            while not finished:
                send = position < len(stream) and not (gaps and rng.random() < 0.3)
                ctx.set(core.events.valid, send)
                if send:
                    index, eos = stream[position]
                    ctx.set(core.events.payload, {"index": index, "eos": eos})
                ctx.set(core.outputs.ready, not (gaps and rng.random() < 0.4))
                if send and ctx.get(core.events.ready):
                    position += 1
                for layer in range(n_hidden):
                    prefix = f"tap{layer}_"
                    taps.extend((layer, *tap) for tap in read_taps(ctx, core, prefix, core.lanes))
                if ctx.get(core.outputs.valid) and ctx.get(core.outputs.ready):
                    outputs.append(ctx.get(core.outputs.payload.value))
                finished = bool(ctx.get(core.done))
                await ctx.tick()
            ctx.set(core.events.valid, 0)
            run.taps.append(taps)
            run.outputs.append(outputs)
            run.predictions.append(ctx.get(core.prediction))
            run.counters.append({name: ctx.get(getattr(core, f"perf_{name}")) for name in names})

    sim = Simulator(core)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return run


@dataclass
class StreamRun(CoreRun):
    """What :func:`simulate_stream` produced: as :class:`CoreRun`, plus per inference the cycle
    its first input word was accepted (``starts``) and the cycle of its ``done`` (``dones``)."""

    starts: list[int] = field(default_factory=list)
    dones: list[int] = field(default_factory=list)


def simulate_stream(core, events: list[list[list[int]]], gaps: bool = False, seed: int = 0) -> StreamRun:
    """Drive ``core`` (an :class:`SNNCore`) with every sample's events back to back, never waiting
    for ``done``: the next sample's first event is offered right after the last marker before.

    Tap samples are given to a sample per layer (each layer's ``T·groups`` swept groups in turn),
    output words to a sample by the ``last`` flags before them, predictions and counters by
    ``done`` (read the cycle after), so results out of order or merged show up as wrong values.
    """
    from esl_hw.rtl_gen import counter_names

    rng = np.random.default_rng(seed)
    run = StreamRun(taps=[[] for _ in events], outputs=[[] for _ in events])
    n_hidden = len(core.model.hidden_layers)
    names = counter_names(core.model)
    sweeps = [core.model.timesteps * -(-layer.n_out // core.lanes) for layer in core.model.hidden_layers]
    stream: list[tuple[int, int]] = []
    firsts = set()
    for sample in events:
        firsts.add(len(stream))
        stream.extend((0, 1) if index is None else (index, 0) for step in sample for index in [*step, None])

    async def testbench(ctx) -> None:
        position = cycle = finished = 0
        swept = [0] * n_hidden
        report = False
        while len(run.predictions) < len(events):
            send = position < len(stream) and not (gaps and rng.random() < 0.3)
            ctx.set(core.events.valid, send)
            if send:
                index, eos = stream[position]
                ctx.set(core.events.payload, {"index": index, "eos": eos})
            ctx.set(core.outputs.ready, not (gaps and rng.random() < 0.4))
            if send and ctx.get(core.events.ready):
                if position in firsts:
                    run.starts.append(cycle)
                position += 1
            for layer in range(n_hidden):
                taps = read_taps(ctx, core, f"tap{layer}_", core.lanes)
                if taps:
                    run.taps[swept[layer] // sweeps[layer]].extend((layer, *tap) for tap in taps)
                    swept[layer] += 1
            if ctx.get(core.outputs.valid) and ctx.get(core.outputs.ready):
                run.outputs[finished].append(ctx.get(core.outputs.payload.value))
                finished += ctx.get(core.outputs.payload.last)
            if report:
                run.predictions.append(ctx.get(core.prediction))
                run.counters.append({name: ctx.get(getattr(core, f"perf_{name}")) for name in names})
            report = bool(ctx.get(core.done))
            if report:
                run.dones.append(cycle)
            await ctx.tick()
            cycle += 1
            assert cycle < 200_000, "the stream did not finish"

    sim = Simulator(core)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return run


def read_taps(ctx, core, prefix: str, lanes: int) -> list[tuple[int, int, int, int]]:
    """This cycle's tap samples ``(step, neuron, potential, spike)`` of an L-wide tap."""
    valid = ctx.get(getattr(core, prefix + "valid"))
    if not valid:
        return []
    group = ctx.get(getattr(core, prefix + "group"))
    step = ctx.get(getattr(core, prefix + "step"))
    potentials = ctx.get(getattr(core, prefix + "potential"))
    spikes = ctx.get(getattr(core, prefix + "spike"))
    return [
        (step, group * lanes + lane, int(potentials[lane]), spikes >> lane & 1)
        for lane in range(lanes)
        if valid >> lane & 1
    ]


def step_events(spikes: np.ndarray) -> list[tuple[int, int]]:
    """``(index, eos)`` stream for one sample's spikes ``[T, n_in]``: indices, then a marker."""
    stream: list[tuple[int, int]] = []
    for step in np.asarray(spikes, dtype=bool):
        stream.extend((int(index), 0) for index in np.flatnonzero(step))
        stream.append((0, 1))
    return stream


def simulate_layer(
    core, stream: list[tuple[int, int]], gaps: bool = False, seed: int = 0, limit: int = 100000
):
    """Drive a layer core's ``events`` with ``stream``; return what it produced, cycle by cycle.

    Returns ``(records, cycles)``: ``records`` maps ``"out"`` to accepted output payloads (spike
    events ``(index, eos)`` of a LIF core, ``(index, value, last)`` of the output core),
    ``"tap"`` to LIF tap samples ``(step, index, potential, spike)``, ``"done"`` to
    ``(cycle, prediction-register-next-cycle)`` pairs of the output core.
    """
    rng = np.random.default_rng(seed)
    records: dict[str, list] = {"out": [], "tap": [], "done": []}
    is_lif = hasattr(core, "spikes")
    out = core.spikes if is_lif else core.outputs
    expected_markers = sum(eos for _, eos in stream)
    state = {"cycles": 0}

    async def testbench(ctx) -> None:
        position = 0
        markers_out = 0
        dones = 0
        cycle = 0
        while cycle < limit:
            send = position < len(stream) and not (gaps and rng.random() < 0.3)
            ctx.set(core.events.valid, send)
            if send:
                index, eos = stream[position]
                ctx.set(core.events.payload, {"index": index, "eos": eos})
            ctx.set(out.ready, not (gaps and rng.random() < 0.5))
            if send and ctx.get(core.events.ready):
                position += 1
            if is_lif:
                records["tap"].extend(read_taps(ctx, core, "tap_", core.plan.lanes))
            if ctx.get(out.valid) and ctx.get(out.ready):
                payload = out.payload
                if is_lif:
                    item = (ctx.get(payload.index), ctx.get(payload.eos))
                    markers_out += item[1]
                else:
                    item = (ctx.get(payload.index), ctx.get(payload.value), ctx.get(payload.last))
                records["out"].append(item)
            finished = False
            if not is_lif and ctx.get(core.done):
                dones += 1
                await ctx.tick()
                cycle += 1
                records["done"].append((cycle, ctx.get(core.prediction)))
                finished = position == len(stream) and dones == expected_markers // core.plan.timesteps
            else:
                await ctx.tick()
                cycle += 1
            if is_lif and markers_out == expected_markers and position == len(stream):
                break
            if finished:
                break
        state["cycles"] = cycle

    sim = Simulator(core)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return records, state["cycles"]
