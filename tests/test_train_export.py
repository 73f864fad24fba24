"""Tests for esl_hw.train.export: a valid artifact whose reference predictions equal torch's integer mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from esl_hw.artifact_io import load_model, save_model
from esl_hw.datasets import load_mnist
from esl_hw.errors import EslError
from esl_hw.reference import predict
from esl_hw.rewiring import rewire_layer
from esl_hw.train.config import config_from_dict
from esl_hw.train.export import (
    evaluate_float,
    evaluate_integer,
    export_run,
    in_storage_order,
    integer_predictions,
    load_run,
    model_from_net,
    predictions,
)
from esl_hw.train.hardware_rewiring import HardwareRewiring
from esl_hw.train.loop import train
from esl_hw.train.model import LIFNet

TINY = {
    "seed": 2,
    "data": {"train_samples": 800, "val_fraction": 0.2},
    "model": {"hidden": [32, 16], "timesteps": 5, "w_bits": 6, "v_bits": 12, "leak_shift": 3},
    "sparsity": {"density": 0.25, "delta_t": 4},
    "train": {"epochs": 3, "batch_size": 40, "lr": 0.01, "lr_schedule": "constant"},
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(config_from_dict(TINY), tmp_path_factory.mktemp("runs") / "tiny", progress=False).run_dir


@pytest.fixture(scope="module")
def test_images() -> tuple[np.ndarray, np.ndarray]:
    split = load_mnist(None).test
    return split.images[:300], split.labels[:300]


def test_export_is_valid_and_matches_the_net(run_dir: Path, tmp_path: Path) -> None:
    model = export_run(run_dir)
    net, config, checkpoint = load_run(run_dir)
    assert [layer.kind for layer in model.layers] == ["lif", "lif", "output"]
    assert [(layer.n_in, layer.n_out) for layer in model.layers] == [(784, 32), (32, 16), (16, 10)]
    assert model.timesteps == 5 and model.encoder.phase0 == 128
    for index, layer in enumerate(model.layers):
        mask = net.masks()[index].numpy()
        assert layer.nnz == int(mask.sum())  # zero-rounded synapses stay synapses
        np.testing.assert_array_equal(layer.dense_weight(), net.integer_weights()[index].numpy())
        assert layer.w_bits == 6
    for layer, theta in zip(model.hidden_layers, net.integer_thresholds(), strict=True):
        assert (layer.threshold, layer.leak_shift, layer.v_bits) == (theta, 3, 12)
    assert model.metadata["epoch"] == checkpoint["epoch"]
    assert model.metadata["val_accuracy"] == pytest.approx(checkpoint["val_accuracy"])
    assert len(model.metadata["scales"]) == 3
    saved = load_model(save_model(model, tmp_path / "model"))
    assert config_from_dict(saved.metadata["config"]) == config_from_dict(TINY)
    assert saved.metadata["float_val_accuracy"] == pytest.approx(checkpoint["float_val_accuracy"])
    for ours, theirs in zip(model.layers, saved.layers, strict=True):
        np.testing.assert_array_equal(ours.dense_weight(), theirs.dense_weight())
    assert config.model.hidden == (32, 16)


def test_export_requantises_the_weights_to_fewer_bits(run_dir: Path) -> None:
    trained, fewer = export_run(run_dir), export_run(run_dir, w_bits=4)
    net = load_run(run_dir)[0]
    for index, (wide, narrow) in enumerate(zip(trained.layers, fewer.layers, strict=True)):
        assert narrow.w_bits == 4 and np.abs(narrow.weight).max() == 7  # max|W| maps onto qmax
        np.testing.assert_array_equal(narrow.row_ptr, wide.row_ptr)  # same synapses
        dense = (net.weights[index].detach() * net.masks()[index]).double().numpy()
        step = np.abs(dense).max() / 7  # s_l at 4 bits: every weight within half a step
        assert np.abs(narrow.dense_weight() * step - dense).max() <= step / 2 + 1e-6
    assert fewer.metadata["requantised"] == {"trained_w_bits": 6, "w_bits": 4}
    assert "requantised" not in export_run(run_dir, w_bits=6).metadata
    with pytest.raises(EslError, match="2..24"):
        export_run(run_dir, w_bits=1)


def test_reference_predictions_equal_integer_predictions(run_dir: Path, test_images) -> None:
    images, labels = test_images
    model = export_run(run_dir)
    ours = integer_predictions(run_dir, images, batch_size=128)
    np.testing.assert_array_equal(ours, predict(model, images))
    assert evaluate_integer(run_dir, images, labels) == pytest.approx(float(np.mean(ours == labels)))
    assert (
        evaluate_integer(run_dir, images, labels) > 0.4
    )  # chance is 0.1; three tiny epochs reach about 0.65
    net = load_run(run_dir)[0]
    np.testing.assert_array_equal(predictions(net, images, mode="qat"), ours)  # QAT is the integer arithmetic
    assert 0.0 <= evaluate_float(net, images, labels) <= 1.0


def test_missing_or_incomplete_runs_are_refused(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(EslError, match="does not exist"):
        export_run(tmp_path / "nothing")
    (tmp_path / "half").mkdir()
    with pytest.raises(EslError, match="not a completed training run"):
        export_run(tmp_path / "half")
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    (tmp_path / "incomplete").mkdir()
    torch.save(dict(checkpoint, complete=False), tmp_path / "incomplete" / "checkpoint.pt")
    with pytest.raises(EslError, match="did not complete"):
        export_run(tmp_path / "incomplete")
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "checkpoint.pt").write_text("not a checkpoint")
    with pytest.raises(EslError, match="cannot read checkpoint"):
        export_run(tmp_path / "garbage")


def test_checkpoint_for_another_shape_is_refused(run_dir: Path, tmp_path: Path) -> None:
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    checkpoint["config"]["model"]["hidden"] = [30, 12]
    (tmp_path / "other").mkdir()
    torch.save(checkpoint, tmp_path / "other" / "checkpoint.pt")
    with pytest.raises(EslError, match="does not match"):
        export_run(tmp_path / "other")
    checkpoint["sizes"] = [784, 30, 12, 10]
    torch.save(checkpoint, tmp_path / "other" / "checkpoint.pt")
    with pytest.raises(EslError, match="does not fit"):
        export_run(tmp_path / "other")


def test_model_from_net_keeps_zero_weight_synapses() -> None:
    net = LIFNet([3], n_in=4, n_out=2, timesteps=2)
    with torch.no_grad():
        net.weights[0].fill_(0.001)  # rounds to 0 once the largest weight sets the scale
        net.weights[0][0, 0] = 1.0
        net.masks()[0].fill_(True)
        net.masks()[0][3, 2] = False
    layer = model_from_net(net).layers[0]
    assert layer.nnz == 11
    assert int((layer.weight == 0).sum()) == 10


def test_hardware_random_run_exports_the_chip_storage_order(tmp_path: Path, test_images) -> None:
    """Rewiring the exported model on the chip continues exactly as the trainer's next update would."""
    sparsity = {"density": 0.25, "delta_t": 4, "prune": "magnitude", "grow": "hardware-random", "lanes": 2}
    raw = {
        **TINY,
        "model": {**TINY["model"], "hidden": [16]},
        "sparsity": sparsity,
        "train": {**TINY["train"], "epochs": 1},
    }
    run = train(config_from_dict(raw), tmp_path / "hw", progress=False).run_dir
    model = export_run(run)
    net, _, checkpoint = load_run(run)
    rewiring_state = checkpoint["sparse"]["rewiring"]
    assert model.metadata["rewiring"] == {"lanes": 2, "lfsr_states": rewiring_state["states"]}
    saved = load_model(save_model(model, tmp_path / "model"))
    for index, layer in enumerate(saved.layers):
        np.testing.assert_array_equal(layer.col, rewiring_state["columns"][index].numpy())
        np.testing.assert_array_equal(layer.dense_weight(), net.integer_weights()[index].numpy())
    assert any(
        (np.diff(layer.col[start:end]) < 0).any()
        for layer in saved.layers
        for start, end in zip(layer.row_ptr[:-1], layer.row_ptr[1:], strict=True)
    )  # the storage order is not the ascending one
    images, _ = test_images
    np.testing.assert_array_equal(predict(saved, images[:50]), integer_predictions(net, images[:50]))
    chip = HardwareRewiring(net.masks(), lanes=2)
    chip.load_state_dict(rewiring_state)
    k = 40
    pruned, grown = chip.rewire(0, net.integer_weights()[0], k)
    new, _, changes = rewire_layer(saved.layers[0], k, rewiring_state["states"][0], lanes=2)
    rows = np.repeat(np.arange(784), np.diff(new.row_ptr))
    assert [int(rows[p]) * 16 + old for p, old, _ in changes] == pruned.tolist()
    assert [int(rows[p]) * 16 + col for p, _, col in changes] == grown.tolist()


def test_storage_order_must_list_the_same_synapses() -> None:
    net = LIFNet([3], n_in=4, n_out=2, timesteps=2)
    layer = model_from_net(net).layers[0]
    dense = net.integer_weights()[0].numpy()
    reordered = in_storage_order(layer, dense, layer.col.reshape(4, 3)[:, ::-1].reshape(-1))
    np.testing.assert_array_equal(reordered.dense_weight(), layer.dense_weight())
    with pytest.raises(EslError, match="does not list the layer's synapses"):
        in_storage_order(layer, dense, np.zeros(layer.nnz, dtype=np.int64))
