"""The training driver and `autoworld train`: metrics, checkpoints, exact resume."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from autoworld.cli.app import app
from autoworld.learners.checkpoint import load_policy, load_state
from autoworld.learners.policies import PolicyConfig
from autoworld.learners.ppo import PPOConfig
from autoworld.learners.train import TrainError, train

WORLD = "Empty-6x6"
CFG = PPOConfig(num_envs=8, num_steps=16, num_minibatches=2, update_epochs=2,
                policy=PolicyConfig(trunk="mlp", hidden=32))
KW = dict(steps=8 * 16 * 4, num_envs=8, seed=3, config=CFG, eval_every=2, eval_episodes=2)


class Killed(Exception):
    pass


def _records(path) -> list[dict]:
    drop = {"wall_time", "steps_per_second"}
    return [{k: v for k, v in json.loads(line).items() if k not in drop}
            for line in path.read_text().splitlines()]


def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path) -> None:
    full = train(WORLD, run_dir=tmp_path / "full", checkpoint_every=1, **KW)
    assert full.steps == 8 * 16 * 4 and full.evaluation is not None

    def kill_at_iteration_3(rec: dict) -> None:
        if rec["kind"] == "train" and rec["iteration"] == 3:
            raise Killed  # after iteration 3's update, before its checkpoint

    split = tmp_path / "split"
    with pytest.raises(Killed):
        train(WORLD, run_dir=split, checkpoint_every=1, callback=kill_at_iteration_3, **KW)
    state = load_state(split / "checkpoint" / "state.pt")
    assert state["learner"]["iteration"] == 2 and state["learner"]["global_step"] == 256
    resumed = train(WORLD, run_dir=split, resume=True, checkpoint_every=1, **KW)
    assert resumed.steps == full.steps
    a, _ = load_policy(tmp_path / "full" / "checkpoint" / "policy.safetensors")
    b, meta = load_policy(split / "checkpoint" / "policy.safetensors")
    assert meta["step"] == full.steps
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), k
    assert _records(split / "metrics.jsonl") == _records(tmp_path / "full" / "metrics.jsonl")
    assert resumed.evaluation == full.evaluation


def _tensorboard_steps(run_dir, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def test_resume_leaves_no_killed_tail_in_metrics_or_tensorboard(tmp_path) -> None:
    full = tmp_path / "full"
    train(WORLD, run_dir=full, checkpoint_every=1, **KW)
    for kill_at, every in ((2, 10), (3, 1)):  # before the first checkpoint, and after one
        run = tmp_path / f"kill{kill_at}"

        def kill(rec: dict, at: int = kill_at) -> None:
            if rec["kind"] == "train" and rec["iteration"] == at:
                raise Killed

        with pytest.raises(Killed):
            train(WORLD, run_dir=run, checkpoint_every=every, callback=kill, **KW)
        train(WORLD, run_dir=run, resume=True, checkpoint_every=every, **KW)
        assert _records(run / "metrics.jsonl") == _records(full / "metrics.jsonl"), kill_at
        assert _tensorboard_steps(run, "train/entropy") == [128, 256, 384, 512]


def test_resume_continues_to_a_larger_budget(tmp_path) -> None:
    first = train(WORLD, run_dir=tmp_path, **{**KW, "steps": 256})
    assert first.steps == 256
    second = train(WORLD, run_dir=tmp_path, resume=True, **KW)
    assert second.steps == 512
    steps = [r["step"] for r in _records(tmp_path / "metrics.jsonl") if r["kind"] == "train"]
    assert steps == [128, 256, 384, 512]
    # a budget the run already passed is refused (it used to report 512 steps for 256)
    with pytest.raises(TrainError, match="already at 512 env-steps, past --steps 256"):
        train(WORLD, run_dir=tmp_path, resume=True, **{**KW, "steps": 256})


def test_resume_refuses_other_hyper_parameters(tmp_path) -> None:
    train(WORLD, run_dir=tmp_path, **{**KW, "steps": 128})
    with pytest.raises(TrainError, match="hyper-parameters"):
        train(WORLD, run_dir=tmp_path, resume=True, **{**KW, "num_envs": 4})


def test_unknown_method_is_a_clear_error() -> None:
    with pytest.raises(TrainError, match="unknown method"):
        train(WORLD, method="no-such-method", steps=10)


@pytest.mark.parametrize("quiet", [True, False])
def test_train_cli_writes_metrics_and_checkpoint(tmp_path, quiet: bool) -> None:
    run = tmp_path / "run"
    args = ["train", WORLD, "--steps", "256", "--num-envs", "4", "--seed", "1",
            "--run-dir", str(run)] + (["--quiet"] if quiet else [])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "R/R_opt" in result.output
    # the summary is a line of its own, after the live table when there is one
    summary = [ln for ln in result.output.splitlines() if "steps in" in ln]
    assert len(summary) == 1 and summary[0].startswith(f"{WORLD} ppo:"), result.output
    assert summary[0].rstrip().endswith(tuple("0123456789")), result.output  # not wrapped
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {r["kind"] for r in recs} == {"train", "eval"}
    assert all("steps_per_second" in r for r in recs if r["kind"] == "train")
    assert (run / "checkpoint" / "policy.safetensors").is_file()
    assert (run / "checkpoint" / "policy.json").is_file()
    assert (run / "checkpoint" / "state.pt").is_file()
    # budgets round up to whole rollouts: 4 envs x 32 steps (the default) = 128 env steps each
    assert json.loads((run / "result.json").read_text())["steps"] == 256
    again = CliRunner().invoke(app, args + ["--resume", "--steps", "1024"])
    assert again.exit_code == 0, again.output
    assert json.loads((run / "result.json").read_text())["steps"] == 1024
    # the same command without --resume would overwrite the run: refused, nothing touched
    before = (run / "metrics.jsonl").read_text()
    over = CliRunner().invoke(app, args)
    assert over.exit_code == 2 and "already holds a run" in over.output
    assert (run / "metrics.jsonl").read_text() == before
    # --resume of a folder that holds nothing is refused too (it used to start a fresh run)
    none = CliRunner().invoke(app, ["train", WORLD, "--steps", "128", "--run-dir",
                                    str(tmp_path / "nothing"), "--resume", "--quiet"])
    assert none.exit_code == 2 and "holds no run to continue" in none.output
    assert not (tmp_path / "nothing").exists()


def test_train_cli_rejects_unknown_world() -> None:
    result = CliRunner().invoke(app, ["train", "NoSuchWorld-3x3", "--steps", "8"])
    assert result.exit_code == 2


def test_registered_methods_report_progress_to_the_callback() -> None:
    from autoworld.learners.methods import MethodOptions

    records: list[dict] = []
    result = train(WORLD, method="es", steps=2000, num_envs=16, seed=0, callback=records.append,
                   options=MethodOptions(policy=PolicyConfig(trunk="mlp", hidden=8),
                                         population=4, eval_episodes=1))
    gens = [r for r in records if r["kind"] == "train"]
    assert gens and [r["step"] for r in gens] == sorted(r["step"] for r in gens)
    assert all(r["steps_per_second"] > 0 and "episode_return" in r for r in gens)
    (final,) = [r for r in records if r["kind"] == "eval"]
    assert final["normalized"] == pytest.approx(result.score)
    assert final["step"] == result.steps


def test_registered_methods_size_their_envs_to_a_small_budget() -> None:
    from autoworld.learners.methods import MethodOptions

    # 256 envs used to run whole generations of 256 episodes: 16,200 steps for a 3,000 budget
    res = train(WORLD, method="es", steps=3000, num_envs=None, seed=0,
                options=MethodOptions(policy=PolicyConfig(trunk="mlp", hidden=8)))
    assert 0.5 * 3000 <= res.steps <= 3000


def test_registered_methods_write_tensorboard_too(tmp_path) -> None:
    from autoworld.learners.methods import MethodOptions

    res = train(WORLD, method="es", steps=2000, num_envs=16, seed=0, run_dir=tmp_path,
                options=MethodOptions(policy=PolicyConfig(trunk="mlp", hidden=8), population=4,
                                      eval_episodes=1))
    steps = _tensorboard_steps(tmp_path, "train/best_return")
    assert steps and steps == sorted(steps) and steps[-1] <= res.steps
    assert _tensorboard_steps(tmp_path, "eval/normalized") == [res.steps]


def test_a_budget_under_one_rollout_is_not_passed() -> None:
    """256 envs x 32 steps is 8,192 steps: a 2,000-step ppo run used to take them all. The
    rollout now fits the budget (fewer envs; under one env's rollout, fewer steps)."""
    res = train(WORLD, method="ppo", steps=2000, num_envs=256, seed=0)
    assert 0.9 * 2000 <= res.steps <= 2000
    cfg = PPOConfig(num_envs=256, num_steps=32)
    assert cfg.fit_budget(10**6) is cfg
    assert (cfg.fit_budget(2000).num_envs, cfg.fit_budget(2000).num_steps) == (62, 32)
    assert (cfg.fit_budget(20).num_envs, cfg.fit_budget(20).num_steps) == (1, 20)


def test_a_run_begun_under_one_rollout_resumes_to_a_larger_budget(tmp_path) -> None:
    """The first budget fitted the rollout (6 envs x 16 steps for 100 steps); a resume with a
    larger --steps and the same options continues with that rollout, not a refusal."""
    cfg = PPOConfig(num_envs=8, num_steps=16)
    first = train(WORLD, steps=100, seed=0, run_dir=tmp_path, config=cfg)
    assert first.steps == 96
    second = train(WORLD, steps=1000, seed=0, run_dir=tmp_path, config=cfg, resume=True)
    assert second.steps == 960  # 10 rollouts of 6 x 16
