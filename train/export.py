"""From a training run to the model artifact, plus batched evaluation helpers.

The artifact carries exactly the integers :meth:`LIFNet.forward_integer` uses: per layer
``Q_l = clamp(round(W_l ⊙ M_l / s_l), ±qmax)`` in CSR form over the mask (a kept synapse that
rounded to 0 stays a synapse), ``θ_l = max(1, round(threshold / s_l))``, the layer's neuron kind,
leak shift, ``v_bits`` and ``w_bits``, the net's encoder (phase0 128 for a trained net) and ``T``.
The way back is :meth:`LIFNet.from_model`: ``model_from_net(LIFNet.from_model(model))`` is ``model``
with each row's synapses by ascending column.

Synapses are listed by ascending column in each row, except for a run trained with
``grow: hardware-random``: there each row lists them in the storage order the chip's rewiring left
(the order carries no meaning for the arithmetic, but it breaks the rewiring unit's ties in ``|w|``),
and the metadata keeps ``lanes`` and every layer's LFSR state, so that rewiring the exported model on
the chip continues exactly as training would have.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from esl_hw import limits
from esl_hw.artifact import Layer, Model, layer_from_dense
from esl_hw.errors import EslError
from esl_hw.train.config import Config, config_from_dict
from esl_hw.train.model import LIFNet, check_shape, encode_batch

CHECKPOINT_FILE = "checkpoint.pt"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
RUN_FORMAT = "esl-hw-run"


def in_storage_order(layer: Layer, dense: np.ndarray, columns: np.ndarray) -> Layer:
    """``layer`` (from ``dense [n_in, n_out]``) with its synapses listed in the order of ``columns``
    (a CSR column array over the same rows and synapses); :class:`EslError` if it has other synapses."""
    columns = np.asarray(columns, dtype=np.int64)
    rows = np.repeat(np.arange(layer.n_in), np.diff(layer.row_ptr))
    if len(columns) != layer.nnz or not np.array_equal(
        np.sort(rows * layer.n_out + columns), rows * layer.n_out + layer.col
    ):
        raise EslError("the rewiring storage order does not list the layer's synapses")
    return dataclasses.replace(layer, col=columns, weight=np.asarray(dense)[rows, columns].astype(np.int64))


def model_from_net(
    net: LIFNet, metadata: dict[str, Any] | None = None, columns: Sequence[np.ndarray | None] | None = None
) -> Model:
    """The validated artifact :class:`Model` of ``net`` (its integer weights, thresholds and masks).

    ``columns`` (optional, one per layer, None keeps the ascending order) lists each layer's synapses
    in a storage order (:func:`in_storage_order`).
    """
    weights = net.integer_weights()
    thresholds = net.integer_thresholds()
    biases = net.integer_biases()
    layers = []
    for index, (weight, mask) in enumerate(zip(weights, net.masks(), strict=True)):
        hidden = index < net.n_layers - 1
        layers.append(
            layer_from_dense(
                weight.cpu().numpy(),
                kind=net.kinds[index] if hidden else "output",
                w_bits=net.layer_w_bits[index],
                v_bits=net.layer_v_bits[index] if hidden else None,
                threshold=thresholds[index] if hidden else None,
                leak_shift=net.layer_leak_shifts[index] if hidden else None,
                mask=mask.cpu().numpy(),
                bias=biases[index],
                reset=net.layer_resets[index] if hidden else "zero",
                syn_shift=net.layer_syn_shifts[index] if hidden else None,
            )
        )
        if columns is not None and columns[index] is not None:
            layers[-1] = in_storage_order(layers[-1], weight.cpu().numpy(), columns[index])
    return Model(layers=tuple(layers), timesteps=net.timesteps, encoder=net.encoder, metadata=metadata or {})


def load_checkpoint(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint of the completed run ``run_dir``; :class:`EslError` if missing or incomplete."""
    folder = Path(run_dir)
    if not folder.is_dir():
        raise EslError(f"run folder {folder} does not exist")
    path = folder / CHECKPOINT_FILE
    if not path.is_file():
        raise EslError(f"run folder {folder} has no {CHECKPOINT_FILE} (not a completed training run)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is a user-input problem
        raise EslError(f"{path}: cannot read checkpoint ({type(error).__name__})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != RUN_FORMAT:
        raise EslError(f"{path}: not an esl-hw training checkpoint")
    if not checkpoint.get("complete"):
        raise EslError(f"{path}: training run did not complete")
    check_checkpoint_fields(checkpoint, path)
    return checkpoint


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_score(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def check_checkpoint_fields(checkpoint: dict[str, Any], path: Path) -> None:
    """Refuse a checkpoint whose fields are missing or of the wrong type (one line naming the field)."""

    def fail(field: str) -> EslError:
        return EslError(f"{path}: damaged checkpoint (field {field!r} missing or malformed)")

    sizes = checkpoint.get("sizes")  # layer sizes of an MLP, weight shapes of a convolutional net
    if not isinstance(sizes, list | tuple) or not sizes:
        raise fail("sizes")
    for field, valid in (("config", isinstance(checkpoint.get("config"), dict)),
                         ("model", isinstance(checkpoint.get("model"), dict)),
                         ("epoch", _is_int(checkpoint.get("epoch")))):  # fmt: skip
        if not valid:
            raise fail(field)
    if not all(isinstance(value, torch.Tensor) for value in checkpoint["model"].values()):
        raise fail("model")
    for field in ("val_accuracy", "float_val_accuracy", "train_accuracy"):
        if not _is_score(checkpoint.get(field)):
            raise fail(field)
    sparse = checkpoint.get("sparse", {})
    if not isinstance(sparse, dict):
        raise fail("sparse")
    rewiring = sparse.get("rewiring")
    if rewiring is None:
        return
    if (
        not isinstance(rewiring, dict)
        or not _is_int(rewiring.get("lanes"))
        or not isinstance(rewiring.get("states"), list | tuple)
        or not all(_is_int(state) for state in rewiring["states"])
        or not isinstance(rewiring.get("columns"), list | tuple)
        or not all(isinstance(column, torch.Tensor) for column in rewiring["columns"])
    ):
        raise fail("sparse.rewiring")


def net_from_checkpoint(checkpoint: dict[str, Any]) -> tuple[LIFNet, Config]:
    """Rebuild the trained :class:`LIFNet` (best epoch) and its :class:`Config`."""
    config = config_from_dict(checkpoint["config"])
    if config.model.kind != "lif":
        raise EslError(
            f"the run trained a {config.model.kind} model; export and integer evaluation need a LIF model"
        )
    sizes = checkpoint["sizes"]
    if len(sizes) < 2 or not all(_is_int(size) and size > 0 for size in sizes):
        raise EslError(f"damaged checkpoint: layer sizes {sizes!r} are not positive integers")
    net = LIFNet.from_config(config.model, n_in=sizes[0], n_out=sizes[-1])
    check_shape(net, checkpoint["sizes"])
    try:
        net.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        first = str(error).strip().splitlines()[-1].strip()
        raise EslError(f"checkpoint does not fit the configured model: {first}") from None
    net.eval()
    return net, config


def load_run(
    run_dir: str | os.PathLike[str], w_bits: int | None = None
) -> tuple[LIFNet, Config, dict[str, Any]]:
    """``(net, config, checkpoint)`` of a completed run; ``w_bits`` re-quantises its weights to
    that many bits (post-training: ``s_l = max|W_l ⊙ M_l| / (2^(w_bits−1) − 1)``) instead of the
    width it was trained with (kept as the checkpoint's ``trained_w_bits``)."""
    checkpoint = load_checkpoint(run_dir)
    if w_bits is not None:
        limits.check_range(w_bits, *limits.TRAIN_W_BITS, "w_bits")
        trained = int(checkpoint["config"]["model"]["w_bits"])
        model_config = {**checkpoint["config"]["model"], "w_bits": w_bits}
        config = {**checkpoint["config"], "model": model_config}
        checkpoint = {**checkpoint, "config": config, "trained_w_bits": trained}
    net, config = net_from_checkpoint(checkpoint)
    return net, config, checkpoint


def export_run(run_dir: str | os.PathLike[str], w_bits: int | None = None) -> Model:
    """The artifact :class:`Model` of the run's best epoch, with training metadata; ``w_bits``
    re-quantises the weights to that width (:func:`load_run`; the metadata keeps the trained one)."""
    net, config, checkpoint = load_run(run_dir, w_bits)
    trained_w_bits = checkpoint.get("trained_w_bits", net.w_bits)
    metadata = {
        "source": "esl-hw train",
        "run_dir": str(Path(run_dir)),
        "epoch": int(checkpoint["epoch"]),
        "val_accuracy": checkpoint["val_accuracy"],
        "float_val_accuracy": checkpoint["float_val_accuracy"],
        "train_accuracy": checkpoint["train_accuracy"],
        "scales": net.scales(),
        "threshold_float": config.model.threshold,
        "densities": [float(mask.float().mean()) for mask in net.masks()],
        "config": checkpoint["config"],
    }
    if w_bits is not None and w_bits != trained_w_bits:
        metadata["requantised"] = {"trained_w_bits": trained_w_bits, "w_bits": w_bits}
    rewiring = checkpoint.get("sparse", {}).get("rewiring")
    if rewiring is None:
        return model_from_net(net, metadata)
    states = [int(state) for state in rewiring["states"]]
    metadata["rewiring"] = {"lanes": int(rewiring["lanes"]), "lfsr_states": states}
    return model_from_net(net, metadata, [column.numpy() for column in rewiring["columns"]])


def _batches(images: np.ndarray, batch_size: int) -> list[np.ndarray]:
    return [images[start : start + batch_size] for start in range(0, len(images), batch_size)]


def _as_net(run_or_net: LIFNet | str | os.PathLike[str]) -> LIFNet:
    return run_or_net if isinstance(run_or_net, LIFNet) else load_run(run_or_net)[0]


@torch.no_grad()
def predictions(
    run_or_net: LIFNet | str | os.PathLike[str],
    images: np.ndarray,
    mode: str = "float",
    batch_size: int = 500,
) -> np.ndarray:
    """Predicted class per image in ``"float"`` or ``"qat"`` mode."""
    net = _as_net(run_or_net)
    out = [
        net(encode_batch(chunk, net.timesteps, net.encoder), mode=mode).argmax(dim=1).numpy()
        for chunk in _batches(images, batch_size)
    ]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def evaluate_float(
    run_or_net: LIFNet | str | os.PathLike[str], images: np.ndarray, labels: np.ndarray, batch_size: int = 500
) -> float:
    """Accuracy of the unquantised network (float weights, ``β = 1 − 2^−k``, float threshold)."""
    if not len(labels):
        return 0.0
    return float(np.mean(predictions(run_or_net, images, "float", batch_size) == labels))


def integer_predictions(
    run_or_net: LIFNet | str | os.PathLike[str], images: np.ndarray, batch_size: int = 500
) -> np.ndarray:
    """Predictions of the exact integer mode (:meth:`LIFNet.forward_integer`), batched."""
    net = _as_net(run_or_net)
    out = [
        net.forward_integer(encode_batch(chunk, net.timesteps, net.encoder), record=False).predictions.numpy()
        for chunk in _batches(images, batch_size)
    ]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def evaluate_integer(
    run_or_net: LIFNet | str | os.PathLike[str], images: np.ndarray, labels: np.ndarray, batch_size: int = 500
) -> float:
    """Accuracy of the exact integer mode."""
    if not len(labels):
        return 0.0
    return float(np.mean(integer_predictions(run_or_net, images, batch_size) == labels))
