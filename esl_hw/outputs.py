"""Output folders that appear whole or not at all.

A command writes into a hidden staging folder beside its target and renames it into place when it
succeeds, so a failure never leaves a partial folder that looks valid, and an existing folder is
replaced only when the user asked for it (``--force``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from esl_hw.errors import EslError


def check_writable_target(target: Path, force: bool) -> None:
    """Refuse an existing non-empty ``target`` unless ``force``; refuse a file in its place always."""
    if target.exists() and not target.is_dir():
        raise EslError(f"{target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise EslError(f"{target} exists and is not empty; pass --force to replace it")


@contextmanager
def staged_folder(target: str | os.PathLike[str], force: bool = False) -> Iterator[Path]:
    """Yield a staging folder that replaces ``target`` when the block ends without an exception."""
    target = Path(target)
    check_writable_target(target, force)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; the result should not be
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
