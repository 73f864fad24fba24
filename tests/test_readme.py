"""The README's claims that can be run: its demo table against a fresh ``esl-hw demo``
(``bench/readme_demo.py`` wrote it) and its "From Python" block, run as it stands."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _readme_demo():
    spec = importlib.util.spec_from_file_location("readme_demo", ROOT / "bench" / "readme_demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


readme_demo = _readme_demo()


def python_block(section: str) -> str:
    """The first ```python block after the heading ``## <section>``."""
    text = README.split(f"\n## {section}\n", 1)[1]
    return text.split("```python\n", 1)[1].split("\n```", 1)[0]


def test_table_parsing_ignores_times_and_sees_every_other_row() -> None:
    table = "\n".join(
        [
            "esl-hw demo: x, written to demo-out",
            "-----",
            "float_accuracy   0.9",
            "memory bits  12",
            "total seconds  3.1",
        ]
    )
    assert readme_demo.rows_of(table) == {"float_accuracy": "0.9", "memory bits": "12"}
    changed = readme_demo.replace_block(README, "NEW")
    assert readme_demo.readme_block(changed) == "NEW"
    assert changed.split(readme_demo.START)[0] == README.split(readme_demo.START)[0]
    written = readme_demo.replace_block(README, readme_demo.block("esl-hw demo:\nx  1", 3.0, 0.5))
    assert readme_demo.readme_cpu(written) == readme_demo.cpu_signature() != ""
    assert readme_demo.readme_torch(written) == __import__("torch").__version__
    assert readme_demo.readme_cpu(changed) == ""


def test_readme_demo_table_is_what_a_fresh_demo_prints(tmp_path: Path) -> None:
    import torch

    recorded = readme_demo.readme_torch(README)
    if torch.__version__ != recorded:
        pytest.skip(f"the README's table was made with torch {recorded}, this is {torch.__version__}")
    cpu = readme_demo.readme_cpu(README)
    if cpu != readme_demo.cpu_signature():
        # float training rounds differently on other kernels (seen: AVX512 on an AMD EPYC gave
        # other accuracies than the machine that wrote the table)
        pytest.skip(f"the README's table was made on another CPU ({cpu or 'not recorded'})")
    table, _ = readme_demo.run_demo(tmp_path)
    assert readme_demo.rows_of(table) == readme_demo.rows_of(readme_demo.readme_table(README))
    assert table.splitlines()[0] == readme_demo.readme_table(README).splitlines()[0]


def test_from_python_block_runs_as_written(tmp_path: Path) -> None:
    code = python_block("From Python")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    # what the block's comments promise
    assert lines[0] == "Model(784-800-10, T=8, 31760 synapses, density 0.0500)"
    assert lines[2] == "(8, 4, 800) (8, 4, 800)"
    assert lines[3].startswith("(4, 10) [")
    assert lines[-1].startswith("RTL: 0 mismatches, ")
