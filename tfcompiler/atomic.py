"""Atomic file output: write beside the target, then rename, so a failure never leaves a half-written
file. Unwritable destinations become one clear OutputError."""
from __future__ import annotations

import os
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
