"""cocotb co-simulation of the generated core against the reference model.

Public entry points: :func:`run_cosim`, :class:`CosimResult`, :func:`sim_report` (the ``sim.json``
dictionary) and :func:`compare_report` (float, integer and RTL accuracy).
"""

from esl_hw.sim.report import compare_markdown, compare_report, report_rows, sim_report
from esl_hw.sim.runner import CosimResult, run_cosim

__all__ = ["CosimResult", "compare_markdown", "compare_report", "report_rows", "run_cosim", "sim_report"]
