"""The limits of the model artifact and of the training configuration, in one table.

Every limit is checked where the value is read, before anything is allocated from it, and a value
beyond it is refused with :class:`esl_hw.errors.EslError` quoting the value.

Artifact (``esl_hw.artifact``; ``docs/semantics.md``, "Limits"):

=============================  ===============  ==================================================
name                           value            why
=============================  ===============  ==================================================
``TIMESTEPS``                  1 .. 4096        the hardware plan's limit
``W_BITS``                     2 .. 32          weights are stored as int32
``V_BITS``                     2 .. 48          the hardware plan's potential width
``PHASE0``                     0 .. 255         the rate encoder's phase is one byte
``MAX_LAYERS``                 64               every layer is a pipeline stage of the core
``MAX_INPUTS_PER_LAYER``       2^20             the hardware plan's limit on ``n_in``
``MAX_NEURONS_PER_LAYER``      2^20             the hardware plan's limit on ``n_out``
``MAX_SYNAPSES_PER_LAYER``     2^26             memory, below
``MAX_SYNAPSES``               2^27             memory, below (all layers together)
``MAX_DENSE_CELLS``            2^28             ``Layer.dense_weight`` (the reference's matrix)
``BIAS_BITS``                  32               biases are stored as int32
``MAX_ACC_BITS``               64               an output accumulator over ``T`` steps, bias
                                                included, must fit int64
=============================  ===============  ==================================================

With ``n_in <= 2^20`` and ``|w| <= 2^31`` every current is below ``2^51`` in magnitude (exact in the
float64 matrix product of the reference) and an output accumulator over 4096 steps stays inside
int64 (``|acc| <= 2^12 · 2^20 · 2^31 = 2^63``, reached only by ``-2^63``); a bias can add ``2^12 ·
2^31`` more, so a model whose accumulator needs more than ``MAX_ACC_BITS`` is refused. A loaded
layer keeps ``col`` and ``weight`` as int64, 16 bytes a synapse: 2 GiB at ``MAX_SYNAPSES``, plus the
temporaries of validation (about as much again for the largest layer). A dense ``[n_in, n_out]``
int64 matrix of ``MAX_DENSE_CELLS`` is 2 GiB.

Training configuration (``esl_hw.train.config``), for the MLP kinds ``n_in - hidden… - classes`` (input
size and class count from the data, :func:`esl_hw.train.config.check_mlp_shape`):

=============================  ===============  ==================================================
``TRAIN_W_BITS``               2 .. 24          float32 weights hold the integer grid
                                                ``±(2^23 − 1)`` exactly (24-bit significand)
``TRAIN_MAX_DENSE_WEIGHTS``    2^27             dense float32 weights, masks, gradients and Adam
                                                moments: about 2.5 GiB at the limit
``SEED``                       0 .. 2^32 − 1    numpy's legacy seeding takes 32 bits
``TRAIN_MAX_EPOCHS``           100000           far beyond any run; a typo must not loop for days
``TRAIN_MAX_BATCH_SIZE``       65536            a whole MNIST training set in one batch
``TRAIN_MAX_DELTA_T``          2^31 − 1         larger is the same as never rewiring
``TRAIN_MAX_THREADS``          1024             torch would try to start that many threads
``TRAIN_MAX_T_MAX``            80.0             ``exp(t_max)`` must stay finite in float32 (88.7)
=============================  ===============  ==================================================

The generated core (``esl_hw.rtl_gen.plan``, ``esl_hw.rtl_gen.hardware``); a model or an option
beyond them is refused before any gateware is built:

=============================  ===============  ==================================================
``LANES``                      1 .. 64          powers of two (:func:`check_lanes`); the same rule
                                                for the training config's ``sparsity.lanes``, the
                                                artifact's ``metadata.rewiring.lanes`` and every
                                                hardware stage: what trains also builds
``CORE_MAX_SYNAPSES``          2^24             synapses per layer: the pointers and the rewiring
                                                unit's counters
``CORE_MAX_CURRENT_BITS``      64               a LIF layer's exact current sum
``CORE_MAX_ACC_BITS``          64               the output layer's exact accumulator
``REWIRE_MAX_W_BITS``          8                the rewiring unit's histogram has
                                                ``2^(w_bits-1) + 1`` counters
``FIFO_DEPTH``                 2 .. 65536       every FIFO depth given as an option
=============================  ===============  ==================================================

Neurons and inputs per layer, timesteps and the potential width are the artifact's limits above
(``MAX_NEURONS_PER_LAYER``, ``MAX_INPUTS_PER_LAYER``, ``TIMESTEPS``, ``V_BITS``): the core accepts
every artifact within them.

Rewiring metadata: ``REWIRE_LANES`` (``LANES``) and ``LFSR_STATES`` 1 .. 2^32 − 1, as
``esl_hw.train.hardware_rewiring`` and ``esl_hw.rewiring`` accept them.

The numpy reference (``esl_hw.reference``) works in batches sized so that its dense float64
weights plus the batch's spikes, potentials and currents stay within ``REFERENCE_MEMORY_BYTES``
(4 GiB); a model whose weights and one sample alone exceed it is refused before anything is
allocated.

Datasets (``esl_hw.datasets``): at most ``DATA_MAX_BYTES`` (4 GiB) of data in one IDX file or NPZ
array, checked from the headers before it is read; at most ``MAX_INPUTS_PER_LAYER`` pixels per image
and ``MAX_NEURONS_PER_LAYER`` classes (what one layer of a model may have). The conv kinds read
the same folders (``data.dataset: images``, ``esl_hw.train.vision_data.load_images``) under the same
limits, counting every channel's value as a pixel; VGGSNN also needs ``2^pools`` (16) pixels a side.

YAML files (``esl_hw.safe_yaml``): at most ``MAX_YAML_BYTES`` (16 MiB) and ``MAX_YAML_DEPTH`` (64)
levels of nesting.
"""

from __future__ import annotations

from typing import Any

from esl_hw.errors import EslError

TIMESTEPS = (1, 4096)
W_BITS = (2, 32)
V_BITS = (2, 48)
PHASE0 = (0, 255)
MAX_LAYERS = 64
MAX_INPUTS_PER_LAYER = 1 << 20
MAX_NEURONS_PER_LAYER = 1 << 20
MAX_SYNAPSES_PER_LAYER = 1 << 26
MAX_SYNAPSES = 1 << 27
MAX_DENSE_CELLS = 1 << 28
BIAS_BITS = 32
MAX_ACC_BITS = 64

TRAIN_W_BITS = (2, 24)
TRAIN_MAX_DENSE_WEIGHTS = 1 << 27
SEED = (0, (1 << 32) - 1)
TRAIN_MAX_EPOCHS = 100_000
TRAIN_MAX_BATCH_SIZE = 1 << 16
TRAIN_MAX_DELTA_T = (1 << 31) - 1
TRAIN_MAX_THREADS = 1024
TRAIN_MAX_T_MAX = 80.0

LANES = (1, 64)
MAX_LANES = LANES[1]
CORE_MAX_SYNAPSES = 1 << 24
CORE_MAX_CURRENT_BITS = 64
CORE_MAX_ACC_BITS = 64
REWIRE_MAX_W_BITS = 8
FIFO_DEPTH = (2, 1 << 16)

REWIRE_LANES = LANES
LFSR_STATES = (1, (1 << 32) - 1)

REFERENCE_MEMORY_BYTES = 4 << 30

DATA_MAX_BYTES = 4 << 30

MAX_YAML_BYTES = 16 << 20
MAX_YAML_DEPTH = 64

_SHOWN_CHARS = 60


def shown(value: Any) -> str:
    """``repr(value)`` cut to a readable length, for error messages (always one line)."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else f"{text[: _SHOWN_CHARS - 3]}..."


def is_int(value: Any) -> bool:
    """Whether ``value`` is a Python ``int`` (``bool`` is not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_range(value: Any, low: int, high: int, name: str) -> int:
    """``value`` if it is an ``int`` (not a ``bool``) in ``low .. high``; else :class:`EslError`.

    ``name`` starts the message, e.g. ``"model.yaml layer 0: n_out"`` gives
    ``model.yaml layer 0: n_out must be an integer in 1..1048576, got 1000000000``.
    """
    if not is_int(value) or not low <= value <= high:
        raise EslError(f"{name} must be an integer in {low}..{high}, got {shown(value)}")
    return value


def check_lanes(value: Any, name: str = "lanes") -> int:
    """``value`` if it is a power of two in ``LANES`` (1 .. 64); else :class:`EslError` showing it.

    The one rule for a lane count, wherever it is given: the training config (``sparsity.lanes``),
    the artifact's ``metadata.rewiring.lanes`` and every hardware stage.
    """
    low, high = LANES
    if is_int(value) and value > high:
        raise EslError(f"{name} = {value} exceeds the hardware limit {high} by {value - high}")
    if not is_int(value) or value < low:
        raise EslError(f"{name} must be a power of two in {low}..{high}, got {shown(value)}")
    if value & (value - 1):
        raise EslError(f"{name} must be a power of two, got {value}")
    return value
