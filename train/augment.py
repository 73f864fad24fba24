"""Random translation of training images (``data.augment_shift``), for the LIF MLP.

Each training image of a batch is moved by ``(dy, dx)``, each drawn uniformly from ``−s..s``
(``s = data.augment_shift``), the pixels moved in from outside being 0; the moved images are then
rate-encoded like any others. The draws of a batch come from a generator seeded with
``(seed, epoch, first sample of the batch)``, so a run, and a resumed one, sees the same images.
Validation, test and the exported model see the images as they are.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from esl_hw.errors import EslError
from esl_hw.train.model import encode_batch


def check_shift(shift: int, image_shape: tuple[int, ...]) -> tuple[int, int]:
    """``(H, W)`` of images of ``image_shape`` (``(H, W)`` or channels-last ``(H, W, C)``, ``C <= 4``)
    that can be moved by up to ``shift`` pixels; one-line :class:`EslError` otherwise."""
    if len(image_shape) not in (2, 3) or (len(image_shape) == 3 and image_shape[2] > 4):
        shape = image_shape or "(flat)"
        raise EslError(
            f"data.augment_shift needs images (height x width), the data's samples have shape {shape}"
        )
    height, width = image_shape[:2]
    if shift >= min(height, width):
        raise EslError(f"data.augment_shift={shift} must be smaller than the images' {height}x{width}")
    return int(height), int(width)


def shift_images(
    images: np.ndarray, image_shape: tuple[int, ...], shift: int, rng: np.random.Generator
) -> np.ndarray:
    """``images [B, n]`` (flattened ``image_shape``), each moved by its own random ``(dy, dx)`` in
    ``−shift..shift``, zero fill; ``[B, n]`` of the same dtype."""
    count = len(images)
    if shift == 0 or count == 0:
        return images.copy()
    height, width = image_shape[:2]
    grid = images.reshape(count, height, width, -1)
    padded = np.pad(grid, ((0, 0), (shift, shift), (shift, shift), (0, 0)))
    dy, dx = rng.integers(-shift, shift + 1, size=(2, count))
    rows = (shift - dy)[:, None] + np.arange(height)[None, :]  # output row r reads input row r − dy
    cols = (shift - dx)[:, None] + np.arange(width)[None, :]
    moved = padded[np.arange(count)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return moved.reshape(count, -1)


def shifted_batches(
    images: np.ndarray, image_shape: tuple[int, ...], shift: int, timesteps: int
) -> Callable[[torch.Tensor, tuple[int, ...]], torch.Tensor]:
    """The training batches' inputs: spikes ``[T, B, n]`` of the images at ``index``, moved with the
    generator of ``key`` (see the module docstring)."""

    def batch(index: torch.Tensor, key: tuple[int, ...]) -> torch.Tensor:
        rng = np.random.default_rng(list(key))
        return encode_batch(shift_images(images[index.numpy()], image_shape, shift, rng), timesteps)

    return batch
