"""Atomic file writes: a killed process never leaves a half-written file behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsync it, rename
    it over ``path`` and fsync the folder, so that readers see the old or the new file, never
    a part of one. Text is written as UTF-8."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable; not every platform can open a folder
        dfd = os.open(p.parent, os.O_RDONLY)
    except OSError:
        return p
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return p
