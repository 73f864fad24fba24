"""End-to-end co-simulation of the UART host link: the host driver against the gateware, bit-serial.

:func:`run_link_cosim` emits :class:`~esl_hw.fpga.hostlink.HostLink` for a model plus a small
clock-making wrapper, builds it with cocotb's runner (Icarus by default, or Verilator) and runs
the cocotb test module :mod:`esl_hw.fpga.link_testbench`. That module drives the link's ``rx`` pin
and samples its ``tx`` pin bit by bit (a simulated UART at ``divisor`` cycles per bit) and runs
the real :class:`~esl_hw.fpga.driver.HostDriver` in a cocotb bridge thread over it: malformed
frames, overflow, timeout and a refused rewire first, then every image checked bit for bit
against the reference, then every memory read through READ_MEMORY against
:func:`esl_hw.rtl_gen.memory_map.memory_images`, a WRITE_MEMORY (and a bad-CRC one that must write
nothing), and a REWIRE of every layer read back against :func:`esl_hw.rewiring.rewire_model`. It
returns the JSON report the test writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from esl_hw.artifact import Model
from esl_hw.artifact_io import save_model
from esl_hw.errors import EslError

#: Environment variable naming the link test's configuration (JSON).
LINK_CONFIG_ENV = "ESL_LINK_CONFIG"
LINK_TOP = "esl_link_tb"
LINK_CORE = "esl_link"
TEST_MODULE = "esl_hw.fpga.link_testbench"
#: Clock period of the wrapper in ns.
CLOCK_NS = 10


def wrapper_verilog() -> str:
    """The self-clocked wrapper: clock, reset, an ``rx`` register the testbench drives, ``tx``."""
    return f"""`timescale 1ns/1ps
module {LINK_TOP};
  reg clk = 1'b0;
  always #{CLOCK_NS // 2} clk = ~clk;
  reg rst = 1'b1;
  reg rx = 1'b1;
  wire tx, running, error;
  initial begin
    repeat (4) @(negedge clk);
    rst = 1'b0;
  end
  {LINK_CORE} link (.clk(clk), .rst(rst), .rx(rx), .tx(tx), .running(running), .error(error));
endmodule
"""


def run_link_cosim(
    model: Model,
    images: np.ndarray,
    simulator: str = "icarus",
    build_dir: str | os.PathLike[str] | None = None,
    divisor: int = 8,
    event_depth: int = 16,
    timeout: int = 4096,
) -> dict:
    """Co-simulate the host link of ``model`` driven by the host driver; return the test's report.

    Parameters
    ----------
    model : Model
        The artifact.
    images : numpy.ndarray
        ``[N, n_in]`` uint8 images run through the link and checked against the reference.
    simulator : str
        ``"icarus"`` or ``"verilator"``.
    build_dir : path or None
        Folder for the run and its report (a temporary folder when None); the build goes to the
        build cache (:func:`esl_hw.sim.build_cache.cached_build`) and is reused by later calls.
    divisor : int
        UART clock cycles per bit.
    event_depth : int
        Event buffer depth (small, so that credit flow control is exercised).
    timeout : int
        Inter-byte timeout of the link in cycles.

    Returns
    -------
    dict
        ``ok``, ``checks`` (error-handling checks by name: True when the expected error frame came
        back and the link kept working), and ``run`` (:func:`esl_hw.fpga.driver.run_images`).
    """
    from amaranth.back import verilog
    from cocotb_tools.runner import get_runner

    from esl_hw.fpga.hostlink import HostLink
    from esl_hw.rtl_gen import counter_names
    from esl_hw.sim.build import TIMESCALE, simulator_environment
    from esl_hw.sim.build_cache import cached_build, writable_cache

    images = np.asarray(images)
    if images.ndim != 2 or images.shape[1] != model.n_inputs or images.dtype != np.uint8:
        raise EslError(f"images must be uint8 [N, {model.n_inputs}], got {images.dtype} {list(images.shape)}")
    link = HostLink(model, divisor=divisor, event_depth=event_depth, timeout=timeout)
    with contextlib.ExitStack() as stack:
        if build_dir is None:
            build_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="esl-link-"))
        folder = Path(build_dir).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        core_verilog = verilog.convert(link, name=LINK_CORE, emit_src=False)

        def write_sources(sources: Path) -> list[Path]:
            (sources / f"{LINK_CORE}.v").write_text(core_verilog)
            (sources / f"{LINK_TOP}.v").write_text(wrapper_verilog())
            return [sources / f"{LINK_CORE}.v", sources / f"{LINK_TOP}.v"]

        model_dir = save_model(model, folder / "model", overwrite=True)
        np.save(folder / "images.npy", images)
        report_path = folder / "report.json"
        report_path.unlink(missing_ok=True)
        config = {
            "model": str(model_dir),
            "images": str(folder / "images.npy"),
            "report": str(report_path),
            "divisor": divisor,
            "clock_ns": CLOCK_NS,
            "timeout": timeout,
            "event_depth": event_depth,
            "counters": counter_names(model),
        }
        (folder / "config.json").write_text(json.dumps(config))
        cache = writable_cache()
        with simulator_environment(simulator, cache / "objcache"):
            runner = get_runner(simulator)
            started = time.perf_counter()
            build, _ = cached_build(simulator, LINK_TOP, write_sources, cache)
            try:
                runner.test(
                    test_module=TEST_MODULE,
                    hdl_toplevel=LINK_TOP,
                    hdl_toplevel_lang="verilog",
                    build_dir=build / "sim",
                    test_dir=folder,
                    extra_env={LINK_CONFIG_ENV: str(folder / "config.json")},
                    timescale=TIMESCALE,
                    log_file=folder / "sim.log",
                )
            except (SystemExit, Exception) as error:
                failure = f"{error.__class__.__name__}: {error}"
            else:
                failure = None
        if not report_path.is_file():
            log = folder / "sim.log"
            tail = log.read_text()[-3000:] if log.is_file() else ""
            raise EslError(f"link co-simulation wrote no report ({failure}); log tail:\n{tail}")
        report = json.loads(report_path.read_text())
        report["seconds"] = round(time.perf_counter() - started, 2)
        return report
