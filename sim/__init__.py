"""cocotb co-simulation of the generated core against the reference model.

Public entry points: :func:`run_cosim` and :class:`CosimResult`.
"""

from esl_hw.sim.runner import CosimResult, run_cosim

__all__ = ["CosimResult", "run_cosim"]
