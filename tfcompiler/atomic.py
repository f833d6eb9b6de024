"""Atomic file output: write beside the target, then rename, so a failure never leaves a half-written
file (or folder). Unwritable destinations become one clear OutputError."""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputError


@contextmanager
def atomic_path(target: str | Path):
    """Yields a temporary path in the target's folder; on success it is renamed to ``target``."""
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{target}: cannot write: folder {folder} does not exist")
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise OutputError(f"{target}: cannot write: {e.strerror}") from None
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temp, 0o666 & ~umask)  # mkstemp makes 0600; the output should look like any new file
    try:
        yield Path(temp)
        os.replace(temp, target)
    except OSError as e:
        raise OutputError(f"{target}: cannot write: {e.strerror}") from None
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


@contextmanager
def atomic_folder(target: str | Path, prefix: str, into_existing):
    """Yields a hidden folder beside ``target`` to fill; on success it becomes ``target`` when there is none,
    else ``into_existing(stage, target)`` moves what it holds in (a rename each). A failure leaves ``target``
    as it was; errors are one OutputError naming ``target``."""
    target = Path(target)
    parent = target if target.is_dir() else target.parent
    if not parent.is_dir():
        raise OutputError(f"{target}: cannot write: folder {parent} does not exist")
    try:
        stage = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=parent))
    except OSError as e:
        raise OutputError(f"{target}: cannot write: {e.strerror}") from None
    try:
        yield stage
        if target.is_dir():
            into_existing(stage, target)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(stage, 0o777 & ~umask)  # mkdtemp makes 0700; the folder should look like any new one
            os.replace(stage, target)
    except OSError as e:
        raise OutputError(f"{target}: cannot write: {e.strerror}") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
