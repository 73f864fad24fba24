"""End to end: the host driver against the host-link gateware through a bit-level simulated UART."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import random_model

from esl_hw.errors import EslError
from esl_hw.fpga.linksim import run_link_cosim, wrapper_verilog


@pytest.mark.skipif(
    shutil.which("iverilog") is None, reason="Icarus Verilog not installed (apt-get install iverilog)"
)
def test_driver_and_gateware_agree_bit_for_bit(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    model = random_model(rng, (40, 12, 4), timesteps=4, w_bits=6, v_bits=10, threshold=20)
    images = rng.integers(0, 256, (3, 40), dtype=np.uint8)
    report = run_link_cosim(model, images, build_dir=tmp_path, event_depth=16)
    assert report["checks"] == dict.fromkeys(report["checks"], True)
    expected = {"bad_crc", "overflow", "timeout", "garbage_skipped", "memory_length", "rewire_refused"}
    memory = {"memory_read", "memory_write", "memory_write_bad_crc_writes_nothing", "rewire_read_back"}
    assert expected | memory <= set(report["checks"])
    run = report["run"]
    assert run["samples"] == 3 and run["mismatches"] == 0
    assert run["predictions"] == run["expected_predictions"]
    assert report["ok"]


def test_bad_images_are_refused(tmp_path: Path) -> None:
    model = random_model(np.random.default_rng(5), (40, 12, 4))
    with pytest.raises(EslError, match=r"images must be uint8 \[N, 40\], got int64 \[2, 40\]"):
        run_link_cosim(model, np.zeros((2, 40), dtype=np.int64), build_dir=tmp_path)


def test_wrapper_makes_clock_and_reset() -> None:
    text = wrapper_verilog()
    assert "always #5 clk = ~clk;" in text and ".rx(rx), .tx(tx)" in text
