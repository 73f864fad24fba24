"""Training loop: ESL sparse training of :class:`LIFNet` with QAT on MNIST.

Per iteration: ``loss = CE(net(spikes, "qat"), labels)``, ``optimizer.step()``, ``engine.step()``
(prune-and-regrow when due, masks applied). After every epoch the validation split (``val_fraction``
of the training set) is scored in QAT mode, whose arithmetic is the integer arithmetic, and the best
epoch is kept.

The run folder appears only when training completes: everything is written into a hidden staging
folder next to ``out_dir`` and renamed into place at the end, so a half-written run never looks
complete. It holds ``config.yaml`` (resolved config), ``checkpoint.pt`` (best epoch: model state with
masks, sparse-engine state, config, accuracies; written atomically) and ``metrics.jsonl`` (one JSON
object per epoch).
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from esl_hw.datasets import Split, load_mnist
from esl_hw.errors import EslError
from esl_hw.outputs import check_writable_target, staged_folder
from esl_hw.train.config import Config, config_to_dict, dump_config
from esl_hw.train.export import CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE, RUN_FORMAT
from esl_hw.train.model import LIFNet, encode_batch
from esl_hw.train.sparse import SparseEngine, er_densities, er_densities_from_epsilon

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` produced: the run folder and the best epoch's scores."""

    run_dir: Path
    best_epoch: int
    val_accuracy: float | None
    float_val_accuracy: float | None
    densities: list[float]
    seconds: float


@dataclass(frozen=True)
class _Data:
    train_spikes: torch.Tensor  # [T, N, n_in] bool
    train_labels: torch.Tensor
    val_spikes: torch.Tensor
    val_labels: torch.Tensor


def split_train_val(split: Split, val_fraction: float, seed: int) -> tuple[Split, Split]:
    """Shuffle with ``seed`` and hold out ``round(val_fraction · N)`` samples for validation."""
    order = np.random.default_rng(seed).permutation(len(split))
    n_val = round(val_fraction * len(split))
    val, train = order[:n_val], order[n_val:]
    return Split(split.images[train], split.labels[train]), Split(split.images[val], split.labels[val])


def _prepare_data(config: Config) -> _Data:
    dataset = load_mnist(config.data.path)
    if dataset.train.images.shape[1] != 784:
        raise EslError(
            f"dataset {dataset.source}: images have {dataset.train.images.shape[1]} pixels, not 784"
        )
    train_split, val_split = split_train_val(
        dataset.train.head(config.data.train_samples), config.data.val_fraction, config.seed
    )
    if len(train_split) == 0:
        raise EslError("config: no training samples left after the validation split")
    steps = config.model.timesteps
    return _Data(
        encode_batch(train_split.images, steps),
        torch.from_numpy(train_split.labels),
        encode_batch(val_split.images, steps),
        torch.from_numpy(val_split.labels),
    )


def layer_densities(config: Config, net: LIFNet) -> list[float]:
    """Per-layer densities from ``sparsity.density`` (ER scaling) or ``sparsity.epsilon``."""
    shapes = [tuple(weight.shape) for weight in net.weights]
    sparsity = config.sparsity
    if sparsity.density is not None:
        return er_densities(shapes, sparsity.density, sparsity.dense_layers)
    return er_densities_from_epsilon(shapes, sparsity.epsilon, sparsity.dense_layers)


def build_optimizer(config: Config, net: LIFNet) -> torch.optim.Optimizer:
    if config.train.optimizer == "sgd":
        return torch.optim.SGD(net.parameters(), lr=config.train.lr, momentum=0.9)
    return torch.optim.Adam(net.parameters(), lr=config.train.lr)


def build_training(
    config: Config, total_iterations: int
) -> tuple[LIFNet, torch.optim.Optimizer, SparseEngine]:
    """Network (ER-scaled init), optimizer and sparse engine, all seeded from ``config.seed``."""
    torch.manual_seed(config.seed)
    net = LIFNet.from_config(config.model)
    densities = layer_densities(config, net)
    net.reset_parameters(densities)
    optimizer = build_optimizer(config, net)
    sparsity = config.sparsity
    engine = SparseEngine(
        net.named_weights(),
        optimizer,
        densities,
        total_iterations,
        prune=sparsity.prune,
        grow=sparsity.grow,
        alpha=sparsity.alpha,
        delta_t=sparsity.delta_t,
        t_end=sparsity.t_end,
        generator=torch.Generator().manual_seed(config.seed),
        masks=net.masks(),
    )
    return net, optimizer, engine


@torch.no_grad()
def accuracy(
    net: LIFNet, spikes: torch.Tensor, labels: torch.Tensor, mode: str, batch_size: int = 1000
) -> float:
    """Accuracy on pre-encoded spikes ``[T, N, n_in]`` in ``"float"`` or ``"qat"`` mode."""
    if len(labels) == 0:
        return float("nan")
    correct = 0
    for start in range(0, len(labels), batch_size):
        logits = net(spikes[:, start : start + batch_size], mode=mode)
        correct += int((logits.argmax(dim=1) == labels[start : start + batch_size]).sum())
    return correct / len(labels)


def _umask_mode(mode: int) -> int:
    """``mode`` less the process umask (``tempfile`` creates private 0600/0700 entries)."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` into a temporary file in the same folder, then ``os.replace`` it into place."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    os.chmod(temporary, _umask_mode(0o666))
    try:
        torch.save(obj, temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


@contextmanager
def _threads(count: int | None) -> Iterator[None]:
    """Run with ``count`` torch threads (default 1: the matrices are small, and more threads than
    free cores slows torch's CPU kernels down by an order of magnitude)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count or 1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass
class _Session:
    """The mutable objects of one training run."""

    config: Config
    net: LIFNet
    optimizer: torch.optim.Optimizer
    engine: SparseEngine
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    shuffle: torch.Generator
    bar: tqdm


def _train_epoch(session: _Session, data: _Data, epoch: int) -> dict[str, Any]:
    """One pass over the training split; return loss, accuracy and the ESL updates it made."""
    net, optimizer, engine = session.net, session.optimizer, session.engine
    n_train, batch_size = len(data.train_labels), session.config.train.batch_size
    net.train()
    order = torch.randperm(n_train, generator=session.shuffle)
    loss_sum, correct, updates = 0.0, 0, []
    for first in range(0, n_train, batch_size):
        index = order[first : first + batch_size]
        labels = data.train_labels[index]
        logits = net(data.train_spikes[:, index], mode="qat")
        loss = torch.nn.functional.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        stats = engine.step()
        if session.scheduler is not None:
            session.scheduler.step()
        if stats is not None:
            updates.append(stats.to_dict())
        loss_value = float(loss.detach())
        loss_sum += loss_value * len(index)
        correct += int((logits.argmax(dim=1) == labels).sum())
        session.bar.update(1)
        session.bar.set_postfix(epoch=epoch, loss=f"{loss_value:.3f}")
    return {"loss": loss_sum / n_train, "train_accuracy": correct / n_train, "esl_updates": updates}


def _checkpoint(session: _Session, epoch: int, record: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": RUN_FORMAT,
        "version": 1,
        "complete": False,
        "config": config_to_dict(session.config),
        "sizes": list(session.net.sizes),
        "model": {key: value.clone() for key, value in session.net.state_dict().items()},
        "sparse": session.engine.state_dict(),
        "epoch": epoch,
        "val_accuracy": record["val_accuracy"],
        "float_val_accuracy": record["float_val_accuracy"],
        "train_accuracy": record["train_accuracy"],
    }


def train(
    config: Config, out_dir: str | os.PathLike[str], force: bool = False, progress: bool = True
) -> TrainResult:
    """Train per ``config`` and write the run folder ``out_dir``; return the best epoch's scores.

    The best epoch is the one with the highest validation accuracy (the last epoch when
    ``val_fraction`` is 0). ``force`` replaces an existing non-empty ``out_dir``.
    """
    out_dir = Path(out_dir)
    check_writable_target(out_dir, force)
    start = time.perf_counter()
    data = _prepare_data(config)
    has_val = len(data.val_labels) > 0
    total = math.ceil(len(data.train_labels) / config.train.batch_size) * config.train.epochs
    with _threads(config.train.threads), staged_folder(out_dir, force) as staging:
        net, optimizer, engine = build_training(config, total)
        scheduler = None
        if config.train.lr_schedule == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
        bar = tqdm(total=total, disable=None if progress else True, desc="train", unit="it", leave=False)
        session = _Session(
            config, net, optimizer, engine, scheduler, torch.Generator().manual_seed(config.seed + 1), bar
        )
        log.info("training %s, densities %s, %d iterations", net.sizes, engine.densities(), total)
        (staging / CONFIG_FILE).write_text(dump_config(config))
        best: dict[str, Any] = {}
        best_score = -math.inf
        for epoch in range(1, config.train.epochs + 1):
            epoch_start = time.perf_counter()
            record: dict[str, Any] = {"epoch": epoch, **_train_epoch(session, data, epoch)}
            net.eval()
            record["val_accuracy"] = (
                accuracy(net, data.val_spikes, data.val_labels, "qat") if has_val else None
            )
            record["float_val_accuracy"] = (
                accuracy(net, data.val_spikes, data.val_labels, "float") if has_val else None
            )
            record.update(
                density=engine.densities(),
                overall_density=engine.overall_density(),
                seconds=time.perf_counter() - epoch_start,
            )
            with (staging / METRICS_FILE).open("a") as handle:
                handle.write(json.dumps(record) + "\n")
            log.info(
                "epoch %d: loss %.4f train %.4f val %s (float %s)",
                epoch,
                record["loss"],
                record["train_accuracy"],
                record["val_accuracy"],
                record["float_val_accuracy"],
            )
            score = record["val_accuracy"] if has_val else float(epoch)
            if score > best_score:
                best_score, best = score, _checkpoint(session, epoch, record)
                save_atomic(best, staging / CHECKPOINT_FILE)
        bar.close()
        best["complete"] = True
        save_atomic(best, staging / CHECKPOINT_FILE)
    seconds = time.perf_counter() - start
    log.info("run written to %s in %.1f s (best epoch %d)", out_dir, seconds, best["epoch"])
    return TrainResult(
        out_dir, best["epoch"], best["val_accuracy"], best["float_val_accuracy"], engine.densities(), seconds
    )
