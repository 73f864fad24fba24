"""esl-hw: sparse spiking neural networks from ESL training to bit-exact FPGA cores.

The core package (this folder) imports only numpy and pyyaml, and never a stage, so the reference
model loads fast inside a simulator's Python. The stages live in subpackages:
``esl_hw.train`` (torch), ``esl_hw.rtl_gen`` (amaranth), ``esl_hw.sim`` (cocotb), ``esl_hw.fpga``;
the command line and each stage's command code in ``esl_hw.app`` (the README's "Import rules").
"""

from esl_hw.artifact import FORMAT_VERSION, Encoder, Layer, Model
from esl_hw.artifact_io import load_model, save_model
from esl_hw.errors import EslError

__all__ = [
    "FORMAT_VERSION",
    "Encoder",
    "EslError",
    "Layer",
    "Model",
    "load_model",
    "save_model",
]
__version__ = "0.1.0"
