"""Knowledge distillation from a trained teacher run (``train.teacher``), for the LIF MLP.

The teacher is a completed ``esl-hw train`` run of ``model.kind: lif`` with the student's inputs and
classes (its own time steps, density and widths). Before training, it scores every training image
once, on the spikes of its own encoder and time steps, in QAT mode (its hardware integers); its soft
targets are ``p = softmax(z_teacher / τ)``. The student's loss per batch is

    L = (1 − a) · CE(z, y) + a · τ² · KL(p ‖ softmax(z / τ))

(Hinton, Vinyals & Dean 2015, arXiv:1503.02531) with ``τ = train.teacher_temperature`` and
``a = train.teacher_weight``. The student's forward, its integer weights and the contract are those
of any other run; only the targets it learns from change. The checkpoint is read with
``torch.load(weights_only=True)`` like every other.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from esl_hw.errors import EslError
from esl_hw.train.model import encode_batch

#: Training images the teacher scores per forward (bounds the memory of its spikes).
CHUNK = 2048


def teacher_targets(
    path: str, images: np.ndarray, n_inputs: int, classes: int, temperature: float
) -> torch.Tensor:
    """Soft targets ``softmax(z_teacher / τ)`` ``[N, classes]`` (float32) of the teacher run at
    ``path`` for uint8 ``images [N, n_inputs]``; one-line :class:`EslError` for a teacher that is not
    a completed LIF run or does not fit the data."""
    from esl_hw.train.export import load_checkpoint, net_from_checkpoint  # export imports this package

    try:
        net, config = net_from_checkpoint(load_checkpoint(path))
    except EslError as error:
        raise EslError(f"train.teacher: {error}") from None
    if (net.sizes[0], net.sizes[-1]) != (n_inputs, classes):
        raise EslError(
            f"train.teacher: the run at {path} maps {net.sizes[0]} inputs to {net.sizes[-1]} classes, "
            f"the data has {n_inputs} inputs and {classes} classes"
        )
    targets = torch.empty(len(images), classes, dtype=torch.float32)
    with torch.no_grad():
        for first in range(0, len(images), CHUNK):
            spikes = encode_batch(images[first : first + CHUNK], config.model.timesteps)
            logits = net(spikes, mode="qat")
            targets[first : first + CHUNK] = torch.softmax(logits / temperature, dim=1)
    return targets


def distillation_loss(
    logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor, temperature: float, weight: float
) -> torch.Tensor:
    """``(1 − a) · CE(z, y) + a · τ² · KL(p ‖ softmax(z / τ))`` averaged over the batch."""
    hard = nn.functional.cross_entropy(logits, labels)
    log_student = nn.functional.log_softmax(logits / temperature, dim=1)
    soft = nn.functional.kl_div(log_student, targets, reduction="batchmean")
    return (1.0 - weight) * hard + weight * temperature**2 * soft
