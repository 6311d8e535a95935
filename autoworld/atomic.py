"""Atomic file writes: a killed process never leaves a half-written file behind."""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path


@functools.cache
def _umask() -> int:
    """This process's umask (read once: it can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _new_file_mode() -> int:
    """The mode ``open()`` gives a new file under the umask."""
    return 0o666 & ~_umask()


def new_folder_mode() -> int:
    """The mode ``mkdir()`` gives a new folder under the umask (``mkdtemp``'s is owner-only)."""
    return 0o777 & ~_umask()


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsync it, rename
    it over ``path`` and fsync the folder, so that readers see the old or the new file, never
    a part of one. Text is written as UTF-8."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        # mkstemp makes the file owner-only; give it the mode the file it replaces has, or
        # that a plain open() would give a new one
        try:
            mode = p.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = _new_file_mode()
        os.fchmod(fd, mode)
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
