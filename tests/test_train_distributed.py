"""Tests for esl_hw.train.distributed: a 2-process gloo run of train() keeps masks identical."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from esl_hw.train import distributed
from esl_hw.train.config import config_from_dict
from esl_hw.train.export import load_checkpoint
from esl_hw.train.loop import train

CONFIG = {
    "seed": 2,
    "data": {"train_samples": 600, "val_fraction": 0.25},
    "model": {"hidden": [24], "timesteps": 4},
    "sparsity": {"density": 0.3, "delta_t": 3, "grow": "momentum"},
    "train": {"epochs": 2, "batch_size": 50, "lr": 0.01},
}


def _worker(rank: int, folder: str) -> None:
    init = f"file://{folder}/init"
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    assert distributed.active() and distributed.world_size() == 2
    result = train(config_from_dict(CONFIG), Path(folder) / "run", progress=False)
    (Path(folder) / f"rank{rank}.json").write_text(
        json.dumps({"digest": result.mask_digest, "val": result.val_accuracy})
    )
    torch.distributed.destroy_process_group()


def test_two_process_training_keeps_masks_identical(tmp_path: Path) -> None:
    torch.multiprocessing.spawn(_worker, args=(str(tmp_path),), nprocs=2, join=True)
    results = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    assert results[0] == results[1]
    assert results[0]["val"] > 0.5
    checkpoint = load_checkpoint(tmp_path / "run")
    assert checkpoint["complete"]
    records = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(records) == 2


def test_single_process_helpers_are_identities() -> None:
    index = torch.arange(10)
    assert not distributed.active() and distributed.is_main()
    assert torch.equal(distributed.shard(index), index)
    assert distributed.sum_over_ranks([1.0, 2.0]) == [1.0, 2.0]
    masks = [torch.tensor([True, False])]
    assert distributed.mask_digest(masks) == distributed.mask_digest([m.clone() for m in masks])
    assert distributed.mask_digest(masks) != distributed.mask_digest([~masks[0]])
    assert not distributed.init_from_environment()
