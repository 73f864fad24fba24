"""cocotb test module run inside the simulator: await the harness's ``done``, then check the trace.

No clock is driven from Python and nothing is awaited per cycle: the harness top
(:mod:`esl_hw.sim.harness`) runs by itself; this module awaits one rising edge of ``done``, reads
the trace and writes the JSON report that :func:`esl_hw.sim.runner.run_cosim` returns.

The environment variable ``ESL_COSIM_CONFIG`` names a JSON file with ``model`` (artifact folder),
``reference_model`` (artifact the checker compares against), ``images`` (``.npy``), ``trace``,
``report``, ``trace_potentials`` and ``lanes`` (the core's ``L``: the counters are checked too; left
out, they are not); with ``rewire`` (a rewire run,
:mod:`esl_hw.sim.rewire_cosim`) the reference model is the original one and the check covers
both halves, the rewire results and the memory read back.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from esl_hw.artifact_io import load_model
from esl_hw.sim.harness import CONFIG_ENV
from esl_hw.sim.rewire_cosim import check_rewire
from esl_hw.sim.trace import compare, parse_trace


def check(config: dict) -> dict:
    """Parse the trace named in ``config`` and compare it with the reference; write the report."""
    model = load_model(config["reference_model"])
    images = np.load(config["images"], allow_pickle=False)
    record = parse_trace(Path(config["trace"]), model, len(images))
    if "rewire" in config:
        report = check_rewire(config, model, images, record)
    else:
        potentials = config["trace_potentials"]
        report = compare(model, images, record, trace_potentials=potentials, lanes=config.get("lanes"))
    Path(config["report"]).write_text(json.dumps(report))
    return report


@cocotb.test()
async def cosim_check(dut) -> None:
    """Wait for the self-running harness, then check every sample bit for bit."""
    config = json.loads(Path(os.environ[CONFIG_ENV]).read_text())
    started = time.perf_counter()
    if not int(dut.done.value):
        await RisingEdge(dut.done)
    simulated = time.perf_counter() - started
    report = check(config)
    report["simulation_seconds"] = simulated
    Path(config["report"]).write_text(json.dumps(report))
    assert report["ok"], (
        f"{report['mismatches']} of {report['samples']} samples mismatch: {report['details'][:3]}"
    )
