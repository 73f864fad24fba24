"""Tests for esl_hw.train.single_spike: exact first-spike times, their gradients, loss, training."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from esl_hw.errors import EslError
from esl_hw.train.config import config_from_dict
from esl_hw.train.export import export_run
from esl_hw.train.loop import train
from esl_hw.train.single_spike import (
    SingleSpikeNet,
    encode_levels,
    encode_times,
    first_spike_z,
    first_spike_z_slots,
    normalise_gradients,
    slot_z,
    temporal_loss,
    weight_sum_cost,
)


def _simulate(times: torch.Tensor, weights: torch.Tensor) -> float:
    """First time ``V(t) = Σ w_i (1 − e^{−(t − t_i)}) Θ(t − t_i)`` reaches 1, on a fine grid."""
    grid = torch.linspace(0.0, 8.0, 32001, dtype=torch.float64)
    potential = torch.zeros_like(grid)
    for time, weight in zip(times, weights, strict=True):
        potential += weight * (1.0 - torch.exp(-(grid - time))) * (grid >= time)
    above = torch.nonzero(potential >= 1.0)
    return math.inf if len(above) == 0 else float(grid[above[0, 0]])


def test_spike_times_match_a_simulation_of_the_membrane() -> None:
    generator = torch.Generator().manual_seed(0)
    checked = 0
    for _ in range(30):
        times = torch.rand(6, generator=generator, dtype=torch.float64) * 2
        weights = torch.randn(6, 1, generator=generator, dtype=torch.float64) * 0.8 + 0.3
        z_out = float(first_spike_z(torch.exp(times)[None], weights)[0, 0])
        simulated = _simulate(times, weights[:, 0])
        if math.isinf(simulated) or simulated > 7.9:
            assert math.isinf(z_out) or math.log(z_out) > 7.9
        else:
            assert math.log(z_out) == pytest.approx(simulated, abs=5e-4)
            checked += 1
    assert checked > 10


def test_gradients_are_the_closed_form_ones() -> None:
    z_in = torch.tensor([[1.0, 1.5, 2.0, 6.0]], dtype=torch.float64)
    weight = torch.tensor([[0.7], [0.6], [0.4], [0.9]], dtype=torch.float64, requires_grad=True)
    z_out = first_spike_z(z_in, weight)
    # find the causal set by the rule of the module docstring, then compare with the closed form
    causal = 0
    for k in range(4):
        total = float(weight.detach()[: k + 1, 0].sum())
        if total > 1:
            candidate = float((weight.detach()[: k + 1, 0] * z_in[0, : k + 1]).sum()) / (total - 1)
            upper = float(z_in[0, k + 1]) if k < 3 else math.inf
            if float(z_in[0, k]) <= candidate <= upper:
                causal = k + 1
                break
    assert causal > 0
    z_out.sum().backward()
    denominator = float(weight.detach()[:causal, 0].sum()) - 1
    expected = torch.zeros(4, dtype=torch.float64)
    expected[:causal] = (z_in[0, :causal] - z_out.detach()[0, 0]) / denominator
    assert torch.allclose(weight.grad[:, 0], expected)


def test_silent_inputs_are_ignored_and_silent_neurons_report_infinity() -> None:
    z_in = torch.tensor([[1.0, math.inf, 2.0]])
    weight = torch.tensor([[0.8, 0.1], [5.0, 0.1], [0.8, 0.1]])
    z_out = first_spike_z(z_in, weight)
    assert math.isfinite(float(z_out[0, 0])) and math.isinf(float(z_out[0, 1]))
    alone = first_spike_z(torch.tensor([[1.0, 2.0]]), weight[[0, 2]])
    assert torch.equal(z_out[:, :1], alone[:, :1])


def test_slot_algorithm_equals_the_sorting_one() -> None:
    torch.manual_seed(1)
    net = SingleSpikeNet([40], n_in=30)
    images = torch.randint(0, 256, (12, 30), dtype=torch.uint8)
    for levels in (1, 4, 8):
        weight = net.weights[0].detach().double()
        slots = first_spike_z_slots(encode_levels(images, levels), slot_z(levels, 1.0), weight)
        sorted_ = first_spike_z(encode_times(images, levels).double(), weight)
        assert torch.allclose(
            torch.nan_to_num(slots, posinf=-1.0), torch.nan_to_num(sorted_, posinf=-1.0), rtol=1e-9
        )
    assert encode_levels(torch.tensor([[255, 0, 128]], dtype=torch.uint8), 8).tolist() == [[0, 7, 3]]


def test_loss_cost_and_gradient_normalisation() -> None:
    z_out = torch.tensor([[1.5, 3.0, math.inf], [4.0, 2.0, 2.5]], requires_grad=True)
    loss = temporal_loss(z_out, torch.tensor([0, 1]))
    assert float(loss.detach()) < float(temporal_loss(z_out, torch.tensor([1, 0])).detach())
    loss.backward()
    assert z_out.grad[0, 0] > 0 and z_out.grad[0, 2] == 0  # descent moves the correct one earlier
    net = SingleSpikeNet([4], n_in=3, n_out=2)
    with torch.no_grad():
        net.weights[0].fill_(0.1)
        net.weights[1].fill_(1.0)
    assert float(weight_sum_cost(net, 2.0).detach()) == pytest.approx(2.0 * 4 * (1 - 0.3))
    for weight in net.weights:
        weight.grad = torch.full_like(weight, 10.0)
    normalise_gradients(net)
    assert all(float(weight.grad.norm()) == pytest.approx(1.0) for weight in net.weights)


SMALL = {
    "seed": 0,
    "data": {"train_samples": 1500, "val_fraction": 0.2},
    "model": {"kind": "single_spike", "hidden": [100], "levels": 4},
    "sparsity": {"epsilon": 20, "delta_t": 5},
    "train": {"epochs": 3, "batch_size": 50, "lr": 0.005},
}


def test_single_spike_training_learns_and_is_not_exported(tmp_path: Path) -> None:
    result = train(config_from_dict(SMALL), tmp_path / "run", progress=False)
    assert result.val_accuracy > 0.4
    with pytest.raises(EslError, match="trained a single_spike model"):
        export_run(tmp_path / "run")
