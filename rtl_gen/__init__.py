"""Amaranth gateware for esl-hw: an event-driven LIF core generated from a model artifact.

Public entry points: :class:`SNNCore`, :func:`emit_verilog`, :func:`memory_bits`,
:func:`dense_memory_bits`, :func:`check_lanes`.
"""

from esl_hw.rtl_gen.core import SNNCore, counter_names, emit_verilog
from esl_hw.rtl_gen.plan import LIMITS, check_lanes, dense_memory_bits, memory_bits

__all__ = [
    "LIMITS",
    "SNNCore",
    "check_lanes",
    "counter_names",
    "dense_memory_bits",
    "emit_verilog",
    "memory_bits",
]
