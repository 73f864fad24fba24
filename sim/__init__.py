"""cocotb co-simulation of the generated core against the reference model.

Public entry points: :func:`run_cosim`, :class:`CosimResult`, :func:`sim_report` (the ``sim.json``
dictionary).
"""

from esl_hw.sim.report import report_rows, sim_report
from esl_hw.sim.runner import CosimResult, run_cosim

__all__ = ["CosimResult", "report_rows", "run_cosim", "sim_report"]
