"""The build cache of esl_hw.sim.build_cache: where it lives, when an entry is reused, rebuilt or
refused, and how it is trimmed to its size cap.

The builds here are stand-ins (``build_simulation`` replaced, or entries made by hand with
tests/cache_support.py), so no simulator runs; real builds through the cache are covered by
tests/test_sim_runner.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from cache_support import fake_key, held_by_another_process, key_of, make_entry

from esl_hw.errors import EslError
from esl_hw.sim import build, build_cache
from esl_hw.sim.build_cache import (
    CACHE_ENV,
    CACHE_MAX_ENV,
    DEFAULT_CACHE_MAX_MB,
    ENTRY_MARKER,
    MB,
    STAMP,
    cache_entries,
    cache_limit_mb,
    cache_root,
    cached_build,
    clear_cache,
    inputs_key,
    locked,
    release_build,
    remove_entry,
    trim_cache,
    writable_cache,
)


def sources_writer(text: str = "module top; endmodule\n"):
    """A ``write_sources`` writing one Verilog file, and the list of folders it was called with."""
    calls: list[Path] = []

    def write_sources(folder: Path) -> list[Path]:
        calls.append(folder)
        (folder / "top.v").write_text(text)
        return [folder / "top.v"]

    return write_sources, calls


@pytest.fixture
def fake_builds(monkeypatch) -> list[tuple[list[Path], Path]]:
    """Replace the simulator build by one that writes ``sim/built``; record its calls."""
    done: list[tuple[list[Path], Path]] = []

    def fake(simulator: str, sources, top: str, folder: Path, mode: str = "cocotb") -> None:
        assert all(source.is_file() and source.parent == folder for source in sources)
        (folder / "sim").mkdir()
        (folder / "sim" / "built").write_text(simulator)
        (folder / "sim" / "mode").write_text(mode)
        done.append((list(sources), folder))

    monkeypatch.setattr(build_cache, "build_simulation", fake)
    return done


def test_cache_root_from_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "esl-hw"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "esl-hw"


def test_tests_never_use_the_home_cache() -> None:
    assert Path.home() / ".cache" not in cache_root().parents


def test_an_unwritable_cache_is_one_line_naming_it_and_the_variable(monkeypatch, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "file" / "cache"))
    with pytest.raises(EslError) as caught:
        cached_build("icarus", "top", sources_writer()[0])
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path / "file" / "cache") in message
    assert "not writable" in message and CACHE_ENV in message


def test_a_binary_build_is_an_entry_of_its_own(tmp_path: Path, fake_builds) -> None:
    cocotb, _ = cached_build("verilator", "top", sources_writer()[0], tmp_path)
    binary, built = cached_build("verilator", "top", sources_writer()[0], tmp_path, mode="binary")
    assert built and binary != cocotb and binary.name.startswith("verilator-")
    assert [(folder / "sim" / "mode").read_text() for _, folder in fake_builds] == ["cocotb", "binary"]
    assert json.loads((binary / STAMP).read_text())["mode"] == "binary"
    assert json.loads((binary / ENTRY_MARKER).read_text())["mode"] == "binary"
    assert cached_build("verilator", "top", sources_writer()[0], tmp_path, mode="binary") == (binary, False)
    assert build.binary_path(binary, "top") == binary / "sim" / "top"


@pytest.mark.parametrize(
    ("simulator", "mode", "message"),
    [
        ("verilator", "vpi", "unknown run mode 'vpi' \\(expected one of cocotb, binary\\)"),
        ("icarus", "binary", "run mode 'binary' needs Verilator \\(icarus runs under cocotb\\)"),
    ],
)
def test_bad_run_modes_are_refused_before_building(
    tmp_path: Path, fake_builds, simulator, mode, message
) -> None:
    with pytest.raises(EslError, match=message):
        cached_build(simulator, "top", sources_writer()[0], tmp_path, mode=mode)
    assert not fake_builds and not list(tmp_path.iterdir())


def test_build_once_then_reuse(tmp_path: Path, fake_builds, capsys) -> None:
    write_sources, calls = sources_writer()
    folder, built = cached_build("icarus", "top", write_sources, tmp_path)
    assert built and folder == tmp_path / f"icarus-{key_of(tmp_path)}"
    assert (folder / STAMP).is_file() and (folder / ENTRY_MARKER).is_file()
    assert (folder / "top.v").is_file() and (folder / "sim" / "built").read_text() == "icarus"
    assert "cached as" in capsys.readouterr().err

    again, built = cached_build("icarus", "top", write_sources, tmp_path)
    assert (again, built) == (folder, False) and len(fake_builds) == 1 and len(calls) == 2
    err = capsys.readouterr().err
    assert f"build: reused cached build {folder.name}" in err
    assert not list(tmp_path.glob(f"{build_cache.SCRATCH_PREFIX}*")), "scratch folders are removed"
    assert (tmp_path / f"{folder.name}.lock").is_file()


@dataclasses.dataclass(frozen=True)
class _Plan:
    """A stand-in for a core's plan: a dataclass with arrays, mappings and scalars."""

    weights: np.ndarray
    options: dict
    lanes: int = 4


def _plan(**changes) -> _Plan:
    base = _Plan(np.arange(12, dtype=np.int16).reshape(3, 4), {"fifo": 16, "memory": "block"})
    return dataclasses.replace(base, **changes)


def test_the_inputs_key_follows_every_value_of_the_inputs_and_the_build() -> None:
    key = inputs_key((_plan(), 7), "icarus", "top")
    assert key == inputs_key((_plan(), 7), "icarus", "top")  # same values, new objects
    weights = _plan().weights.copy()
    weights[2, 3] += 1
    others = [
        inputs_key((_plan(weights=weights), 7), "icarus", "top"),
        inputs_key((_plan(weights=_plan().weights.astype(np.int32)), 7), "icarus", "top"),
        inputs_key((_plan(weights=_plan().weights.reshape(4, 3)), 7), "icarus", "top"),
        inputs_key((_plan(options={"fifo": 32, "memory": "block"}), 7), "icarus", "top"),
        inputs_key((_plan(lanes=8), 7), "icarus", "top"),
        inputs_key((_plan(), 8), "icarus", "top"),
        inputs_key((_plan(), 7), "icarus", "other"),
        inputs_key((_plan(), 7), "icarus", "top", "binary"),
    ]
    assert len({key, *others}) == 1 + len(others)
    assert inputs_key((_plan(), object()), "icarus", "top") is None  # a type it cannot hash
    assert len(build_cache.source_digest()) == 64


def test_the_same_inputs_reuse_an_entry_without_writing_the_sources(
    tmp_path: Path, fake_builds, capsys
) -> None:
    write_sources, calls = sources_writer()
    folder, built = cached_build("icarus", "top", write_sources, tmp_path, inputs=(_plan(), 1))
    assert built and len(calls) == 1
    again, built = cached_build("icarus", "top", write_sources, tmp_path, inputs=(_plan(), 1))
    assert (again, built) == (folder, False) and len(calls) == 1  # the Verilog was not generated
    assert "Verilog not generated again" in capsys.readouterr().err
    # other inputs that happen to generate the same sources: written, then found by the sources' key
    assert cached_build("icarus", "top", write_sources, tmp_path, inputs=(_plan(lanes=2), 1)) == (
        folder,
        False,
    )
    assert len(calls) == 2 and len(fake_builds) == 1
    assert cached_build("icarus", "top", write_sources, tmp_path, inputs=(_plan(lanes=2), 1)) == (
        folder,
        False,
    )
    assert len(calls) == 2  # and recorded for the next time
    assert cached_build("verilator", "top", write_sources, tmp_path, inputs=(_plan(), 1))[1]
    assert len(calls) == 3  # another simulator is another build
    (folder / STAMP).unlink()  # an entry no longer finished is never reused by its inputs
    assert cached_build("icarus", "top", write_sources, tmp_path, inputs=(_plan(), 1)) == (folder, True)
    assert len(calls) == 4 and (folder / STAMP).is_file()
    release_build(folder)
    assert remove_entry(next(entry for entry in cache_entries(tmp_path) if entry.folder == folder))
    assert cached_build("icarus", "top", write_sources, tmp_path, inputs=(_plan(), 1)) == (folder, True)
    assert len(calls) == 5  # its record went with the entry


def test_an_unfinished_entry_of_esl_hw_is_rebuilt(tmp_path: Path, fake_builds) -> None:
    folder = tmp_path / f"icarus-{key_of(tmp_path)}"
    folder.mkdir()
    (folder / ENTRY_MARKER).write_text(json.dumps({"tool": "esl-hw"}))
    (folder / "half-built.o").write_text("")
    assert cached_build("icarus", "top", sources_writer()[0], tmp_path) == (folder, True)
    assert not (folder / "half-built.o").exists() and (folder / STAMP).is_file()


def test_a_folder_esl_hw_did_not_write_is_never_replaced(tmp_path: Path, fake_builds) -> None:
    folder = tmp_path / f"icarus-{key_of(tmp_path)}"
    folder.mkdir()
    (folder / "precious").write_text("mine")
    with pytest.raises(EslError, match="in the way in the build cache and esl-hw did not write it"):
        cached_build("icarus", "top", sources_writer()[0], tmp_path)
    assert (folder / "precious").read_text() == "mine" and not fake_builds


def test_a_failed_build_leaves_no_entry(tmp_path: Path, monkeypatch) -> None:
    def failing(simulator, sources, top, folder, mode="cocotb") -> None:
        (folder / "sim").mkdir()
        raise EslError("icarus build failed")

    monkeypatch.setattr(build_cache, "build_simulation", failing)
    with pytest.raises(EslError, match="icarus build failed"):
        cached_build("icarus", "top", sources_writer()[0], tmp_path)
    assert not [entry for entry in tmp_path.glob("icarus-*") if entry.is_dir()]
    assert not list(tmp_path.glob(f"{build_cache.SCRATCH_PREFIX}*"))


def test_writable_cache_creates_the_folder(tmp_path: Path) -> None:
    assert writable_cache(tmp_path / "a" / "b") == (tmp_path / "a" / "b").resolve()
    assert (tmp_path / "a" / "b").is_dir()


# --- the size cap -----------------------------------------------------------------------------------


def names(entries) -> list[str]:
    return [entry.name for entry in entries]


def test_the_cap_comes_from_the_environment(monkeypatch) -> None:
    monkeypatch.delenv(CACHE_MAX_ENV, raising=False)
    assert cache_limit_mb() == DEFAULT_CACHE_MAX_MB == 4096
    cases = (("", DEFAULT_CACHE_MAX_MB), ("  ", DEFAULT_CACHE_MAX_MB), ("1", 1), (" 250 ", 250))
    for text, expected in cases:
        monkeypatch.setenv(CACHE_MAX_ENV, text)
        assert cache_limit_mb() == expected


@pytest.mark.parametrize("text", ["0", "00", "-1", "1.5", "4G", "lots", "1e3", "²", "9" * 40])
def test_a_bad_cap_is_one_line_naming_the_variable_before_any_build(
    monkeypatch, tmp_path: Path, fake_builds, text: str
) -> None:
    monkeypatch.setenv(CACHE_MAX_ENV, text)
    with pytest.raises(EslError) as caught:
        cached_build("icarus", "top", sources_writer()[0], tmp_path / "cache")
    message = str(caught.value)
    assert "\n" not in message and CACHE_MAX_ENV in message and "positive whole number" in message
    assert repr(text.strip()) in message
    assert not fake_builds and not (tmp_path / "cache").exists(), "nothing is built or created"


def test_entries_are_listed_least_recently_used_first(tmp_path: Path) -> None:
    newest = make_entry(tmp_path, "c", megabytes=0.5, last_used=3000)
    oldest = make_entry(tmp_path, "a", megabytes=2, last_used=1000, simulator="verilator")
    middle = make_entry(tmp_path, "b", megabytes=1, last_used=2000, finished=False)
    entries = cache_entries(tmp_path)
    assert [entry.folder for entry in entries] == [oldest, middle, newest]
    assert [entry.last_used for entry in entries] == [1000, 2000, 3000]
    assert [entry.finished for entry in entries] == [True, False, True]
    assert (entries[0].simulator, entries[0].key) == ("verilator", fake_key("a"))
    assert 2 * MB < entries[0].size < 2 * MB + 1000 and 0.5 * MB < entries[2].size < 0.5 * MB + 1000
    assert cache_entries(tmp_path / "missing") == []


def test_trimming_removes_the_least_recently_used_first_and_stops_under_the_cap(tmp_path: Path) -> None:
    # made in another order than they were used
    folders = {used: make_entry(tmp_path, f"e{used}", last_used=used) for used in (400, 100, 300, 200, 500)}
    assert sum(entry.size for entry in cache_entries(tmp_path)) > 5 * MB
    removed, left = trim_cache(tmp_path, 3)
    assert [entry.folder for entry in removed] == [folders[100], folders[200], folders[300]]
    assert [entry.folder for entry in cache_entries(tmp_path)] == [folders[400], folders[500]]
    assert left == sum(entry.size for entry in cache_entries(tmp_path)) <= 3 * MB
    assert not folders[100].exists() and not (tmp_path / f"{folders[100].name}.lock").exists()
    assert trim_cache(tmp_path, 3) == ([], left), "under the cap: nothing more to do"
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")], "no scratch left"


def test_trimming_never_removes_the_folders_to_keep(tmp_path: Path) -> None:
    oldest = make_entry(tmp_path, "old", megabytes=2, last_used=100)
    newer = make_entry(tmp_path, "new", megabytes=2, last_used=200)
    removed, left = trim_cache(tmp_path, 1, keep=[oldest])
    assert names(removed) == [newer.name] and oldest.is_dir() and left > 1 * MB


def test_trimming_keeps_user_files_unmarked_folders_and_links(tmp_path: Path) -> None:
    cache, outside = tmp_path / "cache", tmp_path / "outside"
    cache.mkdir()
    (cache / "notes.txt").write_bytes(b"\0" * MB)
    unmarked = cache / f"icarus-{fake_key('mine')}"
    (unmarked / "sim").mkdir(parents=True)
    (unmarked / STAMP).write_text("{}")
    (unmarked / "sim" / "big.bin").write_bytes(b"\0" * MB)
    foreign = cache / f"icarus-{fake_key('foreign')}"
    foreign.mkdir()
    (foreign / ENTRY_MARKER).write_text(json.dumps({"tool": "something-else"}))
    backup = make_entry(tmp_path / "elsewhere", "copy")
    os.rename(backup, cache / "my-backup")  # marked, but not named like an entry
    linked = make_entry(outside, "linked", megabytes=1)
    (cache / linked.name).symlink_to(linked, target_is_directory=True)
    precious = outside / "precious"
    precious.mkdir()
    (precious / "data.bin").write_bytes(b"\0" * 3 * MB)
    entry = make_entry(cache, "real", megabytes=1, last_used=100)
    (entry / "sim" / "link").symlink_to(precious, target_is_directory=True)
    (entry / "sim" / "file-link").symlink_to(precious / "data.bin")
    (listed,) = cache_entries(cache)
    assert listed.folder == entry and listed.size < 1.01 * MB, "links are not followed"

    removed, left = trim_cache(cache, 1)
    assert names(removed) == [entry.name] and left == 0
    assert sorted(path.name for path in cache.iterdir()) == sorted(
        ["notes.txt", unmarked.name, foreign.name, "my-backup", linked.name]
    )
    assert (unmarked / "sim" / "big.bin").is_file() and (cache / "my-backup" / STAMP).is_file()
    assert (linked / STAMP).is_file() and (cache / linked.name).is_symlink()
    assert (precious / "data.bin").stat().st_size == 3 * MB
    assert clear_cache(cache) == ([], []) and len(list(cache.iterdir())) == 5


def test_trimming_skips_an_entry_another_process_builds_or_uses(tmp_path: Path) -> None:
    building = make_entry(tmp_path, "building", last_used=100)
    used = make_entry(tmp_path, "used", last_used=200)
    unfinished = make_entry(tmp_path, "unfinished", last_used=300, finished=False)
    free = make_entry(tmp_path, "free", last_used=400)
    with (
        held_by_another_process(tmp_path / f"{building.name}.lock"),
        held_by_another_process(used / STAMP, shared=True),
    ):
        removed, left = trim_cache(tmp_path, 1)
        assert names(removed) == [unfinished.name, free.name], "a killed build's leftover goes too"
        assert building.is_dir() and used.is_dir() and left > 1 * MB
        assert not remove_entry(cache_entries(tmp_path)[1])
    removed, _ = trim_cache(tmp_path, 2)
    assert names(removed) == [building.name], "free again once the other process let go"
    assert used.is_dir()


def test_a_build_this_process_uses_is_kept_until_released(tmp_path: Path, fake_builds) -> None:
    folder, built = cached_build("icarus", "top", sources_writer()[0], tmp_path)
    assert built
    (entry,) = cache_entries(tmp_path)
    assert not remove_entry(entry) and clear_cache(tmp_path) == ([], [entry])
    release_build(folder)
    assert clear_cache(tmp_path) == ([entry], []) and not folder.exists()


def test_reuse_records_the_last_use_in_the_stamp(tmp_path: Path, fake_builds) -> None:
    write_sources, _ = sources_writer()
    folder, _ = cached_build("icarus", "top", write_sources, tmp_path)
    os.utime(folder / STAMP, (time.time(), 1000))  # read lately, last used long ago
    assert cache_entries(tmp_path)[0].last_used == 1000, "the time esl-hw records, not the access time"
    started = time.time()
    assert cached_build("icarus", "top", write_sources, tmp_path) == (folder, False)
    assert cache_entries(tmp_path)[0].last_used >= started - 1


def test_a_new_build_trims_the_cache_and_says_what_it_freed(
    tmp_path: Path, fake_builds, monkeypatch, capsys
) -> None:
    monkeypatch.setenv(CACHE_MAX_ENV, "1")
    older = make_entry(tmp_path, "older", megabytes=0.6, last_used=100)
    newer = make_entry(tmp_path, "newer", megabytes=0.6, last_used=200)
    (tmp_path / "notes.txt").write_bytes(b"\0" * 2 * MB)
    folder, built = cached_build("icarus", "top", sources_writer()[0], tmp_path)
    assert built and folder.is_dir() and newer.is_dir() and not older.exists()
    assert (tmp_path / "notes.txt").is_file()
    err = capsys.readouterr().err
    assert f"build cache: removed 1 least recently used build ({older.name}), freed 0.6 MB" in err
    assert f"of 1 MB ({CACHE_MAX_ENV})" in err and "over the" not in err


def test_a_new_build_over_the_cap_by_itself_is_kept(tmp_path: Path, monkeypatch, capsys) -> None:
    def big_build(simulator: str, sources, top: str, folder: Path, mode: str = "cocotb") -> None:
        (folder / "sim").mkdir()
        (folder / "sim" / "built").write_bytes(b"\0" * 2 * MB)

    monkeypatch.setattr(build_cache, "build_simulation", big_build)
    monkeypatch.setenv(CACHE_MAX_ENV, "1")
    old = make_entry(tmp_path, "old", megabytes=0.1, last_used=100)
    folder, built = cached_build("icarus", "top", sources_writer()[0], tmp_path)
    assert built and (folder / "sim" / "built").is_file() and not old.exists()
    err = capsys.readouterr().err
    assert f"removed 1 least recently used build ({old.name})" in err
    assert f"over the 1 MB of {CACHE_MAX_ENV}: the rest are in use" in err


def test_a_lock_file_deleted_by_its_holder_is_not_a_lock(tmp_path: Path) -> None:
    path = tmp_path / "entry.lock"
    seen: list[bool] = []

    def wait_then_hold() -> None:
        with locked(path):
            seen.append(path.is_file() and build_cache._try_lock(path, create=True) is None)

    with locked(path):
        waiter = threading.Thread(target=wait_then_hold)
        waiter.start()
        time.sleep(0.3)
        assert not seen, "the waiter waits while the lock is held"
        path.unlink()
    waiter.join(10)
    assert seen == [True], "the waiter locked the new file at the path, not the deleted one"
