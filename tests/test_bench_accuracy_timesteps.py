"""bench/accuracy_timesteps.py: the run configs and the table (training is the bench)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parent.parent / "bench" / "accuracy_timesteps.py"
_SPEC = importlib.util.spec_from_file_location("bench_accuracy_timesteps", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = bench  # its dataclass looks its module up
_SPEC.loader.exec_module(bench)


def test_job_config_changes_only_timesteps_epochs_data_and_device(tmp_path: Path) -> None:
    base = bench.load_config(bench.CONFIGS / "mnist_multispike_d0.1.yaml")
    config = bench.job_config(0.1, 4, tmp_path, 3, seed=1)
    assert config.model.timesteps == 4 and config.train.epochs == 3
    assert config.data.path == str(tmp_path) and config.train.device == "cpu" and config.seed == 1
    assert config.sparsity == base.sparsity and config.model.hidden == base.model.hidden
    assert bench.job_config(0.05, 2, tmp_path, None, 0).train.epochs == base.train.epochs


def test_finished_needs_the_checkpoint(tmp_path: Path) -> None:
    assert not bench.finished(tmp_path)
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    assert bench.finished(tmp_path)


def test_markdown_sorts_by_density_then_timesteps() -> None:
    def row(timesteps: int, density: float, accuracy: float) -> dict:
        floors = {str(lanes): 1000.0 / lanes for lanes in bench.LANES}
        return {"timesteps": timesteps, "density": density, "synapses": 63520, "epochs": 30,
                "best_epoch": 18, "accuracy": accuracy, "sops_per_image": 37125.4,
                "floor_cycles": floors, "train_seconds": 600.0}  # fmt: skip

    results = {"command": "c", "date": "d", "seed": 0, "epochs_note": "30 epochs", "test_images": 10000,
               "planned": 8, "machine": "m", "load_start": "1", "load_end": "2", "runs": "runs/timesteps",
               "rows": [row(4, 0.1, 0.9813), row(2, 0.1, 0.9775), row(4, 0.05, 0.9768)]}  # fmt: skip
    lines = [line for line in bench.markdown(results).splitlines() if line.startswith("| ") and "%" in line]
    assert [line.split(" | ")[:2] for line in lines] == [["| 4", "0.05"], ["| 2", "0.1"], ["| 4", "0.1"]]
    assert "| 98.13% | 37,125 | 62 | 31 | 16 | 10.0 |" in lines[2]
    assert "Runs complete: 3 of 8." in bench.markdown(results)
