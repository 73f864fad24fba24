"""FPGA flow for esl-hw: synthesis and place-and-route reports, the UART host link and board tops.

Public entry points: :func:`synthesize` (``esl-hw synth``), :data:`TARGETS`, and the host link in
:mod:`esl_hw.fpga.protocol`, :mod:`esl_hw.fpga.driver` and :mod:`esl_hw.fpga.boards`.
"""

from esl_hw.fpga.synth import DoesNotFit, SynthReport, TimingFailure, synthesize
from esl_hw.fpga.targets import TARGETS, Target, get_target

__all__ = ["TARGETS", "DoesNotFit", "SynthReport", "Target", "TimingFailure", "get_target", "synthesize"]
