"""cocotb co-simulation of the generated core against the reference model.

Public entry points: :func:`run_cosim`, :class:`CosimResult`, :func:`sim_report` (the ``sim.json``
dictionary). They are imported on first use (:func:`esl_hw.lazy.lazy_exports`), so
:mod:`esl_hw.sim.report` loads without amaranth or cocotb.
"""

from esl_hw.lazy import lazy_exports

__all__ = ["CosimResult", "report_rows", "run_cosim", "sim_report"]
__getattr__, __dir__ = lazy_exports(
    __name__, {"report": ("report_rows", "sim_report"), "runner": ("CosimResult", "run_cosim")}
)
