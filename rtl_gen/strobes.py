"""Access-count strobes of the layer cores' ``stat_*`` ports, and the reductions they use.

Every cycle each layer core reports how many pointer, synapse and state accesses it made
(``stat_*`` ports, summed by the core's counters). A strobe is a pair ``(count, parity)``: a count
this cycle and the parity of the inference it belongs to (:func:`inference_parity`). Without
streaming a ``stat_*`` port is one count (:func:`stat_shape`); with streaming, when two inferences
overlap, a pair of counts, one per parity (:func:`strobe_pair`, :func:`strobes_by_parity`).
:func:`any_of`, :func:`all_of` and :func:`add_strobes` reduce lists of per-lane signals.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream

from esl_hw.rtl_gen.plan import LayerPlan, unsigned_bits


def any_of(bits: list) -> object:
    """OR of single-bit signals."""
    result = bits[0]
    for bit in bits[1:]:
        result = result | bit
    return result


def all_of(bits: list) -> object:
    """AND of single-bit signals (a reduction, not an adder)."""
    result = bits[0]
    for bit in bits[1:]:
        result = result & bit
    return result


def add_strobes(strobes: list) -> object:
    """Sum of per-lane strobes (an Amaranth expression wide enough for the total)."""
    return sum(strobes[1:], strobes[0])


def inference_parity(m: Module, taken, timesteps: int, name: str) -> Signal:
    """A register with the parity of the inference of a stream of events and markers: it
    toggles when the ``T``-th marker (``T = timesteps``) of an inference is ``taken`` (markers
    counted modulo ``T`` from reset). Returned as the signal ``<name>_inference``."""
    parity = Signal(name=f"{name}_inference")
    if timesteps == 1:
        with m.If(taken):
            m.d.sync += parity.eq(~parity)
        return parity
    markers = Signal(range(timesteps), name=f"{name}_markers")
    with m.If(taken):
        with m.If(markers == timesteps - 1):
            m.d.sync += [markers.eq(0), parity.eq(~parity)]
        with m.Else():
            m.d.sync += markers.eq(markers + 1)
    return parity


def strobe_pair(most: int) -> data.ArrayLayout:
    """Shape of a layer core's ``stat_*`` port: two counts of up to ``most`` each (this cycle's
    accesses of the inferences of parity 0 and 1)."""
    return data.ArrayLayout(unsigned(unsigned_bits(most)), 2)


def drive_pair(port, strobes: list[tuple[object, object]]) -> list:
    """Statements driving a :func:`strobe_pair` ``port`` from strobes ``(count, parity)``."""
    even, odd = strobes_by_parity(strobes)
    return [port[0].eq(even), port[1].eq(odd)]


def input_pointer_reads(m: Module, plan: LayerPlan, events: stream.Interface) -> list[tuple[object, object]]:
    """The pointer reads of a layer, counted where an event enters it: every lane reads two
    pointers for each event (``2·L``), none for a marker. Returns one strobe ``(count, parity)``,
    the parity of the entering event's inference (:func:`inference_parity` of the layer's input)."""
    taken = events.valid & events.ready
    parity = inference_parity(m, taken & events.payload.eos, plan.timesteps, f"input{plan.index}")
    return [(Mux(taken & ~events.payload.eos, 2 * plan.lanes, 0), parity)]


def stat_shape(most: int, streaming: bool) -> object:
    """Shape of a layer core's ``stat_*`` port: one count of up to ``most`` (this cycle's
    accesses), or with ``streaming`` a :func:`strobe_pair` (the counts of the inferences of
    parity 0 and 1)."""
    return strobe_pair(most) if streaming else unsigned(unsigned_bits(most))


def drive_stat(port, strobes: list[tuple[object, object]], streaming: bool) -> list:
    """Statements driving a :func:`stat_shape` ``port`` from strobes ``(count, parity)``: the sum
    of the counts, or with ``streaming`` the sums per parity (:func:`drive_pair`)."""
    if streaming:
        return drive_pair(port, strobes)
    return [port.eq(add_strobes([count for count, _ in strobes]))]


def pointer_reads(
    m: Module, plan: LayerPlan, events: stream.Interface, fronts: list, streaming: bool
) -> list[tuple[object, object]]:
    """The pointer-read strobes ``(count, parity)`` of a layer: with ``streaming`` counted where
    an event enters the layer, tagged with its inference's parity (:func:`input_pointer_reads`),
    else each lane's own reads (``ptr_reads`` of every integrator in ``fronts``, parity 0)."""
    if streaming:
        return input_pointer_reads(m, plan, events)
    return [(front.ptr_reads, 0) for front in fronts]


def strobes_by_parity(strobes: list[tuple[object, object]]) -> tuple[object, object]:
    """Sums of strobes ``(count, parity)`` split by their inference's parity: ``(Σ count where
    parity = 0, Σ count where parity = 1)`` (Amaranth expressions)."""
    even = add_strobes([Mux(parity, 0, count) for count, parity in strobes])
    odd = add_strobes([Mux(parity, count, 0) for count, parity in strobes])
    return even, odd
