"""The generated catalogue: the rebuild script reproduces the committed files, detects drift, and
the themes file is parsed strictly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from autoworld.envs import catalogue
from autoworld.errors import GenerationError
from autoworld.generator.catalogue import MANIFEST, main, read_themes, rebuild

# two quick worlds from the middle of the themes file: the worlds above them come from the
# committed files (novelty index), so the check also covers that path
QUICK = ["MirrorWorld-ead326-6x6", "DeceptiveWindyTreasure-0c5dac-7x7"]


def _manifest() -> list[dict]:
    return json.loads((catalogue.GENERATED_DIR / MANIFEST).read_text())["worlds"]


def test_manifest_matches_the_themes_file_and_the_folder():
    lines = read_themes()
    worlds = _manifest()
    assert [(w["line"], w["seed"], w["theme"]) for w in worlds] == lines
    assert sorted(w["name"] for w in worlds) == catalogue.generated_worlds()
    for w in worlds:
        assert (catalogue.GENERATED_LEVELS_DIR / f"{w['name']}.json").is_file()
    assert set(QUICK) <= {w["name"] for w in worlds}


def test_rebuild_check_reproduces_committed_worlds_byte_for_byte(monkeypatch):
    from autoworld.envs.grid import levels, oracle

    solved = []
    real = oracle.solve_many
    monkeypatch.setattr(oracle, "solve_many", lambda *a, **k: solved.append(1) or real(*a, **k))
    assert rebuild(QUICK, check=True) == []
    assert solved  # the oracle values were recomputed, not read back from the committed files
    assert levels._stored == [True]


def test_rebuild_detects_a_changed_file_and_rewrites_it(tmp_path: Path, monkeypatch):
    copy = tmp_path / "generated"
    shutil.copytree(catalogue.GENERATED_DIR, copy)
    monkeypatch.setattr(catalogue, "GENERATED_DIR", copy)
    monkeypatch.setattr(catalogue, "GENERATED_LEVELS_DIR", copy / "levels")
    bank_file = copy / "levels" / f"{QUICK[0]}.json"
    original = bank_file.read_text()
    data = json.loads(original)
    data["splits"]["test"][0]["optimal_return"] += 0.5  # same layout, one wrong value
    bank_file.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    assert rebuild(QUICK[:1], check=True) == [f"levels/{QUICK[0]}.json"]
    assert bank_file.read_text() != original  # --check writes nothing
    assert rebuild(QUICK[:1]) == [f"levels/{QUICK[0]}.json"]
    assert bank_file.read_text() == original
    assert main(["--rebuild", "--check", "--worlds", QUICK[0]]) == 0


def test_bad_themes_file_and_unknown_world_fail_cleanly(tmp_path: Path):
    bad = tmp_path / "themes.txt"
    bad.write_text("# comment\n\n3\tan icy maze\nno seed here\n")
    with pytest.raises(GenerationError, match=r"themes.txt:4: expected 'SEED<TAB>THEME'"):
        read_themes(bad)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(GenerationError, match="no themes"):
        read_themes(empty)
    with pytest.raises(GenerationError, match="unknown generated world"):
        rebuild(["NoSuchWorld-000000-5x5"], check=True)
