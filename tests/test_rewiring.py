"""Reference rewiring: exact prune count, tie order, in-place regrowth from the stated LFSR."""

from __future__ import annotations

import numpy as np
import pytest

from esl_hw.artifact import layer_from_dense, validate_layer
from esl_hw.errors import EslError
from esl_hw.rewiring import DEFAULT_SEED, lfsr_step, prune_order, rewire_layer, rewire_model, storage_order
from esl_hw.rtl_gen.plan import split_lanes


def random_layer(rng, n_in=12, n_out=9, density=0.4):
    mask = rng.random((n_in, n_out)) < density
    mask[0] = True  # a full row
    mask[1] = False  # an empty row
    dense = rng.integers(-5, 6, (n_in, n_out)) * mask
    return layer_from_dense(dense, "lif", 4, v_bits=8, threshold=10, leak_shift=2, mask=mask)


def test_lfsr_follows_the_polynomial() -> None:
    state = DEFAULT_SEED
    seen = set()
    for _ in range(1000):
        following = lfsr_step(state)
        expected = (state >> 1) ^ (0x80200003 if state & 1 else 0)
        assert following == expected and following != 0
        seen.add(following)
        state = following
    assert len(seen) == 1000
    with pytest.raises(ValueError, match="got 0"):
        lfsr_step(0)


def test_prune_order_breaks_ties_by_position() -> None:
    weight = np.array([3, -1, 0, 1, -3, 0, 2])
    assert prune_order(weight, 0).tolist() == []
    assert prune_order(weight, 3).tolist() == [1, 2, 5]
    assert prune_order(weight, 4).tolist() == [1, 2, 3, 5]
    assert prune_order(weight, 6).tolist() == [0, 1, 2, 3, 5, 6]
    # two lanes: storage order is bank 0 (even columns) first, then bank 1
    col = np.array([1, 0, 3, 2, 5, 4, 7])
    assert storage_order(col, 2).tolist() == [1, 3, 5, 0, 2, 4, 6]
    assert prune_order(weight, 2, col, 2).tolist() == [5, 2]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("lanes", [1, 4])
def test_rewire_keeps_rows_and_regrows_new_columns(seed, lanes) -> None:
    rng = np.random.default_rng(seed)
    layer = random_layer(rng)
    k = int(rng.integers(0, layer.nnz + 1))
    new, _, changes = rewire_layer(layer, k, lanes=lanes)
    validate_layer(new, "rewired")  # no duplicate column in a row, columns in range
    np.testing.assert_array_equal(new.row_ptr, layer.row_ptr)
    positions = [position for position, _, _ in changes]
    assert positions == prune_order(layer.weight, k, layer.col, lanes).tolist()
    assert all(old % lanes == new_col % lanes for _, old, new_col in changes), "same bank"
    for old_lane, new_lane in zip(split_lanes(layer, lanes)[0], split_lanes(new, lanes)[0], strict=True):
        np.testing.assert_array_equal(old_lane, new_lane)  # no lane pointer moves
    kept = np.setdiff1d(np.arange(layer.nnz), positions)
    np.testing.assert_array_equal(new.col[kept], layer.col[kept])
    np.testing.assert_array_equal(new.weight[kept], layer.weight[kept])
    assert (new.weight[positions] == 0).all()
    # every pruned synapse has |w| no larger than every kept one
    if k and len(kept):
        assert np.abs(layer.weight[positions]).max() <= np.abs(layer.weight[kept]).min()


def test_rewire_is_deterministic_and_depends_on_the_seed() -> None:
    layer = random_layer(np.random.default_rng(3), n_in=20, n_out=40, density=0.2)
    first = rewire_layer(layer, 15)
    assert rewire_layer(layer, 15)[2] == first[2]
    assert rewire_layer(layer, 15, seed=12345)[2] != first[2]


def test_full_rows_regrow_into_their_pruned_columns() -> None:
    dense = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    layer = layer_from_dense(dense, "lif", 5, v_bits=8, threshold=10)
    new, _, changes = rewire_layer(layer, 2)
    assert [position for position, _, _ in changes] == [0, 1]
    assert sorted(new.col[:4].tolist()) == [0, 1, 2, 3]


def test_too_large_k_is_refused_with_the_excess() -> None:
    rng = np.random.default_rng(0)
    layer = random_layer(rng)
    with pytest.raises(EslError, match=f"exceeds the layer's {layer.nnz} synapses by 1"):
        rewire_layer(layer, layer.nnz + 1)
    with pytest.raises(EslError, match="non-negative"):
        rewire_layer(layer, -1)


def test_rewire_model_checks_every_layer_first() -> None:
    from esl_hw.artifact import Model

    rng = np.random.default_rng(1)
    hidden = random_layer(rng)
    output = layer_from_dense(rng.integers(-3, 4, (9, 3)), "output", 4)
    model = Model((hidden, output), timesteps=2)
    with pytest.raises(EslError, match="layer 1: k = 100"):
        rewire_model(model, [1, 100])
    rewired = rewire_model(model, [4, 2])
    assert rewired.synapses == model.synapses
    assert sum((a.col != b.col).sum() for a, b in zip(rewired.layers, model.layers, strict=True)) <= 6
