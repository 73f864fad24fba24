"""Amaranth gateware for esl-hw: an event-driven LIF core generated from a model artifact.

Public entry points: :class:`SNNCore`, :func:`emit_verilog`, :func:`memory_bits`,
:func:`dense_memory_bits`, :func:`check_lanes`. They are imported on first use
(:func:`esl_hw.lazy.lazy_exports`), so :mod:`esl_hw.rtl_gen.plan` loads without amaranth.
"""

from esl_hw.lazy import lazy_exports

__all__ = [
    "LIMITS",
    "SNNCore",
    "check_lanes",
    "counter_names",
    "dense_memory_bits",
    "emit_verilog",
    "memory_bits",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "core": ("SNNCore", "counter_names", "emit_verilog"),
        "plan": ("LIMITS", "check_lanes", "dense_memory_bits", "memory_bits"),
    },
)
