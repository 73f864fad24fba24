"""A NIR graph file run by snnTorch's own importer (``snntorch.import_from_nir``), on rate-encoded images.

This is the third-party reading of a graph :mod:`esl_hw.interchange.nir_write` wrote: ``nir.read``
loads the file, snnTorch builds its modules (``torch.nn.Linear``, ``snn.Leaky`` with β = 1 − dt/τ, a
threshold of ``v_threshold`` and reset to zero) and nirtorch's executor runs them one step at a time.
The input is esl-hw's rate encoding of the images (NIR has no encoder); the output of each step is
summed over the ``T`` steps and the prediction is its argmax (ties to the lowest index).

snnTorch 0.9.1's importer resets every LIF to zero (it ignores the subtraction NIR 1.0.4's equations
state), and its ``Synaptic`` (CubaLIF) cannot run with the immediate reset it asks for: a model with
``reset: subtract`` or a ``cubalif`` layer does not come back exactly (docs/nir.md).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os

import numpy as np

from esl_hw.artifact import Encoder
from esl_hw.encoding import encode
from esl_hw.errors import EslError
from esl_hw.interchange.extra import require

log = logging.getLogger(__name__)
BATCH = 500


def load_snntorch(path: str | os.PathLike[str]):
    """The snnTorch network of the NIR file ``path`` (its importer's prints go to the debug log)."""
    nir = require("nir", "running a NIR graph in snnTorch")
    snntorch = require("snntorch", "running a NIR graph in snnTorch")
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            network = snntorch.import_from_nir(nir.read(str(path)))
    except Exception as error:  # snnTorch asserts and raises all kinds on graphs it cannot map
        raise EslError(
            f"{path}: snnTorch cannot import this graph ({type(error).__name__}: {error})"
        ) from None
    finally:
        if printed.getvalue():
            log.debug("snntorch.import_from_nir printed: %s", printed.getvalue().strip())
    return network


def snntorch_outputs(
    path: str | os.PathLike[str], images: np.ndarray, timesteps: int, encoder: Encoder | None = None
) -> np.ndarray:
    """The graph's output summed over ``timesteps`` steps, per image (``[N, n_outputs]`` float)."""
    torch = require("torch", "running a NIR graph in snnTorch")
    network = load_snntorch(path)
    outputs = []
    with torch.no_grad():
        for start in range(0, len(images), BATCH):
            spikes = encode(images[start : start + BATCH], timesteps, encoder or Encoder())
            inputs = torch.from_numpy(spikes.astype(np.float32))
            state, total = None, 0
            for step in inputs:
                try:
                    output, state = network(step, state)
                except Exception as error:  # e.g. snnTorch 0.9.1's Synaptic (CubaLIF) fails here
                    raise EslError(
                        f"{path}: snnTorch cannot run this graph ({type(error).__name__}: {error})"
                    ) from None
                total = total + output.double()
            outputs.append(total.numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, 0))


def snntorch_predictions(
    path: str | os.PathLike[str], images: np.ndarray, timesteps: int, encoder: Encoder | None = None
) -> np.ndarray:
    """Predicted class per image: the argmax of :func:`snntorch_outputs`."""
    return np.argmax(snntorch_outputs(path, images, timesteps, encoder), axis=1)
