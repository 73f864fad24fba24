"""Training loop: ESL sparse training of :class:`LIFNet` with QAT on MNIST.

Per iteration: ``loss = CE(net(spikes, "qat"), labels)``, ``optimizer.step()``, ``engine.step()``
(prune-and-regrow when due, masks applied). After every epoch the validation split (``val_fraction``
of the training set) is scored in QAT mode, whose arithmetic is the integer arithmetic, and the best
epoch is kept.

The run folder appears only when training completes: everything is written into the hidden work
folder ``.<name>.partial`` next to ``out_dir`` and renamed into place at the end, so a half-written
run never looks complete. It holds ``config.yaml`` (resolved config), ``checkpoint.pt`` (best epoch:
model state with masks, sparse-engine state, config, accuracies; written atomically) and
``metrics.jsonl`` (one JSON object per epoch). While training, the work folder also holds the resume
state of the last finished epoch (:mod:`esl_hw.train.checkpoint`): ``train(..., resume=True)``
continues a killed run and ends exactly where an uninterrupted run would.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from esl_hw.datasets import Split, load_mnist
from esl_hw.errors import EslError
from esl_hw.train import distributed
from esl_hw.train.checkpoint import (
    STATE_FILE,
    STATE_FORMAT,
    check_work_folder,
    finish_work_folder,
    load_state,
    open_work_folder,
    save_atomic,
    truncate_metrics,
    work_folder,
)
from esl_hw.train.config import Config, config_to_dict, dump_config
from esl_hw.train.conv import tet_loss
from esl_hw.train.export import CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE, RUN_FORMAT
from esl_hw.train.model import LIFNet, encode_batch
from esl_hw.train.single_spike import SingleSpikeNet, normalise_gradients, temporal_loss, weight_sum_cost
from esl_hw.train.sparse import SparseEngine
from esl_hw.train.sparse_rules import er_densities_from_epsilon, scaled_densities
from esl_hw.train.tasks import VisionData, build_conv, load_vision, sparse_layers

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
    mask_digest: str = ""


@dataclass(frozen=True)
class _Data:
    train_spikes: torch.Tensor  # LIF: [T, N, n_in] bool; single spike: images [N, n_in] uint8
    train_labels: torch.Tensor
    val_spikes: torch.Tensor
    val_labels: torch.Tensor
    batch_dim: int = 1
    vision: VisionData | None = None


def split_train_val(split: Split, val_fraction: float, seed: int) -> tuple[Split, Split]:
    """Shuffle with ``seed`` and hold out ``round(val_fraction · N)`` samples for validation."""
    order = np.random.default_rng(seed).permutation(len(split))
    n_val = round(val_fraction * len(split))
    val, train = order[:n_val], order[n_val:]
    return Split(split.images[train], split.labels[train]), Split(split.images[val], split.labels[val])


def _prepare_data(config: Config) -> _Data:
    if config.data.dataset != "mnist":
        vision = load_vision(config)
        inputs = (vision.train_inputs, vision.train_labels, vision.val_inputs, vision.val_labels)
        return _Data(*inputs, batch_dim=0, vision=vision)
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
    if config.model.kind == "single_spike":
        return _Data(
            torch.from_numpy(train_split.images),
            torch.from_numpy(train_split.labels),
            torch.from_numpy(val_split.images),
            torch.from_numpy(val_split.labels),
            batch_dim=0,
        )
    steps = config.model.timesteps
    return _Data(
        encode_batch(train_split.images, steps),
        torch.from_numpy(train_split.labels),
        encode_batch(val_split.images, steps),
        torch.from_numpy(val_split.labels),
    )


def _select(inputs: torch.Tensor, batch_dim: int, index: torch.Tensor | slice) -> torch.Tensor:
    return inputs[index] if batch_dim == 0 else inputs[:, index]


def _layers(net: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    return net.named_weights() if isinstance(net, LIFNet | SingleSpikeNet) else sparse_layers(net)


def model_signature(net: torch.nn.Module) -> list[Any]:
    """Layer sizes of an MLP, or the weight shapes of a conv net (what a checkpoint must match)."""
    if isinstance(net, LIFNet | SingleSpikeNet):
        return list(net.sizes)
    return [list(weight.shape) for _, weight in sparse_layers(net)]


def layer_densities(config: Config, net: torch.nn.Module) -> list[float]:
    """Per-layer densities from ``sparsity.density`` (ER scaling) or ``sparsity.epsilon``."""
    shapes = [tuple(weight.shape) for _, weight in _layers(net)]
    sparsity = config.sparsity
    overrides = dict(sparsity.layer_density)
    if sparsity.density is not None:
        return scaled_densities(shapes, sparsity.density, sparsity.init, sparsity.dense_layers, overrides)
    densities = er_densities_from_epsilon(shapes, sparsity.epsilon, sparsity.dense_layers)
    return [overrides.get(index, density) for index, density in enumerate(densities)]


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` (an :class:`EslError` when torch sees no GPU) or ``auto`` (cuda if available)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise EslError("train.device: cuda asked for, but torch sees no CUDA GPU (use cpu or auto)")
    return torch.device(name)


def build_optimizer(config: Config, net: torch.nn.Module) -> torch.optim.Optimizer:
    if config.train.optimizer == "sgd":
        return torch.optim.SGD(net.parameters(), lr=config.train.lr, momentum=0.9)
    return torch.optim.Adam(net.parameters(), lr=config.train.lr)


def build_training(
    config: Config, total_iterations: int, vision: VisionData | None = None
) -> tuple[torch.nn.Module, torch.optim.Optimizer, SparseEngine]:
    """Network (ER-scaled init), optimizer and sparse engine, all seeded from ``config.seed``."""
    torch.manual_seed(config.seed)
    net: torch.nn.Module
    if config.model.kind == "single_spike":
        net = SingleSpikeNet(config.model.hidden, levels=config.model.levels, t_max=config.model.t_max)
    elif vision is not None:
        net = build_conv(config, vision)
    else:
        net = LIFNet.from_config(config.model)
    densities = layer_densities(config, net)
    if isinstance(net, LIFNet | SingleSpikeNet):
        net.reset_parameters(densities)
    net.to(resolve_device(config.train.device))  # initialised on the CPU: the same start on any device
    optimizer = build_optimizer(config, net)
    sparsity = config.sparsity
    engine = SparseEngine(
        _layers(net),
        optimizer,
        densities,
        total_iterations,
        prune=sparsity.prune,
        grow=sparsity.grow,
        alpha=sparsity.alpha,
        delta_t=sparsity.delta_t,
        t_end=sparsity.t_end,
        generator=torch.Generator().manual_seed(config.seed),
        masks=net.masks() if isinstance(net, LIFNet | SingleSpikeNet) else None,
        lanes=sparsity.lanes,
        lfsr_seed=sparsity.lfsr_seed,
        integer_weights=net.integer_weights if isinstance(net, LIFNet) else None,
    )
    return net, optimizer, engine


@torch.no_grad()
def accuracy(
    net: torch.nn.Module,
    spikes: torch.Tensor,
    labels: torch.Tensor,
    mode: str,
    batch_size: int = 1000,
) -> float:
    """Accuracy on pre-encoded spikes ``[T, N, n_in]`` in ``"float"`` or ``"qat"`` mode (LIF), or on
    images ``[N, n_in]`` (single spike: the first output to fire; ``mode`` does not apply)."""
    if len(labels) == 0:
        return float("nan")
    single = isinstance(net, SingleSpikeNet)
    batch_first = not isinstance(net, LIFNet)
    device = next(net.parameters()).device
    correct = 0
    for start in range(0, len(labels), batch_size):
        part = slice(start, start + batch_size)
        if batch_first:
            outputs = net(spikes[part].to(device))
            logits = -outputs if single else outputs.mean(dim=0)
        else:
            logits = net(spikes[:, part].to(device), mode=mode)
        predicted = logits.argmax(dim=1).cpu()
        correct += int((predicted == labels[part]).sum())
    return correct / len(labels)


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
    net: torch.nn.Module
    model: torch.nn.Module  # the net, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    engine: SparseEngine
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    shuffle: torch.Generator
    bar: tqdm | None


def _train_epoch(session: _Session, data: _Data, epoch: int) -> dict[str, Any]:
    """One pass over the training split; return loss, accuracy and the ESL updates it made."""
    net, optimizer, engine = session.net, session.optimizer, session.engine
    model = session.model
    n_train, batch_size = len(data.train_labels), session.config.train.batch_size
    net.train()
    device = next(net.parameters()).device
    order = torch.randperm(n_train, generator=session.shuffle)
    loss_sum, correct, updates = 0.0, 0, []
    for first in range(0, n_train, batch_size):
        index = distributed.shard(order[first : first + batch_size])
        labels = data.train_labels[index].to(device)
        inputs = _select(data.train_spikes, data.batch_dim, index).to(device)
        optimizer.zero_grad(set_to_none=True)
        if isinstance(net, SingleSpikeNet):
            times = model(inputs)
            logits = -times
            loss = temporal_loss(times, labels)
            loss.backward()
            # the weight-sum cost is the same on every rank: add its gradient outside DDP's reduction
            cost = weight_sum_cost(net, session.config.model.weight_cost)
            for weight, grad in zip(net.weights, torch.autograd.grad(cost, list(net.weights)), strict=True):
                weight.grad = grad if weight.grad is None else weight.grad + grad
            normalise_gradients(net)
        elif isinstance(net, LIFNet):
            logits = model(inputs, mode="qat")
            loss = torch.nn.functional.cross_entropy(logits, labels)
            loss.backward()
        else:
            outputs = model(inputs)
            logits = outputs.detach().mean(dim=0)
            loss = tet_loss(outputs, labels, session.config.model.tet_lambda)
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
    loss_sum, correct = distributed.sum_over_ranks([loss_sum, correct])
    return {"loss": loss_sum / n_train, "train_accuracy": correct / n_train, "esl_updates": updates}


def _checkpoint(session: _Session, epoch: int, record: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": RUN_FORMAT,
        "version": 1,
        "complete": False,
        "config": config_to_dict(session.config),
        "sizes": model_signature(session.net),
        "model": {key: value.detach().cpu().clone() for key, value in session.net.state_dict().items()},
        "sparse": session.engine.state_dict(),
        "epoch": epoch,
        "val_accuracy": record["val_accuracy"],
        "float_val_accuracy": record["float_val_accuracy"],
        "train_accuracy": record["train_accuracy"],
    }


def _training_state(session: _Session, epoch: int, best: dict[str, Any], best_score: float) -> dict[str, Any]:
    """Everything :func:`train` needs to continue after ``epoch`` (see :mod:`.checkpoint`)."""
    return {
        "format": STATE_FORMAT,
        "config": config_to_dict(session.config),
        "sizes": model_signature(session.net),
        "epoch": epoch,
        "model": session.net.state_dict(),
        "optimizer": session.optimizer.state_dict(),
        "sparse": session.engine.state_dict(),
        "scheduler": None if session.scheduler is None else session.scheduler.state_dict(),
        "shuffle": session.shuffle.get_state(),
        "best": best,
        "best_score": best_score,
    }


def _restore(session: _Session, state: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
    """Load a saved training state into ``session``; return ``(epoch, best, best_score)``."""
    try:
        session.net.load_state_dict(state["model"])
        session.optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError, TypeError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[-1].strip()
        raise EslError(f"training state does not fit the configured model: {first}") from None
    try:
        session.engine.load_state_dict(state["sparse"])
        if session.scheduler is not None:
            session.scheduler.load_state_dict(state["scheduler"])
        session.shuffle.set_state(state["shuffle"])
        epoch, best, best_score = state["epoch"], state["best"], float(state["best_score"])
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not isinstance(best, dict):
            raise TypeError("epoch or best")
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
        raise EslError(
            f"training state is damaged ({type(error).__name__}: {error})".splitlines()[0]
        ) from None
    return epoch, best, best_score


def train(
    config: Config,
    out_dir: str | os.PathLike[str],
    force: bool = False,
    progress: bool = True,
    resume: bool = False,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
) -> TrainResult:
    """Train per ``config`` and write the run folder ``out_dir``; return the best epoch's scores.

    The best epoch is the one with the highest validation accuracy (the last epoch when
    ``val_fraction`` is 0). ``force`` replaces an existing non-empty ``out_dir`` (and a leftover
    interrupted run). ``resume`` continues an interrupted run of ``out_dir`` from its last finished
    epoch; the config must be the one it was started with. The result is then identical to an
    uninterrupted run: same weights, masks and metrics. ``out_dir`` follows the output rule of
    :mod:`esl_hw.outputs`; it must not be or contain ``inputs`` (e.g. the config file) or the data.
    """
    out_dir = Path(out_dir)
    inputs = [*inputs, config.data.path]
    distributed.init_from_environment()
    check_work_folder(out_dir, force, resume, inputs)
    start = time.perf_counter()
    data = _prepare_data(config)
    has_val = len(data.val_labels) > 0
    total = math.ceil(len(data.train_labels) / config.train.batch_size) * config.train.epochs
    with _threads(config.train.threads):
        net, optimizer, engine = build_training(config, total, data.vision)
        scheduler = None
        if config.train.lr_schedule == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
        shuffle = torch.Generator().manual_seed(config.seed + 1)
        session = _Session(config, net, net, optimizer, engine, scheduler, shuffle, None)
        main = distributed.is_main()
        target = check_work_folder(out_dir, force, resume, inputs)  # every rank, before rank 0 writes
        distributed.barrier()
        if main:
            work, resuming, target = open_work_folder(out_dir, force, resume, inputs)
        else:
            work, resuming = work_folder(out_dir), resume
        distributed.barrier()
        done, best, best_score = 0, {}, -math.inf
        if resuming:
            state = load_state(work, config_to_dict(config), model_signature(net))
            done, best, best_score = _restore(session, state)
            if main:
                truncate_metrics(work / METRICS_FILE, done)
            log.info("resuming %s after epoch %d", out_dir, done)
        elif main:
            (work / CONFIG_FILE).write_text(dump_config(config))
        session.model = distributed.wrap(net)
        per_epoch = total // config.train.epochs
        session.bar = tqdm(
            total=total,
            initial=done * per_epoch,
            disable=None if progress and main else True,
            desc="train",
            unit="it",
            leave=False,
        )
        log.info("training %s, densities %s, %d iterations", model_signature(net), engine.densities(), total)
        for epoch in range(done + 1, config.train.epochs + 1):
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
            if main:
                with (work / METRICS_FILE).open("a") as handle:
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
                if main:
                    save_atomic(best, work / CHECKPOINT_FILE)
            if main:
                save_atomic(_training_state(session, epoch, best, best_score), work / STATE_FILE)
            distributed.barrier()  # every rank resumes from the same saved epoch
        session.bar.close()
        distributed.check_masks_agree(engine.masks)
        best["complete"] = True
        if main:
            save_atomic(best, work / CHECKPOINT_FILE)
            finish_work_folder(work, target)
        distributed.barrier()
    seconds = time.perf_counter() - start
    log.info("run written to %s in %.1f s (best epoch %d)", out_dir, seconds, best["epoch"])
    return TrainResult(
        out_dir,
        best["epoch"],
        best["val_accuracy"],
        best["float_val_accuracy"],
        engine.densities(),
        seconds,
        distributed.mask_digest(engine.masks),
    )
