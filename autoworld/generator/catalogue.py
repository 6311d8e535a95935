"""The generated catalogue: worlds built by the procedural generator from a committed themes file.

``envs/catalogue/themes.txt`` holds one world per line, ``SEED<TAB>THEME`` (blank lines and lines
starting with ``#`` are ignored). Each line goes through the same generation loop as
``autoworld generate THEME --seed SEED --levels 15`` (procedural backend, staged validation with
repair rounds, novelty against the hand-written catalogue and the lines above it) and the
accepted world is written to ``envs/catalogue/generated/<Name>.yaml`` with its level bank (10
test + 5 validation levels, exact oracle returns, random-policy returns over 256 episodes) in
``envs/catalogue/generated/levels/<Name>.json``. ``generated/catalogue.json`` lists the worlds
in themes-file order (line, seed, theme, name).

Everything is deterministic, so the rebuild reproduces the committed files byte for byte::

    python -m autoworld.generator.catalogue --rebuild [--check] [--worlds NAME ...]

``--check`` writes nothing and exits 1 when a file is missing, different or stale. ``--worlds``
rebuilds (or checks) only the named worlds; the worlds above them in the themes file are then
taken from the committed files for the novelty stage.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

from autoworld.atomic import atomic_write
from autoworld.errors import GenerationError

log = logging.getLogger(__name__)

MANIFEST = "catalogue.json"
MANIFEST_FORMAT = 1
LEVELS = 15  # 10 test + 5 validation levels per world
RANDOM_EPISODES = 256  # as the hand-written catalogue's level banks


def read_themes(path: Path | None = None) -> list[tuple[int, int, str]]:
    """``(line number, seed, theme)`` of every world line of the themes file.

    Raises:
        GenerationError: a line that is not ``SEED<TAB>THEME`` (the message names the line).
    """
    from autoworld.envs.catalogue import THEMES_FILE

    path = Path(path) if path is not None else THEMES_FILE
    out = []
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        seed_text, sep, theme = raw.partition("\t")
        if not sep or not seed_text.strip().isdigit() or not theme.strip():
            raise GenerationError(f"{path}:{n}: expected 'SEED<TAB>THEME' (a non-negative "
                                  f"integer, a tab, then the theme), got {raw!r}")
        out.append((n, int(seed_text), theme.strip()))
    if not out:
        raise GenerationError(f"{path}: no themes; add lines 'SEED<TAB>THEME'")
    return out


def _manifest(entries: list[dict]) -> str:
    return json.dumps({"format": MANIFEST_FORMAT, "worlds": entries}, indent=1,
                      sort_keys=True) + "\n"


def _committed_manifest() -> list[dict]:
    from autoworld.envs.catalogue import GENERATED_DIR

    path = GENERATED_DIR / MANIFEST
    if not path.is_file():
        return []
    return list(json.loads(path.read_text(encoding="utf-8")).get("worlds", []))


def generate_world(seed: int, theme: str, index, out: Path):
    """Generate the world of one themes-file line into ``out``; returns its ``WorldResult``.

    Raises:
        GenerationError: no proposal passed every stage within the repair rounds.
    """
    from autoworld.envs.grid.levels import fresh_banks
    from autoworld.generator.generate import Generator, GeneratorConfig
    from autoworld.generator.procedural import ProceduralBackend

    gen = Generator(ProceduralBackend(), GeneratorConfig(random_episodes=RANDOM_EPISODES))
    with fresh_banks():  # never the committed level files: every value is computed anew
        run = gen.generate(theme, n=1, seed=seed, levels=LEVELS, out=out,
                           novelty_index=index)
    result = run.results[0]
    if not result.accepted:
        raise GenerationError(f"theme {theme!r} (seed {seed}) was rejected at stage "
                              f"{result.stage}: {result.reason}; change its seed in the themes "
                              "file")
    return result


def rebuild(names: list[str] | None = None, check: bool = False,
            themes: Path | None = None) -> list[str]:
    """Regenerate the generated catalogue (every themes-file line, or the worlds ``names``).

    Returns the files (relative to ``envs/catalogue/generated``) that changed; with ``check``
    nothing is written and the list holds the files that are missing, different or stale.
    """
    from autoworld.envs.catalogue import GENERATED_DIR
    from autoworld.spec import load_spec
    from autoworld.validation import NoveltyIndex

    lines = read_themes(themes)
    committed = _committed_manifest()
    by_name = {e["name"]: e for e in committed}
    if names:
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise GenerationError(f"unknown generated world(s) {unknown}; use one of "
                                  f"{sorted(by_name)} (or rebuild them all)")
        wanted = {(by_name[n]["seed"], by_name[n]["theme"]) for n in names}
    index = NoveltyIndex.from_catalogue(generated=False)
    entries: list[dict] = []
    changed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="autoworld-catalogue-") as tmp:
        tmp_dir = Path(tmp)
        for pos, (line, seed, theme) in enumerate(lines):
            if names and (seed, theme) not in wanted:
                if pos >= len(committed):
                    break
                # a world above a selected one: its committed spec joins the novelty index
                prior = committed[pos]
                index.add(load_spec(GENERATED_DIR / f"{prior['name']}.yaml"))
                continue
            result = generate_world(seed, theme, index, tmp_dir)
            log.info("line %d: %s (%d round(s), %.1f s)", line, result.name, result.rounds,
                     result.seconds)
            entries.append({"line": line, "seed": seed, "theme": theme, "name": result.name})
            for rel in (f"{result.name}.yaml", f"levels/{result.name}.json"):
                text = (tmp_dir / rel).read_text(encoding="utf-8")
                path = GENERATED_DIR / rel
                old = path.read_text(encoding="utf-8") if path.is_file() else None
                if old != text:
                    changed.append(rel)
                    if not check:
                        atomic_write(path, text)
        if not names:
            changed += _sync_full(entries, check)
    return changed


def _sync_full(entries: list[dict], check: bool) -> list[str]:
    """After a full rebuild: the manifest, and stale files of worlds no longer listed."""
    from autoworld.envs.catalogue import GENERATED_DIR, GENERATED_LEVELS_DIR

    changed = []
    text = _manifest(entries)
    path = GENERATED_DIR / MANIFEST
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        changed.append(MANIFEST)
        if not check:
            atomic_write(path, text)
    keep = {e["name"] for e in entries}
    stale = [p for p in GENERATED_DIR.glob("*.yaml") if p.stem not in keep]
    stale += [p for p in GENERATED_LEVELS_DIR.glob("*.json") if p.stem not in keep]
    for p in sorted(stale):
        changed.append(str(p.relative_to(GENERATED_DIR)))
        if not check:
            p.unlink()
    return changed


def main(argv: list[str] | None = None) -> int:
    """``python -m autoworld.generator.catalogue --rebuild [--check] [--worlds NAME ...]``."""
    parser = argparse.ArgumentParser(prog="python -m autoworld.generator.catalogue",
                                     description="Build the generated catalogue from "
                                     "envs/catalogue/themes.txt.")
    parser.add_argument("--rebuild", action="store_true",
                        help="regenerate envs/catalogue/generated/")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a file is missing, different or stale")
    parser.add_argument("--worlds", nargs="*", default=None, help="only these worlds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.rebuild:
        parser.print_help()
        return 2
    try:
        changed = rebuild(args.worlds or None, check=args.check)
    except GenerationError as exc:
        log.error("error: %s", exc)
        return 1
    if args.check and changed:
        log.error("out of date: %s", ", ".join(changed))
        return 1
    log.info("%d file(s) %s", len(changed), "out of date" if args.check else "written")
    return 0


if __name__ == "__main__":
    from autoworld.generator.catalogue import main as _main  # the importable module

    raise SystemExit(_main())
