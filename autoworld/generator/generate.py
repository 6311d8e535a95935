"""The generation loop: backend proposal -> staged validation -> repair rounds -> statistics.

``Generator(backend, config).generate(theme, n, seed, levels=K)`` asks the backend for ``n``
worlds per theme. Every proposal goes through ``autoworld.validation.validate`` (schema, build,
smoke, levels, reliability, novelty against the catalogue and the worlds accepted earlier in the
run); a rejected one is sent back with the validator's one-line message as ``feedback`` for at
most ``repair_rounds`` more rounds. The run records per-world results, per-stage pass counts and
rates (AutoEnv's execution / level-generation / reliability format and ours), time, tokens and
cost. With ``out``, each accepted world's spec YAML and level bank JSON are written atomically
as soon as it is accepted. Nothing a backend returns is ever executed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from autoworld.errors import AutoworldError, GenerationError
from autoworld.generator.base import Backend, Proposal
from autoworld.validation import (
    ALL_STAGES,
    NoveltyIndex,
    ValidationConfig,
    ValidationReport,
    validate,
)

log = logging.getLogger(__name__)
LEVEL_FILE_FORMAT = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GeneratorConfig(_Frozen):
    """Settings of a generation run."""

    repair_rounds: int = Field(3, ge=0, le=10, description="Repair rounds after a rejection.")
    num_envs: int = Field(4, ge=1, le=256, description="Envs of the build and smoke stages.")
    smoke_steps: int = Field(32, ge=1, le=10_000, description="Random steps of the smoke stage.")
    random_episodes: int = Field(32, ge=1, le=10_000,
                                 description="Random-policy episodes per level (reliability).")
    margin: float = Field(0.05, ge=0.0, description="Least optimal-minus-random gap per level.")
    novelty: bool = Field(True, description="Dedup against the catalogue and the run.")
    min_distance: float = Field(0.0, ge=0.0, le=1.0,
                                description="Least distance to the nearest known world.")
    device: str = Field("cpu", description="Torch device of the build and smoke stages.")
    state_budget: int | None = Field(
        1_000_000, ge=1, description="Most reachable states the exact oracle may enumerate over "
        "one world's levels (the levels stage rejects a world above it, with the reason, and "
        "the next round proposes another); bounds the time one world can take. None: no "
        "budget.")


class WorldResult(_Frozen):
    """The outcome of one requested world (after its repair rounds)."""

    theme: str = Field(..., description="The theme it was generated from.")
    seed: int = Field(..., description="The world's seed (run seed + index).")
    accepted: bool = Field(..., description="True when a proposal passed every stage.")
    name: str = Field("", description="World name of the last proposal ('' if unparsed).")
    content_hash: str = Field("", description="Content hash of the last proposal.")
    spec: dict[str, Any] | None = Field(None, description="The accepted spec (JSON mapping).")
    stage: str | None = Field(None, description="Stage that rejected the last proposal.")
    reason: str = Field("", description="Why the last proposal was rejected.")
    rounds: int = Field(1, ge=1, description="Proposals made (1 + repair rounds used).")
    seconds: float = Field(0.0, ge=0.0, description="Wall-clock time of this world.")
    files: tuple[str, ...] = Field((), description="Files written for it (spec, level bank).")


class StageStat(_Frozen):
    """Pass counts of one stage over every proposal of a run."""

    name: str = Field(..., description="Stage name.")
    attempted: int = Field(..., ge=0, description="Proposals that reached the stage.")
    passed: int = Field(..., ge=0, description="Proposals that passed it.")
    rate: float = Field(..., description="passed / attempted (AutoEnv's per-stage rate).")
    cumulative: float = Field(..., description="passed / all proposals.")


class GenerationRun(_Frozen):
    """Everything one generation run produced and measured."""

    backend: str = Field(..., description="Backend name.")
    themes: tuple[str, ...] = Field(..., description="The themes, in order.")
    n: int = Field(..., ge=0, description="Worlds requested per theme.")
    seed: int = Field(..., description="Run seed.")
    levels: int = Field(..., ge=1, description="Levels validated per world (test + validation).")
    results: tuple[WorldResult, ...] = Field(..., description="One result per requested world.")
    stages: tuple[StageStat, ...] = Field(..., description="Per-stage pass statistics.")
    proposals: int = Field(..., ge=0, description="Proposals made (repairs included).")
    accepted: int = Field(..., ge=0, description="Worlds accepted.")
    first_try: int = Field(..., ge=0, description="Worlds accepted on their first proposal.")
    seconds: float = Field(..., ge=0.0, description="Wall-clock time of the run.")
    prompt_tokens: int = Field(0, ge=0, description="Tokens sent to the model, summed.")
    completion_tokens: int = Field(0, ge=0, description="Tokens produced, summed.")
    cost_usd: float = Field(0.0, ge=0.0, description="Cost summed over proposals.")

    @property
    def accepted_per_minute(self) -> float:
        return 60.0 * self.accepted / self.seconds if self.seconds > 0 else 0.0

    def stage(self, name: str) -> StageStat:
        return next(s for s in self.stages if s.name == name)

    def autoenv_rates(self) -> dict[str, float]:
        """AutoEnv's format: execution (build and smoke), level generation, reliability and
        overall pass rates, each among the proposals that reached it (overall: of all)."""
        build, smoke = self.stage("build"), self.stage("smoke")
        execution = smoke.passed / build.attempted if build.attempted else 0.0
        overall = self.stages[-1].passed  # proposals that passed every stage
        return {
            "execution": round(execution, 4),
            "level_generation": round(self.stage("levels").rate, 4),
            "reliability": round(self.stage("reliability").rate, 4),
            "overall": round(overall / self.proposals, 4) if self.proposals else 0.0,
        }

    def summary(self) -> dict[str, Any]:
        """The machine-readable summary (what ``--json`` prints, results excluded)."""
        return {
            "backend": self.backend, "themes": list(self.themes), "n": self.n, "seed": self.seed,
            "levels": self.levels, "proposals": self.proposals, "accepted": self.accepted,
            "requested": len(self.results), "first_try": self.first_try,
            "first_try_rate": round(self.first_try / len(self.results), 4)
            if self.results else 0.0,
            "stages": [s.model_dump() for s in self.stages],
            "autoenv": self.autoenv_rates(),
            "seconds": round(self.seconds, 3),
            "accepted_per_minute": round(self.accepted_per_minute, 2),
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost_usd, 6),
            "rejections": [{"theme": r.theme, "seed": r.seed, "stage": r.stage,
                            "reason": r.reason} for r in self.results if not r.accepted],
        }


def split_levels(levels: int) -> tuple[int, int]:
    """(test, validation) level counts of a world validated with ``levels`` levels: a third for
    validation, the rest for test (15 -> 10 test + 5 validation)."""
    val = levels // 3
    return levels - val, val


def round_seed(seed: int, round_index: int) -> int:
    """The backend seed of repair round ``round_index`` (round 0 uses ``seed`` itself)."""
    if round_index == 0:
        return int(seed)
    digest = hashlib.sha256(f"repair:{seed}:{round_index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def level_bank_text(spec, report: ValidationReport) -> str:
    """The JSON text of an accepted world's level bank: per split the levels (``Level.to_json``)
    with the validated oracle figures (the catalogue level-file layout)."""
    from autoworld.envs.grid import levels as level_gen

    splits: dict[str, list[dict[str, Any]]] = {}
    for split in dict.fromkeys(c.split for c in report.levels):
        checks = [c for c in report.levels if c.split == split]
        bank = level_gen.bank(spec, split, size=len(checks))
        splits[split] = [{
            **bank.level(c.index).to_json(),
            "optimal_return": round(c.optimal_return, 6) + 0.0,
            "optimal_exact": c.exact,
            "random_return": round(float(c.random_return or 0.0), 6) + 0.0,
            "num_states": c.num_states,
        } for c in checks]
    data = {"format": LEVEL_FILE_FORMAT, "name": spec.name, "content_hash": spec.content_hash,
            "random_episodes": report.config.random_episodes, "splits": splits}
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def _unique_name(spec, out: Path, written: dict[str, str]):
    """``spec``, renamed ``<name>-<hash6>`` when another world already holds its name in
    ``out`` or in this run (LLM backends reuse names; the second would overwrite the first)."""
    from autoworld.spec import load_spec

    path = out / f"{spec.name}.yaml"
    held = written.get(spec.name)
    if held is None and path.is_file():
        try:
            held = load_spec(path).content_hash
        except AutoworldError:
            held = ""  # an unreadable file there: do not overwrite it either
    if held is None or held == spec.content_hash:
        return spec
    return spec.model_copy(update={"name": f"{spec.name[:57]}-{spec.content_hash[:6]}"})


def write_world(spec, report: ValidationReport, out: Path) -> tuple[str, ...]:
    """Write ``out/<name>.yaml`` and ``out/levels/<name>.json`` atomically (bank first, then the
    spec; a failure removes what this call wrote, so nothing is left half-written)."""
    from autoworld.spec import atomic_write_text, spec_to_yaml

    bank_path = out / "levels" / f"{spec.name}.json"
    spec_path = out / f"{spec.name}.yaml"
    bank_text, spec_text = level_bank_text(spec, report), spec_to_yaml(spec)
    atomic_write_text(bank_path, bank_text)
    try:
        atomic_write_text(spec_path, spec_text)
    except BaseException:
        bank_path.unlink(missing_ok=True)
        raise
    return str(spec_path), str(bank_path)


class Generator:
    """Drives a backend through validation and repair rounds.

    Example:
        >>> from autoworld.generator.procedural import ProceduralBackend
        >>> run = Generator(ProceduralBackend()).generate("an icy maze", n=1, seed=0, levels=1)
        >>> run.accepted
        1
    """

    def __init__(self, backend: Backend, config: GeneratorConfig | None = None) -> None:
        self.backend = backend
        self.config = config or GeneratorConfig()
        self._written: dict[str, str] = {}  # names written to an out folder -> content hash

    def _validation_config(self, levels: int) -> ValidationConfig:
        c = self.config
        test, val = split_levels(levels)
        return ValidationConfig(
            num_levels=test, split="test", extra_splits=(("validation", val),) if val else (),
            num_envs=c.num_envs, smoke_steps=c.smoke_steps, margin=c.margin,
            random_episodes=c.random_episodes, device=c.device, novelty=c.novelty,
            min_distance=c.min_distance, state_budget=c.state_budget,
        )

    def generate(self, theme: str | Sequence[str], n: int = 1, seed: int = 0, levels: int = 15,
                 out: str | Path | None = None,
                 on_result: Callable[[WorldResult], None] | None = None,
                 novelty_index: NoveltyIndex | None = None) -> GenerationRun:
        """Generate ``n`` worlds for each theme (one string or a list).

        Args:
            theme: the theme, or a list of themes (``n`` worlds each).
            n: worlds requested per theme.
            seed: run seed; world ``i`` of a theme uses ``seed + i``.
            levels: levels validated per world (a third validation, the rest test).
            out: folder for accepted worlds (``<name>.yaml`` and ``levels/<name>.json``).
            on_result: called after each world (progress bars).
            novelty_index: the known worlds for the novelty stage (default: the whole
                catalogue); accepted worlds are added to it.
        """
        themes = (theme,) if isinstance(theme, str) else tuple(theme)
        cfg = self._validation_config(levels)
        index = None
        if self.config.novelty:
            index = novelty_index if novelty_index is not None else \
                NoveltyIndex.from_catalogue()
        out_dir = Path(out) if out is not None else None
        counts = {s: [0, 0] for s in ALL_STAGES}
        results: list[WorldResult] = []
        proposals: list[Proposal] = []
        start = time.perf_counter()
        for th in themes:
            for i in range(n):
                result = self._one(th, seed + i, cfg, index, counts, proposals, out_dir)
                results.append(result)
                if on_result is not None:
                    on_result(result)
        total = len(proposals)
        stages = tuple(
            StageStat(name=s, attempted=a, passed=p, rate=round(p / a, 4) if a else 0.0,
                      cumulative=round(p / total, 4) if total else 0.0)
            for s, (a, p) in counts.items() if s != "novelty" or self.config.novelty
        )
        return GenerationRun(
            backend=self.backend.name, themes=themes, n=n, seed=seed, levels=levels,
            results=tuple(results), stages=stages, proposals=total,
            accepted=sum(r.accepted for r in results),
            first_try=sum(r.accepted and r.rounds == 1 for r in results),
            seconds=time.perf_counter() - start,
            prompt_tokens=sum(p.prompt_tokens for p in proposals),
            completion_tokens=sum(p.completion_tokens for p in proposals),
            cost_usd=sum(p.cost_usd for p in proposals),
        )

    def _one(self, theme: str, seed: int, cfg: ValidationConfig, index: NoveltyIndex | None,
             counts: dict[str, list[int]], proposals: list[Proposal], out: Path | None
             ) -> WorldResult:
        start = time.perf_counter()
        feedback: str | None = None
        report: ValidationReport | None = None
        rounds = 0
        for r in range(self.config.repair_rounds + 1):
            rounds = r + 1
            try:
                proposal = self.backend.propose(theme, round_seed(seed, r), feedback=feedback)
            except GenerationError as exc:
                # the backend itself failed (an endpoint down after its retries): this world
                # is rejected and the run goes on, keeping the worlds already made
                log.warning("%s (seed %d): the backend failed: %s", theme[:60], seed, exc)
                return WorldResult(theme=theme, seed=seed, accepted=False, stage="backend",
                                   reason=str(exc), rounds=rounds,
                                   seconds=time.perf_counter() - start)
            proposals.append(proposal)
            report = validate(proposal.data if proposal.data is not None else None, cfg,
                              novelty_index=index)
            for s in report.stages:
                if s.status != "skipped":
                    counts[s.name][0] += 1
                    counts[s.name][1] += int(s.passed)
            if report.ok:
                break
            feedback = report.error
            if proposal.data is None:
                feedback = ("schema: the reply is not one JSON object; reply with a single "
                            "WorldSpec JSON object")
                if proposal.truncated:
                    feedback = (f"schema: the reply was cut off at the token limit "
                                f"({proposal.completion_tokens} tokens) before its JSON "
                                "ended; reply with a smaller WorldSpec JSON object (fewer "
                                "components, default parameters left out)")
            log.info("%s (seed %d) round %d rejected: %s", theme[:60], seed, r, feedback)
        assert report is not None
        failed = report.failed_stage
        if failed is not None:
            return WorldResult(theme=theme, seed=seed, accepted=False, name=report.world,
                               content_hash=report.content_hash, stage=failed.name,
                               reason=feedback or failed.message, rounds=rounds,
                               seconds=time.perf_counter() - start)
        from autoworld.spec import parse_spec

        spec = parse_spec(proposal.data)
        if index is not None:
            index.add(spec)
        if out is not None:
            spec = _unique_name(spec, out, self._written)
            self._written[spec.name] = spec.content_hash
        files = write_world(spec, report, out) if out is not None else ()
        return WorldResult(theme=theme, seed=seed, accepted=True, name=spec.name,
                           content_hash=spec.content_hash, spec=spec.model_dump(mode="json"),
                           rounds=rounds, seconds=time.perf_counter() - start, files=files)
