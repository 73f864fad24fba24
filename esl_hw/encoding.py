"""Deterministic rate encoder from 8-bit pixels to input spikes (see docs/semantics.md).

    s[t][j] = floor((phase0 + (t+1)·x_j) / 256) − floor((phase0 + t·x_j) / 256)

A phase accumulator per input, starting at ``phase0``, that fires and subtracts 256 whenever it
reaches 256. Every backend receives the spikes this module computes.
"""

from __future__ import annotations

import numpy as np

from esl_hw.artifact import Encoder


def encode(images: np.ndarray, timesteps: int, encoder: Encoder | None = None) -> np.ndarray:
    """Encode ``images`` (``[..., n_in]`` uint8) into spikes ``[T, ..., n_in]`` (bool)."""
    encoder = encoder or Encoder()
    pixels = np.asarray(images)
    if pixels.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {pixels.dtype}")
    x = pixels.astype(np.int64)
    steps = np.arange(timesteps + 1, dtype=np.int64).reshape((-1,) + (1,) * x.ndim)
    phase = (encoder.phase0 + steps * x) >> 8
    return (phase[1:] - phase[:-1]).astype(bool)


def spike_events(spikes: np.ndarray) -> list[list[int]]:
    """Per step, the ascending input indices that spike, for one sample ``[T, n_in]``."""
    return [np.flatnonzero(step).tolist() for step in np.asarray(spikes, dtype=bool)]
