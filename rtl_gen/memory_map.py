"""Memory map of the generated core: every memory the host port reads and writes, by (id, address).

One table, derived from the layer plans (:mod:`esl_hw.rtl_gen.plan`), fixes the memory ids. Per
layer ``l`` in order, lanes ``b = 0 .. L-1`` within each kind::

    ptr  lane 0 .. L-1   row pointers   row_ptr_b[0 .. n_in]        ptr_bits + 1 wide (empty-row flag)
    syn  lane 0 .. L-1   synapse words  {group, weight} (CSR order)  local_bits + w_bits wide
    pot  lane 0 .. L-1   potentials     (hidden layers)              v_bits wide, two's complement
    isyn lane 0 .. L-1   synaptic current c (cubalif layers)         v_bits wide, two's complement
    acc  lane 0 .. L-1   accumulators   (output layer)               acc_bits wide, two's complement

so ``id = base(l) + kind_index·L + b`` with ``base(l)`` the number of memories of the layers
before ``l``. Pointer word ``j`` is ``row_ptr_b[j]`` with bit ``ptr_bits`` set when row ``j`` of
the lane is empty (:func:`esl_hw.rtl_gen.plan.pointer_words`): the integrator skips empty rows by
that flag, so a host writing pointers must write the flagged words. A read returns the raw word
zero-extended to the bus width ``data_bits`` (the widest memory); a write stores the low
``width`` bits. An address at or beyond the memory's depth, or an unknown id, reads as 0 and
writes nothing. A bus access passes :data:`BUS_STAGES` registers before it reaches its memory (the
bus, then the decoded enables), so no bus signal fans out to every memory in the cycle it is
driven. Read data arrives :data:`READ_LATENCY` (5) cycles after the read: every block-RAM output
is registered before any multiplexer (the synapse blocks' words, the pointer, potential and
accumulator words, :data:`ACCESS_LATENCY` cycles after the memory's ``r_en``), then the addressed
word is selected from those registers into one register per layer. The currents
of a hidden layer are not mapped: the sweep clears them every step, so they are 0 whenever the
core is idle. Bias memories are not mapped either: read-only tables from the artifact, fixed at
elaboration like the threshold and the leak shift.

:func:`memory_images` is the Python model of the contents while the core is idle, taken from the
artifact in the core's storage order (lane ``b`` holds the synapses with ``col mod L == b``, see
:func:`esl_hw.rtl_gen.plan.split_lanes`); potentials, synaptic currents and accumulators are 0
between inferences.
:func:`add_bus_decoder` connects a bus carrying (id, address) to the per-memory access ports.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from esl_hw.artifact import Model
from esl_hw.rtl_gen.hardware import HardwareConfig
from esl_hw.rtl_gen.memories import HOST_KINDS, BusShape, Region, bus_shape, layer_memories
from esl_hw.rtl_gen.plan import CorePlan, LayerPlan, as_plan

__all__ = [
    "ACCESS_LATENCY",
    "BUS_STAGES",
    "KINDS",
    "READ_LATENCY",
    "BusShape",
    "Region",
    "access_signature",
    "add_bus_decoder",
    "attach_access",
    "bus_shape",
    "bus_signature",
    "decode_pointer",
    "decode_synapse",
    "expected_read",
    "layer_regions",
    "memory_images",
    "memory_map",
    "region_id",
]

#: Cycles from an access port's read (``r_en``) to its data on ``r_data``, for every memory: the
#: block-RAM output (1) and the register after it (2); the multiplexers follow the register.
ACCESS_LATENCY = 2

#: Register stages of the bus decoder before the memories: the bus as it is (1), then per memory
#: its decoded enables and per layer the address and write data (2).
BUS_STAGES = 2

#: Cycles from a read on the bus (``r_en``) to its data on the bus's ``r_data``: the decoder's
#: registers, the memory's access latency and one register per layer of the selected word.
#: (:class:`esl_hw.rtl_gen.rewire.RewireUnit` and the host port wait for it.)
READ_LATENCY = BUS_STAGES + ACCESS_LATENCY + 1

#: Memory kinds in id order within a layer (``pot`` and, for ``cubalif``, ``isyn`` for hidden layers;
#: ``acc`` for the output layer).
KINDS = HOST_KINDS


def layer_regions(plan: LayerPlan, base: int) -> list[Region]:
    """The host-mapped memories of one layer core, ids from ``base`` (order in the module
    docstring), from the layer's memory list (:func:`esl_hw.rtl_gen.memories.layer_memories`)."""
    config = HardwareConfig(lanes=plan.lanes, synapse_memory=plan.synapse_memory)
    mapped = [memory for memory in layer_memories(plan.shape, config) if memory.host_id is not None]
    return [Region(base + i, m.layer, m.kind, m.lane, m.depth, m.width) for i, m in enumerate(mapped)]


def memory_map(plans: CorePlan | list[LayerPlan]) -> list[Region]:
    """Every host-visible memory of the core planned as ``plans`` (a :class:`CorePlan`, or its
    layer plans), indexed by id."""
    if isinstance(plans, CorePlan):
        return plans.regions
    regions: list[Region] = []
    for plan in plans:
        regions.extend(layer_regions(plan, len(regions)))
    return regions


def region_id(plans: CorePlan | list[LayerPlan], layer: int, kind: str, lane: int) -> int:
    """Id of memory ``kind`` (``ptr``, ``syn``, ``pot``, ``isyn`` or ``acc``) of ``lane`` in ``layer``."""
    for region in memory_map(plans):
        if (region.layer, region.kind, region.lane) == (layer, kind, lane):
            return region.id
    raise KeyError(f"no memory {kind!r} of lane {lane} in layer {layer}")


def access_signature(addr_bits: int, data_bits: int) -> wiring.Signature:
    """One memory's access port, seen from the master: ``addr``, ``r_en``, ``w_en``, ``w_data``
    out, ``r_data`` in (valid :data:`ACCESS_LATENCY` cycles after ``r_en``)."""
    return wiring.Signature(
        {
            "addr": Out(addr_bits),
            "r_en": Out(1),
            "w_en": Out(1),
            "w_data": Out(data_bits),
            "r_data": In(data_bits),
        }
    )


def bus_signature(shape: BusShape) -> wiring.Signature:
    """The memory bus, seen from its master: ``mem`` (id), ``addr``, ``r_en``, ``w_en``, ``w_data``
    out; ``r_data`` in, valid :data:`READ_LATENCY` cycles after ``r_en`` (0 for an unknown id or
    address)."""
    return wiring.Signature(
        {
            "mem": Out(shape.id_bits),
            "addr": Out(shape.addr_bits),
            "r_en": Out(1),
            "w_en": Out(1),
            "w_data": Out(shape.data_bits),
            "r_data": In(shape.data_bits),
        }
    )


def attach_access(
    m: Module, access, read_port, write_port, read=(0, 0), write=(0, 0, 0), held: Signal | None = None
) -> None:
    """Drive ``read_port`` and ``write_port`` of one memory from the datapath's ``read = (addr,
    en)`` and ``write = (addr, data, en)``, except while ``access`` (a flipped
    :func:`access_signature` interface) reads or writes: it has priority (the datapath is idle).

    The read port's word lands in a reset-less register (``access.r_data``, :data:`ACCESS_LATENCY`
    cycles after ``r_en``), so no logic follows the block-RAM output in the same cycle: ``held``,
    a register of the datapath that the caller loads from the read port at least in the cycle
    after ``r_en``, or else one of its own. Only plain
    expressions (continuous assignments in Verilog): every port is defined from time 0 in
    event-driven simulators, also while its inputs never change.
    """
    width = len(write_port.data)
    if held is None:
        held = Signal(width, reset_less=True)
        m.d.sync += held.eq(read_port.data[:width])
    read_addr, read_en = read
    write_addr, write_data, write_en = write
    m.d.comb += [
        read_port.addr.eq(Mux(access.r_en, access.addr, read_addr)),
        read_port.en.eq(access.r_en | read_en),
        write_port.addr.eq(Mux(access.w_en, access.addr, write_addr)),
        write_port.data.eq(Mux(access.w_en, access.w_data[:width], write_data)),
        write_port.en.eq(access.w_en | write_en),
        access.r_data.eq(held),
    ]


def _balanced_or(terms: list):
    """``terms[0] | terms[1] | …`` as a balanced tree (shallow expressions)."""
    while len(terms) > 1:
        terms = [terms[i] | terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return terms[0]


def add_bus_decoder(m: Module, bus, regions: list[Region], accesses: list) -> Signal:
    """Decode ``bus`` (a flipped :func:`bus_signature` interface) onto ``accesses[id]`` (each an
    :func:`access_signature` master interface of memory ``regions[id]``).

    ::

        cycle 0 : the bus                       (mem, addr, r_en, w_en, w_data)
        cycle 1 : the bus registered            (stage 1)
        cycle 2 : each memory's access port     (stage 2: registered enables, per-layer address
                                                 and data; a write is performed)
        cycle 4 : the memory's registered word  (ACCESS_LATENCY after stage 2)
        cycle 5 : the layer's selected word     (a register per layer; their OR is ``r_data``)

    Read data is selected by the id of the read, delayed with it. Returns ``pending``: an access
    is in the decoder's registers (not yet at its memory), so the datapath must not start.
    """
    fields = ("mem", "addr", "r_en", "w_en", "w_data")
    staged = {name: Signal.like(getattr(bus, name), name=f"bus_q_{name}") for name in fields}
    m.d.sync += [staged[name].eq(getattr(bus, name)) for name in fields]
    in_stage2 = Signal(name="bus_q2_any")
    m.d.sync += in_stage2.eq(staged["r_en"] | staged["w_en"])
    pending = Signal(name="bus_pending")
    m.d.comb += pending.eq(staged["r_en"] | staged["w_en"] | in_stage2)
    layers = sorted({region.layer for region in regions})
    addr = {layer: Signal.like(bus.addr, name=f"bus_addr_l{layer}") for layer in layers}
    w_data = {layer: Signal.like(bus.w_data, name=f"bus_wdata_l{layer}") for layer in layers}
    for layer in layers:
        m.d.sync += [addr[layer].eq(staged["addr"]), w_data[layer].eq(staged["w_data"])]
    hits = []
    for region, access in zip(regions, accesses, strict=True):
        hit = Signal(name=f"bus_hit{region.id}")
        r_en = Signal(name=f"bus_r_en{region.id}")
        w_en = Signal(name=f"bus_w_en{region.id}")
        m.d.comb += hit.eq((staged["mem"] == region.id) & (staged["addr"] < region.depth))
        m.d.sync += [r_en.eq(hit & staged["r_en"]), w_en.eq(hit & staged["w_en"])]
        m.d.comb += [
            access.addr.eq(addr[region.layer]),
            access.w_data.eq(w_data[region.layer]),
            access.r_en.eq(r_en),
            access.w_en.eq(w_en),
        ]
        hits.append(hit)
    # The id of a read that reaches a memory, else one past the last id (reads as 0).
    selected = Signal(range(len(regions) + 1), name="bus_issued")
    m.d.comb += selected.eq(Mux(staged["r_en"] & _balanced_or(hits), staged["mem"], len(regions)))
    for stage in range(READ_LATENCY - 2):  # stage 1 .. the cycle the access registers hold it
        delayed = Signal(range(len(regions) + 1), init=len(regions), name=f"bus_selected{stage + 2}")
        m.d.sync += delayed.eq(selected)
        selected = delayed
    words = []
    for layer in layers:
        terms = [
            Mux(selected == region.id, access.r_data, 0)
            for region, access in zip(regions, accesses, strict=True)
            if region.layer == layer
        ]
        word = Signal(len(bus.r_data), name=f"bus_rdata_l{layer}")
        m.d.sync += word.eq(_balanced_or(terms))
        words.append(word)
    m.d.comb += bus.r_data.eq(_balanced_or(words))
    return pending


def memory_images(model: Model | CorePlan, lanes: int | None = None) -> list[list[int]]:
    """Python model: the words of every memory (by id) of the idle core generated for ``model``
    (a :class:`CorePlan`, or a model on ``lanes`` lanes, by default the model's own).

    Pointer and synapse memories hold :meth:`LayerPlan.ptr_words` (the row pointers with their
    empty-row flags) and :meth:`LayerPlan.syn_init` (the artifact split by bank, CSR order within
    a lane); potentials, synaptic currents and accumulators are 0 (:meth:`CorePlan.memory_images`).
    """
    return as_plan(model, lanes).memory_images()


def expected_read(images: list[list[int]], mem: int, addr: int) -> int:
    """What a host read of ``(mem, addr)`` returns for memory contents ``images`` (0 off the map)."""
    if 0 <= mem < len(images) and 0 <= addr < len(images[mem]):
        return images[mem][addr]
    return 0


def decode_synapse(plan: LayerPlan, word: int) -> tuple[int, int]:
    """``(group, weight)`` of a synapse word of ``plan``'s layer (weight two's complement)."""
    group = word & ((1 << plan.local_bits) - 1)
    weight = (word >> plan.local_bits) & ((1 << plan.w_bits) - 1)
    if weight >> (plan.w_bits - 1):
        weight -= 1 << plan.w_bits
    return group, weight


def decode_pointer(plan: LayerPlan, word: int) -> tuple[int, bool]:
    """``(row_ptr, empty)`` of a pointer word of ``plan``'s layer: the pointer and the flag that
    says the row starting there is empty."""
    return word & ((1 << plan.ptr_bits) - 1), bool(word >> plan.ptr_bits & 1)
