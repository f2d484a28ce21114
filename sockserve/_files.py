"""
Files sockserve writes that hold secrets or must never be seen half written:
the accounts file and the bans file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def writePrivately(path: str | os.PathLike[str], text: str) -> None:
    """
    Write C{text} to C{path} at once: a temporary file beside it, mode
    0600, flushed to disk, then renamed over it (and the rename flushed);
    a reader sees the old file or the new one, never half of one.
    """
    target = Path(path)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
