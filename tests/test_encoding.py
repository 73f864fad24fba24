"""The rate encoder against its phase-accumulator definition."""

from __future__ import annotations

import numpy as np
import pytest

from esl_hw.artifact import Encoder
from esl_hw.encoding import encode, spike_events
from esl_hw.errors import EslError


def accumulator_spikes(x: int, steps: int, phase0: int) -> list[int]:
    acc, out = phase0, []
    for _ in range(steps):
        acc += x
        out.append(int(acc >= 256))
        acc -= 256 * out[-1]
    return out


@pytest.mark.parametrize("phase0", [0, 128, 255])
def test_encoder_equals_phase_accumulator(phase0: int) -> None:
    pixels = np.arange(256, dtype=np.uint8)
    spikes = encode(pixels, 20, Encoder(phase0=phase0))
    assert spikes.shape == (20, 256)
    for x in range(256):
        assert spikes[:, x].astype(int).tolist() == accumulator_spikes(x, 20, phase0)


def test_encoder_equals_the_closed_form_on_a_batch() -> None:
    pixels = np.random.default_rng(5).integers(0, 256, (3, 7, 11), dtype=np.uint8)
    steps = np.arange(10, dtype=np.int64).reshape(-1, 1, 1, 1)
    phase = (77 + steps * pixels.astype(np.int64)) >> 8
    assert np.array_equal(encode(pixels, 9, Encoder(phase0=77)), (phase[1:] - phase[:-1]).astype(bool))


def test_rate_follows_intensity() -> None:
    spikes = encode(np.array([0, 64, 128, 255], dtype=np.uint8), 64)
    assert spikes.sum(axis=0).tolist() == [0, 16, 32, 64]


def test_encoder_keeps_batch_shape_and_rejects_non_uint8() -> None:
    assert encode(np.zeros((3, 5), dtype=np.uint8), 4).shape == (4, 3, 5)
    with pytest.raises(EslError, match="images must be uint8 pixels, got float32"):
        encode(np.zeros(4, dtype=np.float32), 4)


@pytest.mark.parametrize("timesteps", [0, -3, 2.0, True, "4", None])
def test_encoder_refuses_a_timestep_count_that_is_not_a_positive_int(timesteps: object) -> None:
    with pytest.raises(EslError, match=f"timesteps must be a positive integer, got {timesteps!r}"):
        encode(np.zeros(4, dtype=np.uint8), timesteps)  # type: ignore[arg-type]
    assert encode(np.full(2, 255, dtype=np.uint8), np.int64(3)).all()


def test_spike_events_lists_ascending_indices_per_step() -> None:
    spikes = np.array([[0, 1, 1, 0], [0, 0, 0, 0], [1, 0, 0, 1]], dtype=bool)
    assert spike_events(spikes) == [[1, 2], [], [0, 3]]
