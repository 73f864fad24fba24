"""Spike serializer: L-wide spike masks from a sweep to a stream of spike events, one per cycle.

The sweep of a LIF layer with ``L`` lanes visits ``L`` neurons per cycle (one group ``g``: neurons
``g·L .. g·L + L - 1``) and pushes a word ``{group, mask, eos}`` into a FIFO whenever any of them
spiked, then one end-of-step word. The serializer pops those words and emits, for each set bit
``k`` of the mask (lowest first), the event ``index = g·L + k``; a word with ``eos`` set is the
step's last (the sweep's last group rides with the end of the step, so the marker costs no word
of its own): after its spikes, if any, it becomes the end-of-step marker. Python model:
:func:`serialize_masks`.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from esl_hw.rtl_gen.integrate import event_layout


def mask_layout(group_bits: int, lanes: int) -> data.StructLayout:
    """Payload of the spike-mask stream: ``group``, ``mask`` (one bit per lane), ``eos``."""
    if group_bits < 1 or lanes < 1:
        raise ValueError(f"widths must be at least 1, got group_bits={group_bits} lanes={lanes}")
    return data.StructLayout({"group": unsigned(group_bits), "mask": unsigned(lanes), "eos": 1})


def serialize_masks(words: list[tuple[int, int, int]], lanes: int) -> list[tuple[int, int]]:
    """Python model: ``(group, mask, eos)`` words to ``(index, eos)`` events: the spikes of
    ``mask``, lowest first, then the end-of-step marker when ``eos`` is set."""
    events = []
    for group, mask, eos in words:
        events.extend((group * lanes + lane, 0) for lane in range(lanes) if mask >> lane & 1)
        if eos:
            events.append((0, 1))
    return events


class SpikeSerializer(wiring.Component):
    """Turn spike masks into spike events at one event per cycle, with no bubble between words.

    Parameters
    ----------
    group_bits : int
        Width of the group (bank-local neuron index).
    lanes : int
        Lanes per group, a power of two.
    index_bits : int
        Width of the emitted neuron index (``bits(n_out - 1)``).

    Attributes
    ----------
    masks : In(stream.Signature(mask_layout(group_bits, lanes)))
        Words ``{group, mask, eos}``: the spikes of ``mask``, then the end-of-step marker when
        ``eos`` is set; a word with ``eos`` clear must have a non-zero mask.
    spikes : Out(stream.Signature(event_layout(index_bits)))
        Spike events ``{index, eos}`` in the order of the words, lowest lane first.
    """

    def __init__(self, group_bits: int, lanes: int, index_bits: int) -> None:
        if lanes < 1 or lanes & (lanes - 1):
            self._MustUse__silence = True  # never elaborated: no unused-elaboratable warning
            raise ValueError(f"lanes must be a power of two, got {lanes!r}")
        self.group_bits = group_bits
        self.lanes = lanes
        self.index_bits = index_bits
        super().__init__(
            {
                "masks": In(stream.Signature(mask_layout(group_bits, lanes))),
                "spikes": Out(stream.Signature(event_layout(index_bits))),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        lanes = self.lanes
        held = Signal()
        group = Signal(self.group_bits)
        mask = Signal(lanes)
        eos = Signal()
        lowest = Signal(range(max(2, lanes)))
        for lane in reversed(range(lanes)):
            with m.If(mask[lane]):
                m.d.comb += lowest.eq(lane)
        rest = Signal(lanes)
        marker = Signal()  # the held word's spikes are out: its end-of-step marker is offered
        m.d.comb += [rest.eq(mask & (mask - 1)), marker.eq(mask == 0)]
        index = group if lanes == 1 else (group << (lanes.bit_length() - 1)) | lowest
        m.d.comb += [
            self.spikes.valid.eq(held),
            self.spikes.payload.index.eq(Mux(marker, 0, index)),
            self.spikes.payload.eos.eq(marker),
        ]
        finished = Signal()
        m.d.comb += [
            finished.eq(~held | (self.spikes.ready & (marker | ((rest == 0) & ~eos)))),
            self.masks.ready.eq(finished),
        ]
        with m.If(finished):
            m.d.sync += [
                held.eq(self.masks.valid),
                group.eq(self.masks.payload.group),
                mask.eq(self.masks.payload.mask),
                eos.eq(self.masks.payload.eos),
            ]
        with m.Elif(self.spikes.ready):
            m.d.sync += mask.eq(rest)
        return m
