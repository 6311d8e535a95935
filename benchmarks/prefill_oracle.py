"""Fill the oracle's disk cache (``learners.oracle_cache``) for BC on a set of worlds, so that a
bench on another machine (carrying the folder, ``AUTOWORLD_CACHE_DIR``) solves nothing.

    AUTOWORLD_CACHE_DIR=gpu_state/oracle-cache python benchmarks/prefill_oracle.py suite:core36

Prints one JSON line per world (seconds, plans or policies found, whether it was already there)
and a summary with the folder's size.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("worlds", help="What `autoworld bench --worlds` takes: names, globs, "
                    "tag:TAG or suite:NAME.")
    ap.add_argument("--levels", type=int, default=None,
                    help="Training levels solved per world (default: MethodOptions.bc_levels).")
    args = ap.parse_args(argv)

    from autoworld.leaderboard.bench import _load_world, available_worlds, select_worlds
    from autoworld.learners import bc, oracle_cache
    from autoworld.learners.methods import MethodOptions

    root = oracle_cache.cache_root()
    if root is None:
        print("the disk cache is off (AUTOWORLD_CACHE_DIR=off)", file=sys.stderr)
        return 2
    levels = args.levels or MethodOptions().bc_levels
    total = time.perf_counter()
    for name in select_worlds(args.worlds, available_worlds()):
        spec = _load_world(name)
        path = oracle_cache.entry_path(spec.content_hash, "train", levels, bc.STATE_CAP)
        had = path is not None and path.is_file()
        start = time.perf_counter()
        found = bc.oracle_plans(spec, levels)
        print(json.dumps({"world": name, "seconds": round(time.perf_counter() - start, 2),
                          "plans": len(found.plans), "policies": len(found.policies),
                          "cached_before": had}), flush=True)
        bc._PLAN_CACHE.clear()
    size = sum(p.stat().st_size for p in (root / "oracle-plans").glob("*.npz"))
    print(json.dumps({"kind": "summary", "folder": str(root), "bytes": size,
                      "seconds": round(time.perf_counter() - total, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
