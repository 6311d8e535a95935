"""A disk cache of the oracle's plans and optimal policies for behaviour cloning.

``bc.oracle_plans`` solves a world's first training levels, most of a BC run's time (up to ~8 s
a world on one core, ~50 s for the 36 worlds of ``suite:core36``). A process keeps the result in
memory; this module keeps it on disk too, so that every bench worker, every later call and every
machine that carries the folder skips the solve.

Where: ``$AUTOWORLD_CACHE_DIR/oracle-plans/`` (default ``$XDG_CACHE_HOME/autoworld`` or
``~/.cache/autoworld``; ``AUTOWORLD_CACHE_DIR=off`` turns the disk cache off). An entry is one
``.npz`` file (no pickles: compressed arrays and a JSON header), written atomically. Its name holds
the world's content hash, the split, the level count, the state cap and a digest of the engine's
and oracle's source files, so that a changed world or a changed oracle never reads a stale
entry. An unreadable entry is logged, solved again and rewritten.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from autoworld.atomic import atomic_write

if TYPE_CHECKING:
    from autoworld.learners.bc import OraclePlans

log = logging.getLogger(__name__)

CACHE_ENV = "AUTOWORLD_CACHE_DIR"
FORMAT = 1  # bump when the file layout changes


def cache_root() -> Path | None:
    """The cache folder, or None when ``AUTOWORLD_CACHE_DIR=off``."""
    value = os.environ.get(CACHE_ENV, "").strip()
    if value.lower() in {"off", "none", "0", "false"}:
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache"
    return Path(base) / "autoworld"


@functools.cache
def code_digest() -> str:
    """Digest of the source of the grid engine and its oracle (``autoworld.envs.grid``): plans
    solved by other code are not reused."""
    import autoworld.envs.grid as grid

    h = hashlib.sha256(f"format {FORMAT}".encode())
    root = Path(grid.__file__).parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def entry_path(content_hash: str, split: str, levels: int, state_cap: int) -> Path | None:
    """The file of one ``oracle_plans`` call, or None when the disk cache is off."""
    root = cache_root()
    if root is None:
        return None
    return (root / "oracle-plans"
            / f"{content_hash[:24]}-{split}-{levels}-{state_cap}-{code_digest()}.npz")


def save(path: Path, found: OraclePlans) -> None:
    """Write ``found`` to ``path`` (atomically). Levels are stored as their bank indices."""
    arrays: dict[str, np.ndarray] = {}
    header: dict = {"format": FORMAT, "level_ids": found.level_ids,
                    "plans": found.plans, "policies": []}
    for i, ((ids, used), (_, _, pol)) in enumerate(zip(found.policy_level_ids, found.policies,
                                                        strict=True)):
        header["policies"].append({"level_ids": ids, "used": used,
                                   "hashed": pol.index.hashed,
                                   "remap": pol.remap is not None})
        arrays[f"table{i}"] = pol.table
        arrays[f"solved{i}"] = pol.solved
        arrays[f"keys{i}"] = pol.index.keys()
        if pol.remap is not None:
            arrays[f"remap{i}"] = pol.remap
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)  # policy tables shrink ~20x (81 MB -> 4.6 MB)
    atomic_write(path, buf.getvalue())


def load(path: Path, bank) -> OraclePlans | None:
    """The entry at ``path`` with its levels taken from ``bank``; None when there is none or it
    cannot be read (then logged)."""
    from autoworld.envs.grid.oracle import OptimalPolicy
    from autoworld.envs.grid.oracle_states import _StateIndex
    from autoworld.learners.bc import OraclePlans

    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(z["header"].tobytes().decode())
            if header.get("format") != FORMAT:
                raise ValueError(f"format {header.get('format')}, expected {FORMAT}")
            out = OraclePlans(level_ids=[int(i) for i in header["level_ids"]],
                              plans=[[int(a) for a in p] for p in header["plans"]])
            out.levels = [bank.level(i) for i in out.level_ids]
            for i, entry in enumerate(header["policies"]):
                index = _StateIndex.from_keys(z[f"keys{i}"], bool(entry["hashed"]))
                pol = OptimalPolicy(z[f"table{i}"], index,
                                    z[f"remap{i}"] if entry["remap"] else None, z[f"solved{i}"])
                ids, used = [int(j) for j in entry["level_ids"]], [int(j) for j in entry["used"]]
                out.policies.append(([bank.level(j) for j in ids], used, pol))
                out.policy_level_ids.append((ids, used))
    except Exception as exc:  # a damaged or foreign file: solve again and overwrite it
        log.warning("oracle cache %s unreadable (%s); solving again", path, exc)
        return None
    return out
