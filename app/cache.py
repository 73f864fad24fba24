"""What ``esl-hw cache`` does: list the simulator builds in the build cache, or clear them; the parser
lives in :mod:`esl_hw.app.cli`.

The cache itself (where it lives, what an entry is, when one is in use) is
:mod:`esl_hw.sim.build_cache`'s. ``esl-hw cache`` (or ``cache list``) prints the folder, one line per
build (key, simulator, size, last use) least recently used first, and the total against the cap;
``esl-hw cache clear`` deletes every build not in use and prints what it freed. Both exit 0, also
for a cache folder that does not exist yet; files in the cache that esl-hw did not write are
neither listed nor touched.
"""

from __future__ import annotations

import argparse
import time

from esl_hw.sim.build_cache import (
    CACHE_MAX_ENV,
    CacheEntry,
    cache_entries,
    cache_limit_mb,
    cache_root,
    clear_cache,
    megabytes,
)

EXIT_OK = 0
#: the actions of ``esl-hw cache`` (the first is the default)
ACTIONS = ("list", "clear")


def when(seconds: float) -> str:
    """``YYYY-MM-DD HH:MM`` of ``seconds`` since the epoch, local time."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def builds(count: int) -> str:
    """``1 build``, ``2 builds``."""
    return f"{count} build{'' if count == 1 else 's'}"


def entry_rows(entries: list[CacheEntry]) -> list[str]:
    """The table of ``entries``: a header, then key, simulator, size in MB and last use per entry."""
    rows = [f"{'key':<20}  {'simulator':<9}  {'size MB':>9}  last used"]
    for entry in entries:
        state = "" if entry.finished else "  (unfinished)"
        size = megabytes(entry.size)
        rows.append(f"{entry.key:<20}  {entry.simulator:<9}  {size:>9}  {when(entry.last_used)}{state}")
    return rows


def list_cache() -> None:
    """Print the cache folder, its builds and their total against the cap."""
    root, limit_mb = cache_root(), cache_limit_mb()
    entries = cache_entries(root)
    print(f"build cache {root} (builds capped at {limit_mb} MB, {CACHE_MAX_ENV})")
    if not entries:
        print("empty: no builds" + ("" if root.is_dir() else " (the folder does not exist yet)"))
        return
    for row in entry_rows(entries):
        print(row)
    total = megabytes(sum(entry.size for entry in entries))
    print(f"total: {builds(len(entries))}, {total} MB (least recently used first)")


def clear() -> None:
    """Delete every build not in use; print what was freed and what was kept."""
    root = cache_root()
    cache_limit_mb()  # a bad value is reported here too, as by every build
    removed, kept = clear_cache(root)
    if not removed and not kept:
        print(f"build cache {root} is empty: nothing to clear")
        return
    freed = megabytes(sum(entry.size for entry in removed))
    print(f"build cache {root}: removed {builds(len(removed))}, freed {freed} MB")
    if kept:
        names = ", ".join(entry.name for entry in kept)
        print(f"kept {len(kept)} in use (by a running esl-hw): {names}")


def run_cache(args: argparse.Namespace) -> int:
    """``esl-hw cache [list|clear]``; return the exit status."""
    if args.action == "clear":
        clear()
    else:
        list_cache()
    return EXIT_OK
