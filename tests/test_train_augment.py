"""Tests for esl_hw.train.augment: random translation of training images, and a run that trains on
moved images through the unchanged loop, the same way every time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from esl_hw.errors import EslError
from esl_hw.train.augment import check_shift, shift_images, shifted_batches
from esl_hw.train.config import config_from_dict
from esl_hw.train.export import load_checkpoint
from esl_hw.train.loop import train
from esl_hw.train.model import encode_batch


def _moved(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``image [H, W, C]`` moved by ``(dy, dx)`` pixel by pixel, zero fill (the obvious way)."""
    out = np.zeros_like(image)
    height, width = image.shape[:2]
    for row in range(height):
        for col in range(width):
            if 0 <= row - dy < height and 0 <= col - dx < width:
                out[row, col] = image[row - dy, col - dx]
    return out


@pytest.mark.parametrize("shape", [(7, 5), (6, 6, 3)])
def test_each_image_moves_by_its_own_draw_with_zero_fill(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, size=(40, int(np.prod(shape))), dtype=np.uint8)
    moved = shift_images(images, shape, 2, np.random.default_rng(5))
    dy, dx = np.random.default_rng(5).integers(-2, 3, size=(2, 40))  # the draws shift_images makes
    assert moved.dtype == np.uint8 and moved.shape == images.shape
    assert len({(a, b) for a, b in zip(dy, dx, strict=True)}) > 5  # the images move differently
    for image, out, y, x in zip(images, moved, dy, dx, strict=True):
        grid = image.reshape(shape[0], shape[1], -1)
        assert np.array_equal(out, _moved(grid, int(y), int(x)).reshape(-1))
    assert np.array_equal(shift_images(images, shape, 0, np.random.default_rng(1)), images)


def test_the_same_key_gives_the_same_batch_and_another_key_another() -> None:
    images = np.random.default_rng(2).integers(0, 256, size=(30, 64), dtype=np.uint8)
    batch = shifted_batches(images, (8, 8), 3, timesteps=4)
    index = torch.tensor([4, 0, 17, 9])
    first, again, other = batch(index, (0, 1, 0)), batch(index, (0, 1, 0)), batch(index, (0, 2, 0))
    assert first.shape == (4, 4, 64) and first.dtype == torch.bool
    assert torch.equal(first, again) and not torch.equal(first, other)
    expected = shift_images(images[index.numpy()], (8, 8), 3, np.random.default_rng([0, 1, 0]))
    assert torch.equal(first, encode_batch(expected, 4))  # moved, then rate-encoded as any image


@pytest.mark.parametrize(
    ("shift", "shape", "fragment"),
    [
        (1, (20,), "needs images .* shape \\(20,\\)"),
        (1, (), "needs images .* shape \\(flat\\)"),
        (1, (3, 28, 28), "needs images"),  # channels first: not an image of 3 rows
        (5, (5, 9), "augment_shift=5 must be smaller than the images' 5x9"),
    ],
)
def test_what_cannot_be_moved_is_refused_in_one_line(
    shift: int, shape: tuple[int, ...], fragment: str
) -> None:
    with pytest.raises(EslError, match=fragment) as error:
        check_shift(shift, shape)
    assert "\n" not in str(error.value)
    assert check_shift(4, (5, 9)) == (5, 9)


def test_config_checks_the_shift_and_what_it_goes_with() -> None:
    assert config_from_dict({}).data.augment_shift == 0
    assert config_from_dict({"data": {"augment_shift": 2}}).data.augment_shift == 2
    for raw, fragment in (
        ({"data": {"augment_shift": 9}}, "data.augment_shift =9 outside 0..8"),
        ({"data": {"augment_shift": 1.5}}, "data.augment_shift must be an integer"),
        ({"data": {"augment_shift": 1}, "model": {"kind": "single_spike"}}, "needs model.kind 'lif'"),
        ({"data": {"augment_shift": 1}, "train": {"teacher": "run"}}, "and train.teacher together"),
    ):
        with pytest.raises(EslError, match=fragment):
            config_from_dict(raw)


def test_a_run_on_moved_images_is_repeatable_and_differs_from_one_on_still_images(tmp_path: Path) -> None:
    def run(name: str, shift: int) -> torch.Tensor:
        config = config_from_dict(
            {
                "model": {"hidden": [16], "timesteps": 2},
                "data": {"train_samples": 200, "augment_shift": shift},
                "train": {"epochs": 2, "batch_size": 50},
            }
        )
        train(config, tmp_path / name, progress=False)
        return load_checkpoint(tmp_path / name)["model"]["weights.0"]

    moved, again, still = run("moved", 2), run("again", 2), run("still", 0)
    assert torch.equal(moved, again)
    assert not torch.equal(moved, still)


def test_flat_samples_are_refused_before_training(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for split, count in (("train", 60), ("test", 20)):
        x = rng.integers(0, 256, size=(count, 20), dtype=np.uint8)
        np.savez(data / f"{split}.npz", x=x, y=np.arange(count) % 3)
    config = config_from_dict(
        {"model": {"hidden": [8], "timesteps": 2}, "data": {"path": str(data), "augment_shift": 1}}
    )
    with pytest.raises(EslError, match="augment_shift needs images"):
        train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
