"""The generation loop, its repair rounds, file writing, novelty and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoworld.cli.app import app
from autoworld.envs.catalogue import load_world
from autoworld.errors import GenerationError
from autoworld.generator.base import Proposal
from autoworld.generator.generate import Generator, GeneratorConfig
from autoworld.generator.procedural import ProceduralBackend, sample_spec
from autoworld.spec import load_spec
from autoworld.validation import validate

FAST = GeneratorConfig(smoke_steps=8, num_envs=2, random_episodes=16)


class ScriptedBackend:
    """Replies from a script; records the feedback it was given."""

    name = "scripted"

    def __init__(self, replies: list[dict | None]) -> None:
        self.replies, self.feedback = list(replies), []

    def propose(self, theme, seed, feedback=None, parent=None) -> Proposal:
        self.feedback.append(feedback)
        data = self.replies.pop(0) if self.replies else None
        return Proposal(text=json.dumps(data), data=data, prompt_tokens=10,
                        completion_tokens=5, cost_usd=0.001)


def test_repair_rounds_feed_the_validator_message_back():
    good = sample_spec("an icy maze", 0)
    backend = ScriptedBackend([None, {**good, "height": 999}, good])
    run = Generator(backend, FAST).generate("anything", n=1, seed=0, levels=1)
    assert run.accepted == 1 and run.results[0].rounds == 3
    assert backend.feedback[0] is None and "JSON object" in backend.feedback[1]
    assert backend.feedback[2].startswith("schema: height")
    assert run.prompt_tokens == 30 and run.completion_tokens == 15
    assert run.cost_usd == pytest.approx(0.003)
    schema = run.stage("schema")
    assert (schema.attempted, schema.passed) == (3, 1) and run.proposals == 3


def test_rejection_records_stage_and_reason_after_bounded_rounds():
    backend = ScriptedBackend([{"name": "X", "reward": []}] * 10)
    run = Generator(backend, GeneratorConfig(repair_rounds=2)).generate("t", n=1, levels=1)
    (result,) = run.results
    assert not result.accepted and result.stage == "schema" and result.rounds == 3
    assert result.reason and run.accepted == 0 and run.autoenv_rates()["overall"] == 0.0


def test_novelty_rejects_an_exact_duplicate_of_a_catalogue_world():
    data = load_world("Empty-6x6").model_dump(mode="json") | {"name": "Renamed"}
    report = validate(data, num_levels=1, novelty=True)
    assert not report.ok and report.failed_stage.name == "novelty"
    assert "Empty-6x6" in report.error
    run = Generator(ScriptedBackend([data] * 4), FAST).generate("copy", n=1, levels=1)
    assert run.results[0].stage == "novelty" and run.stage("novelty").passed == 0


def test_novelty_dedups_within_a_run():
    data = sample_spec("an icy maze", 0)
    run = Generator(ScriptedBackend([data, data, data]), FAST.model_copy(
        update={"repair_rounds": 1})).generate(["a", "b"], n=1, levels=1)
    assert [r.accepted for r in run.results] == [True, False]
    assert run.results[1].stage == "novelty"


def test_generate_writes_spec_and_level_bank(tmp_path: Path):
    run = Generator(ProceduralBackend(), FAST).generate(["coins in a maze"], n=2, seed=4,
                                                        levels=3, out=tmp_path)
    assert run.accepted == 2
    for r in run.results:
        spec = load_spec(tmp_path / f"{r.name}.yaml")
        assert spec.content_hash == r.content_hash
        bank = json.loads((tmp_path / "levels" / f"{r.name}.json").read_text())
        assert bank["content_hash"] == r.content_hash
        assert len(bank["splits"]["test"]) == 2 and len(bank["splits"]["validation"]) == 1
        assert all(e["optimal_exact"] and e["optimal_return"] > e["random_return"]
                   for e in bank["splits"]["test"])
    assert not [p for p in tmp_path.rglob(".*")]  # no temp files left


def test_failed_write_leaves_nothing_half_written(tmp_path: Path, monkeypatch):
    import autoworld.spec as spec_module

    real = spec_module.atomic_write_text

    def flaky(path, text):
        if str(path).endswith(".yaml"):
            raise OSError("disk full")
        real(path, text)

    monkeypatch.setattr(spec_module, "atomic_write_text", flaky)
    with pytest.raises(OSError):
        Generator(ProceduralBackend(), FAST).generate("ice", n=1, levels=1, out=tmp_path)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_cli_generate_json(tmp_path: Path):
    themes = tmp_path / "themes.txt"
    themes.write_text("an icy maze\n# a comment\n\nfoggy coins\n")
    result = CliRunner().invoke(app, ["generate", "--themes", str(themes), "-n", "1",
                                      "--levels", "1", "--out", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["accepted"] == 2 and data["themes"] == ["an icy maze", "foggy coins"]
    assert [s["name"] for s in data["stages"]] == ["schema", "build", "smoke", "levels",
                                                   "reliability", "novelty"]
    assert set(data["autoenv"]) == {"execution", "level_generation", "reliability", "overall"}
    assert len(list((tmp_path / "out").glob("*.yaml"))) == 2


def test_cli_generate_table_and_bad_backend():
    runner = CliRunner()
    result = runner.invoke(app, ["generate", "lava", "--levels", "1"])
    assert result.exit_code == 0 and "reliability" in result.output and "accepted" in result.output
    assert "add --out DIR to keep" in " ".join(result.output.split())  # nothing kept otherwise
    bad = runner.invoke(app, ["generate", "lava", "--backend", "nope"])
    assert bad.exit_code == 2


def test_a_world_above_the_state_budget_fails_the_levels_stage_with_the_reason():
    data = sample_spec("an icy maze", 0)
    report = validate(data, num_levels=2, split="test", extra_splits=(("validation", 1),),
                      state_budget=50)
    assert not report.ok and report.failed_stage.name == "levels"
    assert "more than 50 reachable states" in report.error and "smaller" in report.error
    assert validate(data, num_levels=2, split="test", extra_splits=(("validation", 1),)).ok
    tight = FAST.model_copy(update={"repair_rounds": 0, "state_budget": 50})
    # another world (built banks are cached per world, and the budget bounds building them)
    fresh = {**data, "name": "IcyBudget-7x7", "max_steps": data["max_steps"] - 1}
    run = Generator(ScriptedBackend([fresh]), tight).generate("t", n=1, levels=3)
    assert run.results[0].stage == "levels" and "reachable states" in run.results[0].reason


def test_worlds_sharing_a_name_do_not_overwrite_each_other(tmp_path: Path):
    good = sample_spec("an icy maze", 0)
    twins = [{**good, "name": "IceMaze", "max_steps": m} for m in (41, 42)]
    run = Generator(ScriptedBackend(twins), FAST).generate("ice", n=2, seed=0, levels=1,
                                                           out=tmp_path)
    assert run.accepted == 2
    first, second = run.results
    assert first.name == "IceMaze" and second.name == f"IceMaze-{second.content_hash[:6]}"
    assert load_spec(tmp_path / "IceMaze.yaml").max_steps == 41  # not overwritten
    assert load_spec(tmp_path / f"{second.name}.yaml").max_steps == 42
    assert len(list((tmp_path / "levels").iterdir())) == 2


class FailingBackend(ScriptedBackend):
    """Its endpoint goes down after the first reply."""

    def propose(self, theme, seed, feedback=None, parent=None) -> Proposal:
        if not self.replies:
            raise GenerationError("LLM endpoint failed after 3 attempt(s) (503)")
        return super().propose(theme, seed, feedback, parent)


def test_a_backend_failure_rejects_that_world_and_keeps_the_others(tmp_path: Path):
    good = sample_spec("an icy maze", 0)
    run = Generator(FailingBackend([good]), FAST).generate("ice", n=2, seed=0, levels=1,
                                                           out=tmp_path)
    assert [r.accepted for r in run.results] == [True, False]
    assert run.results[1].stage == "backend" and "503" in run.results[1].reason
    assert (tmp_path / f"{run.results[0].name}.yaml").is_file()  # the first world is kept


class CutBackend(ScriptedBackend):
    """Its first reply stops at the token limit, mid-JSON."""

    def propose(self, theme, seed, feedback=None, parent=None) -> Proposal:
        if not self.feedback:
            self.feedback.append(feedback)
            return Proposal(text='{"name": "A", ', data=None, completion_tokens=4096,
                            truncated=True)
        return super().propose(theme, seed, feedback, parent)


def test_a_cut_reply_is_told_it_was_cut_not_that_it_is_not_json():
    backend = CutBackend([sample_spec("an icy maze", 0)])
    run = Generator(backend, FAST).generate("ice", n=1, seed=0, levels=1)
    assert run.accepted == 1
    assert "cut off at the token limit (4096 tokens)" in backend.feedback[1]
