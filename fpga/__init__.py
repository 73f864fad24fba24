"""FPGA flow for esl-hw: synthesis and place-and-route reports, the UART host link and board tops.

Public entry points: :func:`synthesize` (``esl-hw synth``), :data:`TARGETS`, and the host link in
:mod:`esl_hw.fpga.protocol`, :mod:`esl_hw.fpga.driver` and :mod:`esl_hw.fpga.boards`. They are
imported on first use (:func:`esl_hw.lazy.lazy_exports`), so :mod:`esl_hw.fpga.fit` loads without
amaranth.
"""

from esl_hw.lazy import lazy_exports

__all__ = ["TARGETS", "DoesNotFit", "SynthReport", "Target", "TimingFailure", "get_target", "synthesize"]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "synth": ("DoesNotFit", "SynthReport", "TimingFailure", "synthesize"),
        "targets": ("TARGETS", "Target", "get_target"),
    },
)
