"""Training loop: ESL sparse training of the network of a task (:mod:`esl_hw.train.tasks`).

The task of ``model.kind`` (:func:`esl_hw.train.tasks.task_for`) prepares the data and builds the
network; the loop knows nothing else about it. Per iteration: the task's loss is back-propagated
(``lif``: ``loss = CE(net(spikes, "qat"), labels)``), ``optimizer.step()``, ``engine.step()``
(prune-and-regrow when due, masks applied). After every epoch the validation split (``val_fraction``
of the training set) is scored in QAT mode (for ``lif`` the integer arithmetic) and in float mode,
and the best epoch is kept.

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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from esl_hw import progress as esl_progress
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
from esl_hw.train.export import CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE, RUN_FORMAT
from esl_hw.train.sparse import SparseEngine
from esl_hw.train.sparse_rules import er_densities_from_epsilon, scaled_densities
from esl_hw.train.tasks import Task, TaskData, split_train_val, task_for

__all__ = [
    "TrainResult",
    "accuracy",
    "build_optimizer",
    "build_training",
    "layer_densities",
    "resolve_device",
    "split_train_val",
    "train",
]

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


def layer_densities(config: Config, layers: list[tuple[str, torch.nn.Parameter]]) -> list[float]:
    """Per-layer densities of the sparse ``layers`` from ``sparsity.density`` (ER scaling) or
    ``sparsity.epsilon``."""
    shapes = [tuple(weight.shape) for _, weight in layers]
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
    return adam(net.parameters(), config.train.lr)


def adam(params: Iterable[torch.nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam with torch's fused kernel (one pass over each tensor: on CPU about 4x faster than the
    per-operation update; the same update up to the last bit of rounding)."""
    return torch.optim.Adam(params, lr=lr, fused=True)


def build_training(
    config: Config, total_iterations: int, data: TaskData | None = None
) -> tuple[torch.nn.Module, torch.optim.Optimizer, SparseEngine]:
    """Network (ER-scaled init), optimizer and sparse engine, all seeded from ``config.seed``; the
    network is sized for ``data`` (the task's prepared data; ``None``: an MLP for MNIST's sizes)."""
    task = task_for(config)
    torch.manual_seed(config.seed)
    net = task.build_net(config, data)
    densities = layer_densities(config, task.sparse_layers(net))
    task.initialise(net, densities)
    net.to(resolve_device(config.train.device))  # initialised on the CPU: the same start on any device
    optimizer = build_optimizer(config, net)
    sparsity = config.sparsity
    engine = SparseEngine(
        task.sparse_layers(net),
        optimizer,
        densities,
        total_iterations,
        prune=sparsity.prune,
        grow=sparsity.grow,
        alpha=sparsity.alpha,
        delta_t=sparsity.delta_t,
        t_end=sparsity.t_end,
        generator=torch.Generator().manual_seed(config.seed),
        masks=task.masks(net),
        lanes=sparsity.lanes,
        lfsr_seed=sparsity.lfsr_seed,
        integer_weights=task.integer_weights(net),
        redistribute=sparsity.redistribute,
        fixed=sorted({*sparsity.dense_layers, *dict(sparsity.layer_density)}),
    )
    return net, optimizer, engine


@torch.no_grad()
def accuracy(
    task: Task, net: torch.nn.Module, data: TaskData, mode: str, batch_size: int = 1000
) -> float | None:
    """Accuracy of ``net`` on the validation split of ``data`` in ``"qat"`` or ``"float"`` mode (where
    the task has both, :meth:`Task.logits`); None without validation samples."""
    if len(data.val_labels) == 0:
        return None
    device = next(net.parameters()).device
    correct = 0
    for start in range(0, len(data.val_labels), batch_size):
        part = slice(start, start + batch_size)
        logits = task.logits(net, data.select(data.val_inputs, part).to(device), mode)
        predicted = logits.argmax(dim=1).cpu()
        correct += int((predicted == data.val_labels[part]).sum())
    return correct / len(data.val_labels)


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
    task: Task
    net: torch.nn.Module
    model: torch.nn.Module  # the net, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    engine: SparseEngine
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    shuffle: torch.Generator
    bar: tqdm | None


def _train_epoch(session: _Session, data: TaskData, epoch: int) -> dict[str, Any]:
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
        if data.train_batch is None:
            inputs = data.select(data.train_inputs, index)
        else:  # built for this batch (augmentation): the same key gives the same inputs on resume
            inputs = data.train_batch(index, (session.config.seed, epoch, first))
        inputs = inputs.to(device)
        targets = None if data.train_targets is None else data.train_targets[index].to(device)
        optimizer.zero_grad(set_to_none=True)
        extra = () if targets is None else (targets,)  # a task without a teacher may take 5 arguments
        loss, logits = session.task.backward(model, net, inputs, labels, session.config, *extra)
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


def _epoch_line(record: dict[str, Any], epochs: int) -> str:
    """``train epoch 2/5  loss 0.41  val 0.93  density 0.10  (14.2 s)``: one epoch's progress line."""
    val = record["val_accuracy"]
    return (
        f"train epoch {record['epoch']}/{epochs}  loss {record['loss']:.4g}  "
        f"val {'n/a' if val is None else f'{val:.4f}'}  density {record['overall_density']:.4f}  "
        f"({esl_progress.elapsed_text(record['seconds'])})"
    )


def _checkpoint(session: _Session, epoch: int, record: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": RUN_FORMAT,
        "version": 1,
        "complete": False,
        "config": config_to_dict(session.config),
        "sizes": session.task.signature(session.net),
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
        "sizes": session.task.signature(session.net),
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
    on_complete: Callable[[Path], None] | None = None,
) -> TrainResult:
    """Train per ``config`` and write the run folder ``out_dir``; return the best epoch's scores.

    The best epoch is the one with the highest validation accuracy (the last epoch when
    ``val_fraction`` is 0). ``force`` replaces an existing non-empty ``out_dir`` (and a leftover
    interrupted run). ``resume`` continues an interrupted run of ``out_dir`` from its last finished
    epoch; the config must be the one it was started with. The result is then identical to an
    uninterrupted run: same weights, masks and metrics. ``out_dir`` follows the output rule of
    :mod:`esl_hw.outputs`; it must not be or contain ``inputs`` (e.g. the config file) or the data.
    ``on_complete`` is called with the work folder once it holds the finished run (complete
    ``metrics.jsonl`` and ``checkpoint.pt``), before it is published, to add files such as
    figures and a report (the main process only).
    """
    out_dir = Path(out_dir)
    inputs = [*inputs, config.data.path]
    distributed.init_from_environment()
    check_work_folder(out_dir, force, resume, inputs)
    start = time.perf_counter()
    task = task_for(config)
    data = task.prepare_data(config)
    has_val = len(data.val_labels) > 0
    total = math.ceil(len(data.train_labels) / config.train.batch_size) * config.train.epochs
    with _threads(config.train.threads):
        net, optimizer, engine = build_training(config, total, data)
        scheduler = None
        if config.train.lr_schedule == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
        shuffle = torch.Generator().manual_seed(config.seed + 1)
        session = _Session(config, task, net, net, optimizer, engine, scheduler, shuffle, None)
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
            state = load_state(work, config_to_dict(config), task.signature(net))
            done, best, best_score = _restore(session, state)
            if main:
                truncate_metrics(work / METRICS_FILE, done)
            log.info("resuming %s after epoch %d", out_dir, done)
        elif main:
            (work / CONFIG_FILE).write_text(dump_config(config))
        session.model = distributed.wrap(net)
        per_epoch = total // config.train.epochs
        shown = progress and main and not esl_progress.is_quiet()
        # a live bar on a terminal (kept when done); elsewhere one timestamped line per epoch
        session.bar = tqdm(
            total=total,
            initial=done * per_epoch,
            disable=not (shown and esl_progress.live()),
            desc="train",
            unit="it",
            leave=True,
        )
        log.info("training %s, densities %s, %d iterations", task.signature(net), engine.densities(), total)
        network = "-".join(str(size) for size in task.signature(net))
        esl_progress.note(
            f"train: {network} network, epochs {done + 1}..{config.train.epochs} of {per_epoch} iterations",
            echo=shown and not esl_progress.live(),
        )
        for epoch in range(done + 1, config.train.epochs + 1):
            epoch_start = time.perf_counter()
            record: dict[str, Any] = {"epoch": epoch, **_train_epoch(session, data, epoch)}
            net.eval()
            record["val_accuracy"] = accuracy(task, net, data, "qat")
            record["float_val_accuracy"] = accuracy(task, net, data, "float")
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
            plain = shown and not esl_progress.live()  # on a terminal the bar shows it
            esl_progress.note(_epoch_line(record, config.train.epochs), echo=plain)
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
            if on_complete is not None:
                on_complete(work)
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
