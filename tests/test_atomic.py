"""Atomic writes: whole files only, with the permissions a plain write would give."""

from __future__ import annotations

import os
import stat

from autoworld.atomic import _umask, atomic_write


def test_new_files_get_the_umask_mode_and_replaced_files_keep_theirs(tmp_path) -> None:
    old = os.umask(0o022)
    _umask.cache_clear()
    try:
        new = atomic_write(tmp_path / "a.txt", "x")
        assert stat.S_IMODE(new.stat().st_mode) == 0o644  # not mkstemp's owner-only 0600
        assert new.read_text() == "x"
        kept = tmp_path / "b.txt"
        kept.write_text("old")
        kept.chmod(0o640)
        atomic_write(kept, b"new")
        assert stat.S_IMODE(kept.stat().st_mode) == 0o640 and kept.read_bytes() == b"new"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]  # no temp left
    finally:
        os.umask(old)
        _umask.cache_clear()
