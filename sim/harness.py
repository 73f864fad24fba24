"""Self-running simulation harness around the generated core, and its input and trace formats.

The harness (Verilog, generated here for one model) makes its own clock, loads all input events
of a batch with ``$readmemh``, drives the core's event stream, waits for each inference's
``done`` before sending the next image's events (or, with ``+STREAM=1``, streams the images
back to back: the next image's events follow the last marker at once, and the core's input
decides when it takes them), writes a text trace with ``$fwrite`` and raises
its ``done`` register when every image has been processed (or a watchdog expires). The testbench
only awaits that one signal, so no Python runs per cycle. With the macro
:data:`~esl_hw.sim.build.CLOCK_INPUT` defined (the ``binary`` build) the clock is an input instead,
driven by a C++ main, and the reset a clocked sequence of the same four rising edges: no delays.

The harness instantiates the core through the ports of :class:`~esl_hw.rtl_gen.SNNCore`'s
signature (:func:`core_ports`, named as Amaranth names them in the core's Verilog,
:mod:`esl_hw.rtl_gen.ports`): every port is
connected with its width, the core's outputs to wires, the inputs it does not drive to 0. Each
part of the text comes from one small function: nets of the input stream driver and output
monitor, the host port's registers, the instance, the main clocked block (stream driver, output
monitor, reports, rewire sequencer, watchdog) and the trace taps.

Event file: one hex word per line, bit 31 the end-of-step flag, bits 30..0 the input index.

Plusargs: ``+EVENTS=<file>``, ``+NEVENTS=<n>``, ``+NIMAGES=<n>``, ``+TRACE=<file>``,
``+POTENTIALS=<0|1>``, ``+GAP=<percent>`` (idle cycles on the input stream),
``+BACKPRESSURE=<percent>`` (cycles the output stream is not ready), ``+RANDOMGAPS=<percent>``
(when non-zero: draw a new gap and backpressure share in ``0 .. percent`` for every image),
``+SEED=<n>``, ``+MAXCYCLES=<n>`` (watchdog), ``+STREAM=<0|1>`` (stream the images back to
back instead of waiting for each ``done``), ``+FINISH=<0|1>`` (``$finish`` the cycle after
``done``: the ``binary`` run mode of :mod:`esl_hw.sim.runner`, without cocotb); with a rewiring
unit in the core (see :func:`harness_verilog`) ``+SPLIT=<n>``, ``+RWK<l>=<k>`` per layer and
``+RWSEED=<hex>``.

Rewire phase (only when ``SPLIT`` is given and the core has the rewiring unit): after image
``SPLIT - 1`` has completed, the harness holds the input stream, asks the core to rewire every
layer ``l`` in turn with ``k = RWK<l>`` and seed ``RWSEED`` (waiting for ``rewire_done`` each time),
then reads every word of every memory through the host port, and resumes with image ``SPLIT``.
In a streamed run the input stops after image ``SPLIT - 1``'s last marker and the phase starts
at its ``done``.

Every trace line names its image by what the harness counted at that port, so streamed images
that overlap in the core are told apart: a tap sample belongs to its layer's ``T·groups``-th
swept group in turn, an output word to the images whose ``last`` word came before, a ``D`` line
to the images reported before.

Trace lines (decimal, space separated):

- ``S layer image step neuron``: a hidden-layer spike;
- ``P layer image step neuron potential``: a tap sample (only with ``+POTENTIALS=1``);
- ``O image index value``: an output accumulator;
- ``D image prediction <counters in counter_names(model) order>``: an inference completed;
- ``F image cycle``: the harness cycle of that inference's ``done`` (cycles between consecutive
  results: the differences);
- ``X cycles``: the watchdog expired;
- ``R layer error state``: a rewire request finished (its error flag and final LFSR state);
- ``M mem addr value``: a word read through the host port (raw, unsigned).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from esl_hw.artifact import Model
from esl_hw.encoding import encode, spike_events
from esl_hw.errors import EslError
from esl_hw.rtl_gen import SNNCore, counter_names
from esl_hw.rtl_gen.memory_map import READ_LATENCY
from esl_hw.rtl_gen.plan import CorePlan, as_plan
from esl_hw.rtl_gen.ports import Port, component_ports
from esl_hw.sim.build import CLOCK_INPUT

HARNESS_TOP = "esl_cosim_top"
CORE_NAME = "snn_core"
EOS_BIT = 1 << 31
DEFAULT_CAPACITY = 1 << 18
#: Environment variable naming the testbench configuration (JSON) for :mod:`esl_hw.sim.testbench`.
CONFIG_ENV = "ESL_COSIM_CONFIG"
#: The harness's own names for the core ports it drives or reads; every other output of the core
#: is a wire named like its port, every other input is tied to 0.
HARNESS_NETS = {
    "events__valid": "ev_valid",
    "events__ready": "ev_ready",
    "events__payload": "ev_payload",
    "outputs__valid": "out_valid",
    "outputs__ready": "out_ready",
    "outputs__payload": "out_payload",
    "done": "core_done",
    "idle": "core_idle",
}
#: Core inputs the harness drives: the streams, the host port's reads and, with the rewiring
#: unit, the rewire request.
DRIVEN_INPUTS = (
    "events__valid",
    "events__payload",
    "outputs__ready",
    "host_valid",
    "host_mem",
    "host_addr",
    "rewire_start",
    "rewire_layer",
    "rewire_k",
    "rewire_seed",
)


def event_words(model: Model, images: np.ndarray) -> np.ndarray:
    """Event words (uint32) for ``images`` (``[N, n_in]`` uint8): per image and step the
    ascending spiking inputs, then an end-of-step marker (bit 31)."""
    images = np.asarray(images)
    if images.ndim != 2 or images.shape[1] != model.n_inputs or images.dtype != np.uint8:
        raise EslError(f"images must be uint8 [N, {model.n_inputs}], got {images.dtype} {list(images.shape)}")
    spikes = encode(images, model.timesteps, model.encoder)
    words: list[int] = []
    for sample in range(len(images)):
        for step in spike_events(spikes[:, sample]):
            words.extend(step)
            words.append(EOS_BIT)
    return np.asarray(words, dtype=np.uint32)


def write_events(path: Path, words: np.ndarray) -> Path:
    """Write event words as ``$readmemh`` text (one 8-digit hex word per line)."""
    path.write_text("".join(f"{int(word):08x}\n" for word in words))
    return path


def capacity_for(n_events: int) -> int:
    """Event memory depth of the harness: a power of two holding ``n_events``, at least the default."""
    capacity = DEFAULT_CAPACITY
    while capacity < n_events:
        capacity *= 2
    return capacity


def core_ports(plan: CorePlan) -> dict[str, Port]:
    """The ports of :class:`~esl_hw.rtl_gen.SNNCore` built from ``plan``, read from its signature
    (:func:`~esl_hw.rtl_gen.ports.component_ports`; the core is never elaborated)."""
    core = SNNCore(plan)
    core._MustUse__silence = True  # only its signature is read
    return component_ports(core)


def _net(port: Port) -> str:
    """The harness's name for the net of the core's ``port``."""
    return HARNESS_NETS.get(port.name, port.name)


def _range(port: Port) -> str:
    """The Verilog bit range of ``port``'s net and a space, ``"[width-1:0] "`` (also for one bit:
    the harness bit-selects the one-lane taps)."""
    return f"[{port.width - 1}:0] "


def _check_ports(ports: dict[str, Port], counters: list[str]) -> None:
    """Raise :class:`EslError` naming the ports the harness reads or drives that the core lacks."""
    used = [*HARNESS_NETS, "prediction", "host_valid", "host_mem", "host_addr", "host_ready"]
    used += ["host_rvalid", "host_rdata", *(f"perf_{name}" for name in counters)]
    missing = [name for name in used if name not in ports]
    if missing:
        raise EslError(f"the core has no port {', '.join(missing)} (its ports: {', '.join(ports)})")


def _field_range(layout, name: str) -> str:
    """The bit range of field ``name`` of a struct ``layout`` in its flattened port."""
    field = layout[name]
    return f"[{field.offset + field.width - 1}:{field.offset}]"


def _port_wires(ports: dict[str, Port]) -> list[str]:
    """A wire for every output of the core, as wide as the port."""
    return [f"  wire {_range(port)}{_net(port)};" for port in ports.values() if port.direction == "output"]


def _instance(ports: dict[str, Port]) -> str:
    """The core's instance: every port connected to its net, undriven inputs tied to 0."""
    connections = [".clk(clk)", ".rst(rst)"]
    for port in ports.values():
        driven = port.direction == "output" or port.name in DRIVEN_INPUTS
        net = _net(port) if driven else f"{port.width}'d0"
        connections.append(f".{port.name}({net})")
    return f"  {CORE_NAME} core ({', '.join(connections)});"


def _header(plan: CorePlan, capacity: int) -> str:
    """Module header, clock, reset and the plusarg variables."""
    return f"""`timescale 1ns/1ps
// Generated by esl_hw.sim.harness: self-clocked co-simulation top for {CORE_NAME}.
`ifdef {CLOCK_INPUT}
// clocked by the C++ main of a run without cocotb (esl_hw.sim.build, no --timing); reset for
// the first four rising edges, as below
module {HARNESS_TOP}(input clk);
  reg rst = 1'b1;
  reg [2:0] reset_count = 0;
`else
module {HARNESS_TOP};
  reg clk = 1'b0;
  always #5 clk = ~clk;
  // rst rises at 1 ps (an event, unlike an initialiser): every always @* block of the core that
  // reads rst is evaluated under reset, so no register keeps an X from time 0 (Icarus)
  reg rst = 1'b0;
  initial #0.001 rst = 1'b1;
`endif
  localparam CAPACITY = {capacity};
  localparam STEPS = {plan.model.timesteps};
  reg done = 1'b0;
  reg [31:0] events [0:CAPACITY-1];
  reg [8*1024-1:0] events_file, trace_file;
  integer fd, n_events, n_images, gap_pct, backpressure_pct, trace_potentials, seed, max_cycles;
  integer random_gaps, finish_at_end, streaming;
  reg [31:0] ev_pos = 0, image = 0, markers = 0, cycle = 0, rnd = 32'h1234567;
  reg [31:0] in_image = 0, out_image = 0;
  reg running = 1'b0, waiting = 1'b0, report_pending = 1'b0, idle = 1'b0, out_ready = 1'b1;"""


def _stream_nets(ports: dict[str, Port], capacity: int) -> str:
    """Input stream driver and output monitor nets: the event word at ``ev_pos`` packed into the
    core's event payload; the output payload's index and signed value."""
    events, outputs = ports["events__payload"].shape, ports["outputs__payload"].shape
    index_bits = events["index"].width
    fields = {"index": f"ev_word[{index_bits - 1}:0]", "eos": "ev_word[31]"}
    packed = ", ".join(fields[name] for name, _ in sorted(events, key=lambda item: -item[1].offset))
    value = outputs["value"]
    return f"""  wire [31:0] ev_word = events[ev_pos[{(capacity - 1).bit_length() - 1}:0]];
  wire ev_valid = running && !waiting && !idle && (ev_pos < n_events);
  wire {_range(ports["events__payload"])}ev_payload = {{{packed}}};
  // explicit signed wires: Verilator mis-sizes $signed(part-select) inside $fwrite
  wire [{outputs["index"].width - 1}:0] out_index = out_payload{_field_range(outputs, "index")};
  wire signed [{value.width - 1}:0] out_value = out_payload{_field_range(outputs, "value")};
  wire out_last = out_payload[{outputs["last"].offset}];"""


def _host_regs(ports: dict[str, Port], plan: CorePlan) -> list[str]:
    """The registers that drive the host port's reads (and the accepted read's address, delayed to
    ``host_rvalid``) and, with the rewiring unit, the rewire request and the rewire phase's."""

    def delays(name: str) -> str:
        """``name`` (the accepted read) and its copies ``name_q1`` .. delayed up to host_rvalid."""
        return ", ".join([f"{name} = 0", *(f"{name}_q{i} = 0" for i in range(1, READ_LATENCY))])

    regs = [
        "  reg host_valid = 1'b0;",
        f"  reg {_range(ports['host_mem'])}host_mem = 0, {delays('rd_mem')};",
        f"  reg {_range(ports['host_addr'])}host_addr = 0, {delays('rd_addr')};",
    ]
    if "rewire_start" in ports:
        regs += [
            "  reg rewire_start = 1'b0;",
            f"  reg {_range(ports['rewire_layer'])}rewire_layer = 0;",
            f"  reg {_range(ports['rewire_k'])}rewire_k = 0;",
            f"  reg {_range(ports['rewire_seed'])}rewire_seed = 32'hACE1;",
            "  integer split;",
            "  reg [2:0] phase = 0;",
            "  reg [7:0] drain = 0;",
            *(f"  reg [31:0] rw_k{layer} = 0;" for layer in range(len(plan))),
        ]
    return regs


def _initial_block() -> str:
    """Plusargs, the event file, the trace file and the end of reset (with :data:`CLOCK_INPUT`
    defined: four clocked cycles)."""
    return f"""  initial begin
    if (!$value$plusargs("EVENTS=%s", events_file)) $fatal(1, "missing +EVENTS");
    if (!$value$plusargs("TRACE=%s", trace_file)) $fatal(1, "missing +TRACE");
    if (!$value$plusargs("NEVENTS=%d", n_events)) n_events = 0;
    if (!$value$plusargs("NIMAGES=%d", n_images)) n_images = 0;
    if (!$value$plusargs("GAP=%d", gap_pct)) gap_pct = 0;
    if (!$value$plusargs("BACKPRESSURE=%d", backpressure_pct)) backpressure_pct = 0;
    if (!$value$plusargs("RANDOMGAPS=%d", random_gaps)) random_gaps = 0;
    if (!$value$plusargs("POTENTIALS=%d", trace_potentials)) trace_potentials = 1;
    if (!$value$plusargs("SEED=%d", seed)) seed = 1;
    if (!$value$plusargs("MAXCYCLES=%d", max_cycles)) max_cycles = 100000000;
    if (!$value$plusargs("FINISH=%d", finish_at_end)) finish_at_end = 0;
    if (!$value$plusargs("STREAM=%d", streaming)) streaming = 0;
    rnd = seed | 1;
    if (n_events > 0) $readmemh(events_file, events, 0, n_events - 1);
    fd = $fopen(trace_file, "w");
`ifndef {CLOCK_INPUT}
    // leave reset on a falling edge: no race with the logic clocked on the rising edge
    repeat (4) @(negedge clk);
    rst = 1'b0;
    running = 1'b1;
`endif
  end
`ifdef {CLOCK_INPUT}
  // the same four rising edges under reset as the falling-edge release above; running from the fifth
  always @(posedge clk) if (rst) begin
    reset_count <= reset_count + 1;
    if (reset_count == 3) begin
      rst <= 1'b0;
      running <= 1'b1;
    end
  end
`endif"""


def _xorshift() -> str:
    return """  function [31:0] xorshift32(input [31:0] x);
    reg [31:0] y;
    begin
      y = x ^ (x << 13);
      y = y ^ (y >> 17);
      xorshift32 = y ^ (y << 5);
    end
  endfunction"""


def _stream_statements(rewiring: bool) -> str:
    """Main block: idle gaps and backpressure, the input stream driver (``T`` markers per image,
    then wait for ``done``; streamed: go on, but after image ``SPLIT - 1`` with the rewiring unit)
    and the output monitor (``O`` lines, the image counted by the ``last`` words)."""
    stop = "streaming == 0 || in_image + 1 == split" if rewiring else "streaming == 0"
    return f"""    cycle <= cycle + 1;
    rnd <= xorshift32(rnd);
    if (!ev_valid || ev_ready) idle <= (rnd[15:0] % 100) < gap_pct;
    out_ready <= (rnd[31:16] % 100) >= backpressure_pct;
    if (ev_valid && ev_ready) begin
      ev_pos <= ev_pos + 1;
      if (ev_word[31]) begin
        if (markers == STEPS - 1) begin
          markers <= 0;
          in_image <= in_image + 1;
          if ({stop}) waiting <= 1'b1;
        end else markers <= markers + 1;
      end
    end
    if (out_valid && out_ready) begin
      $fwrite(fd, "O %0d %0d %0d\\n", out_image, out_index, out_value);
      if (out_last) out_image <= out_image + 1;
    end"""


def _report_statements(counters: list[str], rewiring: bool) -> str:
    """Main block: the ``D`` line the cycle after ``done``, then the next image (or, after image
    ``SPLIT - 1`` with the rewiring unit, the rewire phase) and the end of the run."""
    counter_format = " ".join("%0d" for _ in counters)
    counter_args = ", ".join(f"perf_{name}" for name in counters)
    resume = "if (streaming == 0) waiting <= 1'b0;"
    if rewiring:  # after image SPLIT-1 the rewire phase runs; it resumes the stream when done
        resume = "if (image + 1 == split) phase <= 1; else if (streaming == 0) waiting <= 1'b0;"
    return f"""    // prediction and counters are registered: report them the cycle after done
    report_pending <= core_done;
    if (report_pending) begin
      $fwrite(fd, "D %0d %0d {counter_format}\\n", image, prediction, {counter_args});
      $fwrite(fd, "F %0d %0d\\n", image, cycle - 1);
      image <= image + 1;
      {resume}
      if (random_gaps > 0) begin
        gap_pct <= rnd[7:0] % (random_gaps + 1);
        backpressure_pct <= rnd[23:16] % (random_gaps + 1);
      end
      if (image + 1 == n_images) begin
        $fclose(fd);
        done <= 1'b1;
      end
    end"""


def _finish_block() -> str:
    """With ``+FINISH=1`` (a simulator run without cocotb): end the simulation the cycle after
    ``done`` rose, the trace closed."""
    return """  always @(posedge clk) if (done && finish_at_end != 0) $finish;"""


def _watchdog_statements() -> str:
    return """    if (cycle == max_cycles) begin
      $fwrite(fd, "X %0d\\n", cycle);
      $fclose(fd);
      done <= 1'b1;
    end"""


def _tap_block(layer: int, v_bits: int, lanes: int, groups: int, steps: int) -> str:
    """Trace of one LIF layer's tap: an ``S`` line per spike, a ``P`` line per potential, named
    by the layer's own image count (``tap<l>_image``: one more after the last group of step
    ``T - 1``, so a layer working on the next image while a later one finishes the last is
    traced right)."""
    tap = f"tap{layer}"
    blocks = [
        f"""
  reg [31:0] {tap}_image = 0;
  wire {tap}_ends = {tap}_valid != 0 && {tap}_step == {steps - 1} && {tap}_group == {groups - 1};
  always @(posedge clk) if (!rst && {tap}_ends) {tap}_image <= {tap}_image + 1;"""
    ]
    for lane in range(lanes):
        low = lane * v_bits
        blocks.append(f"""
  wire signed [{v_bits - 1}:0] {tap}_potential{lane} = {tap}_potential[{low + v_bits - 1}:{low}];
  wire [31:0] {tap}_neuron{lane} = {tap}_group * {lanes} + {lane};
  always @(posedge clk) if (!rst && {tap}_valid[{lane}]) begin
    if ({tap}_spike[{lane}])
      $fwrite(fd, "S {layer} %0d %0d %0d\\n", {tap}_image, {tap}_step, {tap}_neuron{lane});
    if (trace_potentials != 0)
      $fwrite(fd, "P {layer} %0d %0d %0d %0d\\n",
              {tap}_image, {tap}_step, {tap}_neuron{lane}, {tap}_potential{lane});
  end""")
    return "".join(blocks)


def _tap_blocks(ports: dict[str, Port], plan: CorePlan) -> str:
    """A trace block per debug tap of the core (``tap<l>_potential``: ``L`` signed potentials)."""
    blocks = []
    for name, port in ports.items():
        if name.startswith("tap") and name.endswith("_potential"):
            layer = int(name[len("tap") : -len("_potential")])
            lanes = port.shape.length  # an ArrayLayout of lanes signed potentials
            steps = plan.model.timesteps
            blocks.append(_tap_block(layer, port.width // lanes, lanes, plan[layer].groups, steps))
    return "".join(blocks)


def _rewire_functions(plan: CorePlan) -> str:
    """Rewire phase: the memory depths, the per-layer ``k`` and their plusargs."""
    layers = len(plan)
    depths = "\n".join(f"      {region.id}: depth_of = {region.depth};" for region in plan.regions)
    ks = "\n".join(f"      {layer}: k_of = rw_k{layer};" for layer in range(layers))
    plusargs = "\n".join(
        f'    if (!$value$plusargs("RWK{layer}=%d", rw_k{layer})) rw_k{layer} = 0;' for layer in range(layers)
    )
    return f"""
  // Rewire phase: PHASE 1 request layer rewire_layer, 2 wait for rewire_done, 3 dump every
  // memory through the host port, 4 and 5 log the last word (reads answer READ_LATENCY =
  // {READ_LATENCY} cycles later: rd_mem_q{READ_LATENCY - 1}, rd_addr_q{READ_LATENCY - 1} name the word on
  // host_rdata), then resume the input stream.
  function [31:0] depth_of(input [31:0] id);
    case (id)
{depths}
      default: depth_of = 0;
    endcase
  endfunction
  function [31:0] k_of(input [31:0] layer);
    case (layer)
{ks}
      default: k_of = 0;
    endcase
  endfunction
  initial begin
    if (!$value$plusargs("SPLIT=%d", split)) split = -1;
    if (!$value$plusargs("RWSEED=%h", rewire_seed)) rewire_seed = 32'hACE1;
{plusargs}
  end"""


def _rewire_sequencer(plan: CorePlan) -> str:
    """Main block: the rewire phase (request each layer, wait for ``rewire_done``, read every
    memory through the host port, log each word with ``host_rvalid``)."""
    last = READ_LATENCY - 1
    chain = [
        (f"{name}_q{i}", f"{name}_q{i - 1}" if i > 1 else name)
        for name in ("rd_mem", "rd_addr")
        for i in range(1, READ_LATENCY)
    ]
    shifts = "\n".join(f"    {target} <= {source};" for target, source in chain)
    return f"""
    if (host_rvalid) $fwrite(fd, "M %0d %0d %0d\\n", rd_mem_q{last}, rd_addr_q{last}, host_rdata);
{shifts}
    case (phase)
      1: if (core_idle) begin
        rewire_start <= 1'b1;
        rewire_k <= k_of(rewire_layer);
        phase <= 2;
      end
      2: begin
        rewire_start <= 1'b0;
        if (rewire_done) begin
          $fwrite(fd, "R %0d %0d %0d\\n", rewire_layer, rewire_error, rewire_state);
          if (rewire_layer == {len(plan) - 1}) begin
            phase <= 3;
            host_valid <= 1'b1;
            host_mem <= 0;
            host_addr <= 0;
          end else begin
            rewire_layer <= rewire_layer + 1;
            phase <= 1;
          end
        end
      end
      3: if (host_valid && host_ready) begin
        rd_mem <= host_mem;
        rd_addr <= host_addr;
        if (host_addr + 1 == depth_of(host_mem)) begin
          host_addr <= 0;
          host_mem <= host_mem + 1;
          if (host_mem == {len(plan.regions) - 1}) begin
            host_valid <= 1'b0;
            drain <= 0;
            phase <= 4;
          end
        end else host_addr <= host_addr + 1;
      end
      4: begin
        drain <= drain + 1;
        if (drain + 1 == {READ_LATENCY - 1}) phase <= 5;
      end
      5: begin
        phase <= 0;
        waiting <= 1'b0;
      end
      default: ;
    endcase"""


def harness_verilog(
    model: CorePlan | Model, capacity: int = DEFAULT_CAPACITY, lanes: int | None = None
) -> str:
    """Verilog text of the harness top ``esl_cosim_top`` for the core of ``model`` (a
    :class:`~esl_hw.rtl_gen.plan.CorePlan`, or a model on ``lanes`` lanes, by default its own).

    The core's ports are read from :class:`~esl_hw.rtl_gen.SNNCore`'s signature
    (:func:`core_ports`): every port is connected, with its width; the rewire phase is generated
    when the core has the rewiring unit's ports.
    """
    plan = as_plan(model, lanes)
    ports, counters = core_ports(plan), counter_names(plan.model)
    _check_ports(ports, counters)
    rewiring = "rewire_start" in ports
    statements = [_stream_statements(rewiring), _report_statements(counters, rewiring)]
    if rewiring:
        statements.append(_rewire_sequencer(plan))
    statements.append(_watchdog_statements())
    sections = [
        _header(plan, capacity),
        _stream_nets(ports, capacity),
        *_port_wires(ports),
        *_host_regs(ports, plan),
        "",
        _instance(ports),
        "",
        _xorshift(),
        "",
        _initial_block(),
        "",
        "  always @(posedge clk) if (running && !done) begin",
        *statements,
        "  end",
        _finish_block(),
        (_rewire_functions(plan) if rewiring else "") + _tap_blocks(ports, plan),
        "endmodule",
        "",
    ]
    return "\n".join(sections)
