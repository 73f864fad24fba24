"""Build cache entries made by hand (no simulator), build keys of one-file sources, and locks held by
another process."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from esl_hw.sim.build import build_key
from esl_hw.sim.build_cache import ENTRY_MARKER, MB, STAMP, mark_entry, stamp_entry

#: a process that locks ``argv[1]`` (shared with ``argv[2] == "shared"``), says so and waits for stdin
HOLDER = """
import fcntl, os, sys
descriptor = os.open(sys.argv[1], os.O_RDONLY if sys.argv[2] == "shared" else os.O_WRONLY | os.O_CREAT)
fcntl.flock(descriptor, fcntl.LOCK_SH if sys.argv[2] == "shared" else fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


def fake_key(text: str) -> str:
    """A 20-digit key like :func:`esl_hw.sim.build.build_key`'s, from ``text``."""
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def key_of(
    tmp_path: Path, text: str = "module top; endmodule\n", simulator: str = "icarus", mode: str = "cocotb"
) -> str:
    """The :func:`esl_hw.sim.build.build_key` of one source ``top.v`` holding ``text``, written into
    a new folder ``tmp_path/key-<n>``."""
    folder = tmp_path / f"key-{len(list(tmp_path.glob('key-*')))}"
    folder.mkdir()
    (folder / "top.v").write_text(text)
    return build_key(simulator, [folder / "top.v"], "top", mode)


def make_entry(
    root: Path,
    name: str,
    megabytes: float = 1.0,
    last_used: float = 1_000_000.0,
    simulator: str = "icarus",
    finished: bool = True,
) -> Path:
    """A cache entry ``root/<simulator>-<fake_key(name)>`` holding ``megabytes`` MB of build output,
    marked and (when ``finished``) stamped as :func:`esl_hw.sim.build_cache.cached_build` does, last used at
    ``last_used`` (seconds since the epoch)."""
    folder = root / f"{simulator}-{fake_key(name)}"
    (folder / "sim").mkdir(parents=True)
    mark_entry(folder, simulator, "top")
    (folder / "sim" / "built.bin").write_bytes(b"\0" * int(megabytes * MB))
    if finished:
        stamp_entry(folder, simulator, "top")
    used = folder / (STAMP if finished else ENTRY_MARKER)
    os.utime(used, (last_used, last_used))
    return folder


@contextlib.contextmanager
def held_by_another_process(path: Path, shared: bool = False) -> Iterator[None]:
    """While inside, another process holds a lock on ``path``: exclusive (a builder's lock on
    ``<entry>.lock``) or ``shared`` (a process using the entry, on its stamp)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), "shared" if shared else "exclusive"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield
    finally:
        holder.communicate("", timeout=30)
