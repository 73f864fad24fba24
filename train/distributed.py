"""Multi-process data-parallel training with ``torch.distributed`` (DDP; gloo on CPU).

Start one process per rank, e.g. ``torchrun --nproc-per-node 2 -m esl_hw train CONFIG --out RUN``:
:func:`init_from_environment` joins the process group that ``torchrun``'s environment describes
(``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), and :func:`esl_hw.train.loop.train`
then

- shuffles with the same seed on every rank and gives rank ``r`` the ``r``-th share of every global
  batch (:func:`shard`), so a global batch is the same as in a single-process run;
- wraps the network in ``DistributedDataParallel`` (gradients averaged over the ranks);
- lets the sparse engine take rank 0's prune-and-regrow choice on every rank, so masks, weights and
  optimizer states stay identical everywhere (checked with :func:`mask_digest`);
- writes the run folder from rank 0 only.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

import torch
import torch.distributed as dist


def active() -> bool:
    """Whether a process group is up with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def init_from_environment(backend: str = "gloo") -> bool:
    """Join the process group described by ``torchrun``'s environment; False when ``WORLD_SIZE`` ≤ 1."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or (dist.is_available() and dist.is_initialized()):
        return active()
    dist.init_process_group(backend)
    return True


def shard(index: torch.Tensor) -> torch.Tensor:
    """This rank's share ``index[rank::world_size]`` of a global batch."""
    return index[rank() :: world_size()] if active() else index


def wrap(module: torch.nn.Module) -> torch.nn.Module:
    """``DistributedDataParallel(module)`` when distributed, else ``module`` itself."""
    return torch.nn.parallel.DistributedDataParallel(module) if active() else module


def sum_over_ranks(values: Sequence[float]) -> list[float]:
    """Element-wise sum of ``values`` over all ranks (identity when not distributed)."""
    if not active():
        return list(values)
    tensor = torch.tensor(list(values), dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


def barrier() -> None:
    if active():
        dist.barrier()


def mask_digest(masks: Sequence[torch.Tensor]) -> str:
    """SHA-256 of the masks, to compare them across ranks and runs."""
    digest = hashlib.sha256()
    for mask in masks:
        digest.update(mask.to(torch.uint8).cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def check_masks_agree(masks: Sequence[torch.Tensor]) -> None:
    """Raise ``RuntimeError`` unless every rank holds the same masks."""
    if not active():
        return
    local = torch.tensor(list(bytes.fromhex(mask_digest(masks))), dtype=torch.uint8)
    gathered = [torch.zeros_like(local) for _ in range(world_size())]
    dist.all_gather(gathered, local)
    if any(not torch.equal(other, local) for other in gathered):
        raise RuntimeError("sparse masks differ between ranks")
