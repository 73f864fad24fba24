"""Shared fixtures: small random models in the artifact format, and a build cache per test session."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from esl_hw.artifact import Layer, Model, layer_from_dense
from esl_hw.sim.build_cache import CACHE_ENV


@pytest.fixture(scope="session", autouse=True)
def build_cache(tmp_path_factory: pytest.TempPathFactory):
    """Point ``$ESL_HW_CACHE`` at a folder of this test session, so that tests never write to
    ``~/.cache`` and share their simulator builds; with pytest-xdist the workers of one run share
    it (its lock files keep builders apart)."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "esl-hw-cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(folder))
        yield folder


def random_layer(
    rng: np.random.Generator,
    n_in: int,
    n_out: int,
    kind: str = "lif",
    density: float = 0.3,
    w_bits: int = 6,
    v_bits: int = 10,
    threshold: int | None = None,
    leak_shift: int | None = 2,
    bias: bool = False,
    reset: str = "zero",
    syn_shift: int | None = None,
) -> Layer:
    """A random CSR layer; some rows end up empty and some full at small sizes.

    ``bias``: draw a per-neuron bias of up to about two weights' magnitude; ``kind="cubalif"``
    uses ``syn_shift``; ``reset`` applies to the hidden kinds.
    """
    low, high = -(1 << (w_bits - 1)), (1 << (w_bits - 1)) - 1
    mask = rng.random((n_in, n_out)) < density
    mask[0] = False
    if n_in > 1:
        mask[1] = True
    dense = rng.integers(low, high + 1, (n_in, n_out)) * mask
    bias_low, bias_high = max(2 * low, -(1 << 31)), min(2 * high, (1 << 31) - 1)
    biases = rng.integers(bias_low, bias_high + 1, n_out) if bias else None
    if kind == "output":
        return layer_from_dense(dense, "output", w_bits, mask=mask, bias=biases)
    if threshold is None:
        threshold = int(rng.integers(1, 1 << (v_bits - 2)))
    return layer_from_dense(
        dense,
        kind,
        w_bits,
        v_bits,
        threshold,
        leak_shift,
        mask=mask,
        bias=biases,
        reset=reset,
        syn_shift=syn_shift if kind == "cubalif" else None,
    )


def random_model(
    rng: np.random.Generator, sizes: tuple[int, ...] = (20, 12, 4), timesteps: int = 5, **kw
) -> Model:
    layers = [random_layer(rng, a, b, **kw) for a, b in zip(sizes[:-2], sizes[1:-1], strict=True)]
    layers.append(
        random_layer(
            rng, sizes[-2], sizes[-1], kind="output", w_bits=kw.get("w_bits", 6), bias=kw.get("bias", False)
        )
    )
    return Model(tuple(layers), timesteps)


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test (small convolutions on a busy 2-core machine: more threads
    are an order of magnitude slower), the previous count restored after it."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def pytest_addoption(parser) -> None:
    parser.addoption(
        "--cases",
        type=int,
        default=200,
        help="constrained-random co-simulation cases across both simulators (tests/test_sim_random_cases.py)",
    )


@pytest.fixture
def saved(tmp_path: Path, rng: np.random.Generator) -> tuple[Model, Path]:
    """A random 12-8-3 model saved as an artifact folder: ``(model, folder)``."""
    from esl_hw.artifact_io import save_model

    model = random_model(rng, (12, 8, 3), timesteps=4)
    return model, save_model(model, tmp_path / "model")
