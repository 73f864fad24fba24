"""Deterministic rate encoder from 8-bit pixels to input spikes (see docs/semantics.md).

    s[t][j] = floor((phase0 + (t+1)·x_j) / 256) − floor((phase0 + t·x_j) / 256)

A phase accumulator per input, starting at ``phase0``, that fires and subtracts 256 whenever it
reaches 256. Every backend receives the spikes this module computes.
"""

from __future__ import annotations

import numpy as np

from esl_hw.artifact import Encoder
from esl_hw.errors import EslError


def encode(images: np.ndarray, timesteps: int, encoder: Encoder | None = None) -> np.ndarray:
    """Encode ``images`` (``[..., n_in]`` uint8) into spikes ``[T, ..., n_in]`` (bool).

    One step at a time: beside the result, only arrays of the images' size are allocated.
    """
    encoder = encoder or Encoder()
    pixels = np.asarray(images)
    if pixels.dtype != np.uint8:
        raise EslError(f"encoder: images must be uint8 pixels, got {pixels.dtype}")
    if isinstance(timesteps, bool) or not isinstance(timesteps, int | np.integer) or timesteps < 1:
        raise EslError(f"encoder: timesteps must be a positive integer, got {timesteps!r}")
    x = pixels.astype(np.int64)
    spikes = np.empty((int(timesteps), *x.shape), dtype=bool)
    previous = np.full(x.shape, encoder.phase0 >> 8, dtype=np.int64)
    for step in range(int(timesteps)):
        current = (encoder.phase0 + (step + 1) * x) >> 8
        np.not_equal(current, previous, out=spikes[step])  # x < 256: the phase wraps at most once
        previous = current
    return spikes


def spike_events(spikes: np.ndarray) -> list[list[int]]:
    """Per step, the ascending input indices that spike, for one sample ``[T, n_in]``."""
    return [np.flatnonzero(step).tolist() for step in np.asarray(spikes, dtype=bool)]
