"""Tests for esl_hw.train.events: event-driven products equal the dense products, with dense gradients."""

from __future__ import annotations

import pytest
import torch

from esl_hw.train.events import Events, event_matmul, int8_product, spike_changes, spike_train_matmul


def _trains(seed: int, steps: int = 6, batch: int = 5, width: int = 30) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    spikes = torch.rand(steps, batch, width, generator=generator) < 0.4
    spikes[:, :, :4] = True  # always on: one change event
    spikes[:, :, 4:8] = False  # silent
    spikes[::2, :, 8:12] = True  # toggling every step
    spikes[1::2, :, 8:12] = False
    return spikes


def test_spike_changes_are_the_differences() -> None:
    spikes = _trains(0)
    changes = spike_changes(spikes)
    assert changes.dtype == torch.int8
    assert torch.equal(changes.cumsum(0), spikes.to(torch.int64))
    assert torch.equal(changes[1:].long(), spikes[1:].long() - spikes[:-1].long())


@pytest.mark.parametrize("seed", range(3))
def test_spike_train_product_is_exact_for_integer_weights(seed: int) -> None:
    spikes = _trains(seed)
    weight = torch.randint(-127, 128, (30, 11), generator=torch.Generator().manual_seed(seed)).float()
    weight.requires_grad_()
    out = spike_train_matmul(spikes, weight)
    dense = spikes.float() @ weight
    assert torch.equal(out, dense)  # integer partial sums: any order is exact
    grad_out = torch.randn(dense.shape, generator=torch.Generator().manual_seed(seed + 7))
    (grad,) = torch.autograd.grad((out * grad_out).sum(), weight)
    (expected,) = torch.autograd.grad((dense * grad_out).sum(), weight)
    torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-5)
    assert grad[4:8].abs().sum() == 0 and grad[:4].abs().sum() > 0


def test_products_with_float_weights_agree_to_rounding() -> None:
    spikes = _trains(5)
    weight = torch.randn(30, 11, requires_grad=True)
    for ours, flat in ((spike_train_matmul(spikes, weight), False), (event_matmul(spikes[2], weight), True)):
        dense = (spikes[2] if flat else spikes).float() @ weight
        torch.testing.assert_close(ours, dense, rtol=1e-5, atol=1e-5)
        grad_out = torch.ones_like(dense)
        (grad,) = torch.autograd.grad((ours * grad_out).sum(), weight)
        (expected,) = torch.autograd.grad((dense * grad_out).sum(), weight)
        torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-5)


def test_events_of_signed_and_empty_matrices() -> None:
    matrix = torch.tensor([[0, 1, -1], [0, 0, 0], [1, 0, 1]], dtype=torch.int8)
    events = Events.of(matrix)
    assert events.rows.tolist() == [0, 0, 2, 2] and events.columns.tolist() == [1, 2, 0, 2]
    assert events.signs.tolist() == [1, -1, 1, 1]
    table = torch.arange(12.0).reshape(3, 4)
    assert torch.equal(events.product(table), matrix.float() @ table)
    assert torch.equal(events.transposed_product(table), matrix.float().t() @ table)
    empty = torch.zeros(3, 4, dtype=torch.bool)
    assert torch.equal(event_matmul(empty, torch.ones(4, 2)), torch.zeros(3, 2))
    assert torch.equal(
        spike_train_matmul(torch.zeros(2, 3, 4, dtype=torch.bool), torch.ones(4, 2)), torch.zeros(2, 3, 2)
    )


@pytest.mark.parametrize(
    ("seed", "shape"), [(0, (6, 5, 30)), (1, (3, 1, 1)), (2, (8, 17, 33)), (3, (1, 2, 5))]
)
def test_int8_forward_equals_the_event_forward_bit_for_bit(seed: int, shape: tuple[int, int, int]) -> None:
    generator = torch.Generator().manual_seed(seed)
    spikes = torch.rand(shape, generator=generator) < 0.3
    weight = torch.randint(-128, 128, (shape[2], 9), generator=generator).float()
    results = []
    for integer in (True, False):
        leaf = weight.clone().requires_grad_()
        out = spike_train_matmul(spikes, leaf, integer=integer)
        grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
        (grad,) = torch.autograd.grad((out * grad_out).sum(), leaf)
        results.append((out, grad))
    (int_out, int_grad), (event_out, event_grad) = results
    assert torch.equal(int_out, event_out) and torch.equal(int_out, spikes.float() @ weight)
    assert torch.equal(int_grad, event_grad)  # the same backward on the changes


def test_int8_product_is_exact_at_the_int8_extremes_and_declines_what_it_cannot_do() -> None:
    levels = torch.ones(4, 300, dtype=torch.int8)
    weight = torch.full((300, 3), -128.0)
    weight[:, 1] = 127.0
    product = int8_product(levels, weight)
    if product is None:
        pytest.skip("this torch has no int8 matrix product on CPU (events are used instead)")
    assert product.dtype == torch.int32
    assert product[0].tolist() == [-128 * 300, 127 * 300, -128 * 300]
    assert int8_product(torch.ones(0, 300, dtype=torch.int8), weight) is None


@pytest.mark.parametrize("seed", range(3))
def test_change_events_are_the_events_of_the_changes(seed: int) -> None:
    spikes = _trains(seed, steps=5, batch=4, width=37)
    ours = Events.of_changes(spikes)
    reference = Events.of(spike_changes(spikes).reshape(20, 37))
    assert (ours.count, ours.width) == (reference.count, reference.width)
    for got, expected in zip(
        (ours.rows, ours.columns, ours.signs),
        (reference.rows, reference.columns, reference.signs),
        strict=True,
    ):
        assert torch.equal(got, expected.to(got.dtype))


def test_transposed_product_sums_each_column_in_row_order() -> None:
    # the same numbers, bit for bit, as the events of the transposed matrix (float sums keep their order)
    generator = torch.Generator().manual_seed(3)
    matrix = (torch.rand(50, 40, generator=generator) < 0.3).to(torch.int8) - (
        torch.rand(50, 40, generator=generator) < 0.2
    ).to(torch.int8)
    table = torch.randn(50, 9, generator=generator)
    expected = Events.of(matrix.t().contiguous()).product(table)
    assert torch.equal(Events.of(matrix).transposed_product(table), expected)


@pytest.mark.parametrize("seed", range(3))
def test_bfloat16_weight_gradient_is_the_dense_gradient_to_bfloat16_rounding(seed: int) -> None:
    spikes = _trains(seed, steps=8, batch=16, width=40)
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randint(-127, 128, (40, 13), generator=generator).float().requires_grad_()
    grad_out = torch.randn(8, 16, 13, generator=generator)
    exact = torch.einsum("tbi,tbo->io", spikes.double(), grad_out.double())
    out = spike_train_matmul(spikes, weight, integer=True, grad_dtype=torch.bfloat16)
    assert torch.equal(out, spikes.float() @ weight)  # the forward stays exact
    (grad,) = torch.autograd.grad((out * grad_out).sum(), weight)
    assert grad.dtype == torch.float32 and grad.shape == weight.shape
    assert torch.equal(grad[4:8], torch.zeros_like(grad[4:8]))  # silent inputs: no gradient at all
    # bf16 operands (2^-9 relative each) and a bf16 result: a few 2^-8 of the largest term at most
    scale = torch.einsum("tbi,tbo->io", spikes.double(), grad_out.double().abs())
    assert ((grad.double() - exact).abs() <= 3 * 2.0**-8 * scale + 1e-6).all()
    (grad32,) = torch.autograd.grad(
        (spike_train_matmul(spikes, weight, integer=True) * grad_out).sum(), weight
    )
    assert not torch.equal(grad, grad32)  # it is another computation, not the exact path


def test_an_unknown_gradient_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="grad_dtype"):
        spike_train_matmul(_trains(0), torch.zeros(30, 4), grad_dtype=torch.float16)
