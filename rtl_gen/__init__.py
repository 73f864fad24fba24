"""Amaranth gateware for esl-hw: an event-driven LIF core generated from a model artifact.

Public entry points: :class:`SNNCore`, :func:`emit_verilog`, :func:`memory_bits`.
"""

from esl_hw.rtl_gen.core import SNNCore, counter_names, emit_verilog
from esl_hw.rtl_gen.plan import LIMITS, memory_bits

__all__ = ["LIMITS", "SNNCore", "counter_names", "emit_verilog", "memory_bits"]
