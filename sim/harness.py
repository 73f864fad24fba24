"""Self-running simulation harness around the generated core, and its input and trace formats.

The harness (Verilog, generated here for one model) makes its own clock, loads all input events
of a batch with ``$readmemh``, drives the core's event stream, waits for each inference's
``done`` before sending the next image's events, writes a text trace with ``$fwrite`` and raises
its ``done`` register when every image has been processed (or a watchdog expires). The testbench
only awaits that one signal, so no Python runs per cycle.

Event file: one hex word per line, bit 31 the end-of-step flag, bits 30..0 the input index.

Plusargs: ``+EVENTS=<file>``, ``+NEVENTS=<n>``, ``+NIMAGES=<n>``, ``+TRACE=<file>``,
``+POTENTIALS=<0|1>``, ``+GAP=<percent>`` (idle cycles on the input stream),
``+BACKPRESSURE=<percent>`` (cycles the output stream is not ready), ``+RANDOMGAPS=<percent>``
(when non-zero: draw a new gap and backpressure share in ``0 .. percent`` for every image),
``+SEED=<n>``, ``+MAXCYCLES=<n>`` (watchdog); with a rewiring unit in the core (see
:func:`harness_verilog`) ``+SPLIT=<n>``, ``+RWK<l>=<k>`` per layer and ``+RWSEED=<hex>``.

Rewire phase (only when ``SPLIT`` is given and the core has the rewiring unit): after image
``SPLIT - 1`` has completed, the harness holds the input stream, asks the core to rewire every
layer ``l`` in turn with ``k = RWK<l>`` and seed ``RWSEED`` (waiting for ``rewire_done`` each time),
then reads every word of every memory through the host port, and resumes with image ``SPLIT``.

Trace lines (decimal, space separated):

- ``S layer image step neuron``: a hidden-layer spike;
- ``P layer image step neuron potential``: a tap sample (only with ``+POTENTIALS=1``);
- ``O image index value``: an output accumulator;
- ``D image prediction <counters in counter_names(model) order>``: an inference completed;
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
from esl_hw.rtl_gen import counter_names
from esl_hw.rtl_gen.memory_map import READ_LATENCY
from esl_hw.rtl_gen.plan import CorePlan, as_plan, unsigned_bits

HARNESS_TOP = "esl_cosim_top"
CORE_NAME = "snn_core"
EOS_BIT = 1 << 31
DEFAULT_CAPACITY = 1 << 18
#: Environment variable naming the testbench configuration (JSON) for :mod:`esl_hw.sim.testbench`.
CONFIG_ENV = "ESL_COSIM_CONFIG"


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


def _tap_block(layer: int, v_bits: int, lanes: int) -> str:
    tap = f"tap{layer}"
    blocks = []
    for lane in range(lanes):
        low = lane * v_bits
        blocks.append(f"""
  wire signed [{v_bits - 1}:0] {tap}_potential{lane} = {tap}_potential[{low + v_bits - 1}:{low}];
  wire [31:0] {tap}_neuron{lane} = {tap}_group * {lanes} + {lane};
  always @(posedge clk) if (!rst && {tap}_valid[{lane}]) begin
    if ({tap}_spike[{lane}])
      $fwrite(fd, "S {layer} %0d %0d %0d\\n", image, {tap}_step, {tap}_neuron{lane});
    if (trace_potentials != 0)
      $fwrite(fd, "P {layer} %0d %0d %0d %0d\\n",
              image, {tap}_step, {tap}_neuron{lane}, {tap}_potential{lane});
  end""")
    return "".join(blocks)


def _host_block(plan: CorePlan) -> tuple[list[str], list[str], str, str]:
    """Wires, core connections, declarations and the clocked sequencer (a statement of the main
    ``always`` block) of the host port and the rewire phase; no sequencer without the core's
    rewiring unit."""
    regions, shape = plan.regions, plan.bus_shape

    def delays(name: str) -> str:
        """``name`` (the accepted read) and its copies ``name_q1`` .. delayed up to host_rvalid."""
        return ", ".join([f"{name} = 0", *(f"{name}_q{i} = 0" for i in range(1, READ_LATENCY))])

    wires = [
        "  wire host_ready, host_rvalid, core_idle;",
        f"  wire [{shape.data_bits - 1}:0] host_rdata;",
        "  reg host_valid = 1'b0;",
        f"  reg [{shape.id_bits - 1}:0] host_mem = 0, {delays('rd_mem')};",
        f"  reg [{shape.addr_bits - 1}:0] host_addr = 0, {delays('rd_addr')};",
    ]
    connections = [
        ".idle(core_idle)",
        ".host_valid(host_valid)",
        ".host_write(1'b0)",
        ".host_mem(host_mem)",
        ".host_addr(host_addr)",
        f".host_wdata({shape.data_bits}'d0)",
        ".host_ready(host_ready)",
        ".host_rvalid(host_rvalid)",
        ".host_rdata(host_rdata)",
    ]
    if not plan.rewiring:
        return wires, connections, "", ""
    layers = len(plan)
    wires += [
        "  wire rewire_busy, rewire_done, rewire_error;",
        "  wire [31:0] rewire_state;",
        "  reg rewire_start = 1'b0;",
        f"  reg [{unsigned_bits(layers - 1) - 1}:0] rewire_layer = 0;",
        "  reg [31:0] rewire_k = 0, rewire_seed = 32'hACE1;",
        "  integer split;",
        "  reg [2:0] phase = 0;",
        "  reg [7:0] drain = 0;",
        *(f"  reg [31:0] rw_k{layer} = 0;" for layer in range(layers)),
    ]
    connections += [
        ".rewire_start(rewire_start)",
        ".rewire_layer(rewire_layer)",
        ".rewire_k(rewire_k)",
        ".rewire_seed(rewire_seed)",
        ".rewire_busy(rewire_busy)",
        ".rewire_done(rewire_done)",
        ".rewire_error(rewire_error)",
        ".rewire_state(rewire_state)",
    ]
    depths = "\n".join(f"      {region.id}: depth_of = {region.depth};" for region in regions)
    ks = "\n".join(f"      {layer}: k_of = rw_k{layer};" for layer in range(layers))
    plusargs = "\n".join(
        f'    if (!$value$plusargs("RWK{layer}=%d", rw_k{layer})) rw_k{layer} = 0;' for layer in range(layers)
    )
    block = f"""
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
    last = READ_LATENCY - 1
    chain = [
        (f"{name}_q{i}", f"{name}_q{i - 1}" if i > 1 else name)
        for name in ("rd_mem", "rd_addr")
        for i in range(1, READ_LATENCY)
    ]
    shifts = "\n".join(f"    {target} <= {source};" for target, source in chain)
    sequencer = f"""
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
          if (rewire_layer == {layers - 1}) begin
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
          if (host_mem == {len(regions) - 1}) begin
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
    return wires, connections, block, sequencer


def harness_verilog(
    model: CorePlan | Model, capacity: int = DEFAULT_CAPACITY, lanes: int | None = None
) -> str:
    """Verilog text of the harness top ``esl_cosim_top`` for the core of ``model`` (a
    :class:`~esl_hw.rtl_gen.plan.CorePlan`, or a model on ``lanes`` lanes, by default its own)."""
    plans = as_plan(model, lanes)
    model, lanes = plans.model, plans.lanes
    host_wires, host_connections, host_block, sequencer = _host_block(plans)
    rewiring = bool(sequencer)
    in_bits = plans[0].in_index_bits
    out_plan = plans[-1]
    counters = counter_names(model)
    wires = [
        f"  wire [{out_plan.out_index_bits + out_plan.acc_bits}:0] out_payload;",
        f"  wire [{out_plan.out_index_bits - 1}:0] prediction;",
        "  wire out_valid, core_done, ev_ready;",
    ]
    connections = [
        ".clk(clk)",
        ".rst(rst)",
        ".events__valid(ev_valid)",
        ".events__ready(ev_ready)",
        ".events__payload(ev_payload)",
        ".outputs__valid(out_valid)",
        ".outputs__ready(out_ready)",
        ".outputs__payload(out_payload)",
        ".done(core_done)",
        ".prediction(prediction)",
    ]
    wires += host_wires
    connections += host_connections
    taps = [host_block]
    for plan in plans[:-1]:
        tap = f"tap{plan.index}"
        wires.append(f"  wire [{lanes - 1}:0] {tap}_valid, {tap}_spike;")
        wires.append(f"  wire [{plan.local_bits - 1}:0] {tap}_group;")
        wires.append(f"  wire [{max(1, (model.timesteps - 1).bit_length()) - 1}:0] {tap}_step;")
        wires.append(f"  wire [{lanes * plan.layer.v_bits - 1}:0] {tap}_potential;")
        for field in ("valid", "group", "step", "potential", "spike"):
            connections.append(f".{tap}_{field}({tap}_{field})")
        taps.append(_tap_block(plan.index, plan.layer.v_bits, lanes))
    for name in counters:
        wires.append(f"  wire [31:0] perf_{name};")
        connections.append(f".perf_{name}(perf_{name})")
    value_lo = out_plan.out_index_bits
    value_hi = value_lo + out_plan.acc_bits - 1
    counter_format = " ".join("%0d" for _ in counters)
    counter_args = ", ".join(f"perf_{name}" for name in counters)
    resume = "waiting <= 1'b0;"
    if rewiring:  # after image SPLIT-1 the rewire phase runs; it resumes the stream when done
        resume = "if (image + 1 == split) phase <= 1; else waiting <= 1'b0;"
    return f"""`timescale 1ns/1ps
// Generated by esl_hw.sim.harness: self-clocked co-simulation top for {CORE_NAME}.
module {HARNESS_TOP};
  localparam CAPACITY = {capacity};
  localparam STEPS = {model.timesteps};
  reg clk = 1'b0;
  always #5 clk = ~clk;
  // rst rises at 1 ps (an event, unlike an initialiser): every always @* block of the core that
  // reads rst is evaluated under reset, so no register keeps an X from time 0 (Icarus)
  reg rst = 1'b0;
  initial #0.001 rst = 1'b1;
  reg done = 1'b0;
  reg [31:0] events [0:CAPACITY-1];
  reg [8*1024-1:0] events_file, trace_file;
  integer fd, n_events, n_images, gap_pct, backpressure_pct, trace_potentials, seed, max_cycles;
  integer random_gaps;
  reg [31:0] ev_pos = 0, image = 0, markers = 0, cycle = 0, rnd = 32'h1234567;
  reg running = 1'b0, waiting = 1'b0, report_pending = 1'b0, idle = 1'b0, out_ready = 1'b1;
  wire [31:0] ev_word = events[ev_pos[{(capacity - 1).bit_length() - 1}:0]];
  wire ev_valid = running && !waiting && !idle && (ev_pos < n_events);
  wire [{in_bits}:0] ev_payload = {{ev_word[31], ev_word[{in_bits - 1}:0]}};
  // explicit signed wires: Verilator mis-sizes $signed(part-select) inside $fwrite
  wire [{value_lo - 1}:0] out_index = out_payload[{value_lo - 1}:0];
  wire signed [{value_hi - value_lo}:0] out_value = out_payload[{value_hi}:{value_lo}];
{chr(10).join(wires)}

  {CORE_NAME} core ({", ".join(connections)});

  function [31:0] xorshift32(input [31:0] x);
    reg [31:0] y;
    begin
      y = x ^ (x << 13);
      y = y ^ (y >> 17);
      xorshift32 = y ^ (y << 5);
    end
  endfunction

  initial begin
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
    rnd = seed | 1;
    if (n_events > 0) $readmemh(events_file, events, 0, n_events - 1);
    fd = $fopen(trace_file, "w");
    // leave reset on a falling edge: no race with the logic clocked on the rising edge
    repeat (4) @(negedge clk);
    rst = 1'b0;
    running = 1'b1;
  end

  always @(posedge clk) if (running && !done) begin
    cycle <= cycle + 1;
    rnd <= xorshift32(rnd);
    if (!ev_valid || ev_ready) idle <= (rnd[15:0] % 100) < gap_pct;
    out_ready <= (rnd[31:16] % 100) >= backpressure_pct;
    if (ev_valid && ev_ready) begin
      ev_pos <= ev_pos + 1;
      if (ev_word[31]) begin
        if (markers == STEPS - 1) begin
          markers <= 0;
          waiting <= 1'b1;
        end else markers <= markers + 1;
      end
    end
    if (out_valid && out_ready)
      $fwrite(fd, "O %0d %0d %0d\\n", image, out_index, out_value);
    // prediction and counters are registered: report them the cycle after done
    report_pending <= core_done;
    if (report_pending) begin
      $fwrite(fd, "D %0d %0d {counter_format}\\n", image, prediction, {counter_args});
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
    end
{sequencer}
    if (cycle == max_cycles) begin
      $fwrite(fd, "X %0d\\n", cycle);
      $fclose(fd);
      done <= 1'b1;
    end
  end
{"".join(taps)}
endmodule
"""
