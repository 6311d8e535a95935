"""Arm-family learning methods in the SOE registry's shape (``learners.methods.MethodSpec``).

- ``arm-bc``: behaviour cloning of scripted-expert demonstrations (several operators with
  different speeds) into a cross-embodiment chunk policy, chunks taken as recorded.
- ``arm-bc-debias``: the same, with action-rate debiased chunks (``learners.debias``).
- ``arm-es``: OpenAI-ES (``learners.es.ESOperator`` in ``soe.soe_loop``) on the chunk policy's
  weights, every population member rolled out in one batched ``ArmEngine`` per generation
  (``ArmPopulationEvaluator``).
- ``arm-ppo``: PPO with a diagonal Gaussian policy over the world's continuous actions (its
  own interface: end-effector deltas or joint velocities), every env in one batched
  ``ArmEngine`` (``learners.arm_ppo``).

``arm-bc``, ``arm-bc-debias`` and ``arm-es`` emit end-effector deltas and train only worlds of
that interface (``EE_DELTA_METHODS``).

Selection is ``best`` (one candidate) and the component is the policy weights. Scores follow
the registry's conventions with the arm family's oracle: the scripted expert's return on the
same validation scenes (a reference, not a proven optimum), so
``score = R / R_expert`` and ``normalized_gain = (R - R_random) / (R_expert - R_random)``.

``ARM_METHODS`` lists the specs; ``register()`` adds them to ``learners.methods.METHODS``.

Example:
    >>> from autoworld.learners.arm_methods import ARM_METHODS
    >>> [m.name for m in ARM_METHODS]
    ['arm-bc', 'arm-bc-debias', 'arm-es', 'arm-ppo']
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

from autoworld.errors import SpecError
from autoworld.learners.methods import MethodError, MethodOptions, MethodResult, MethodSpec


def arm_world_arg(world) -> Any:
    """An ``ArmWorldSpec`` from a spec, a .yaml/.json path, an arm catalogue name
    (``ArmReach-N3``, see ``autoworld list``) or a name ``Arm<Task>-<arm>`` as ``arm_world``
    names them (for instance ``ArmReachAround-arm3``)."""
    from autoworld.envs.arm.registration import list_arm_worlds, load_arm_world
    from autoworld.envs.arm.spec import TASKS, ArmWorldSpec, arm_world, load_arm_spec

    if isinstance(world, ArmWorldSpec):
        return world
    # a name or path as given (a Path too, whose .name would drop its folder); of a spec
    # object of another family, its name rather than its whole repr
    text = str(world) if isinstance(world, str | os.PathLike) else str(getattr(world, "name",
                                                                              world))
    if Path(text).suffix in (".yaml", ".yml", ".json"):
        return load_arm_spec(text)
    if text in list_arm_worlds():
        return load_arm_world(text)
    camel = {"Arm" + "".join(p.capitalize() for p in t.split("_")): t for t in TASKS}
    head, _, arm = text.partition("-")
    if len(arm) > 1 and arm[0] == "N" and arm[1:].isdigit():
        arm = f"arm{arm[1:]}"  # the name results report (ArmReach-N5) names the same world
    if head not in camel or not arm:
        raise SpecError(f"unknown arm world {text!r}; use a spec file, an arm catalogue name "
                        f"(ArmReach-N3) or a name like {', '.join(sorted(camel))[:60]}...-arm3",
                        field="world")
    return arm_world(camel[head], arm)


# methods whose policies emit end-effector deltas: they train the ee_delta worlds only
EE_DELTA_METHODS = ("arm-bc", "arm-bc-debias", "arm-es")


def _ee_delta_world(world, method: str):
    """The arm world of ``world`` for a method whose policies emit end-effector deltas: a world
    of another interface is refused (training it as ee_delta would score another world under
    its name)."""
    spec = arm_world_arg(world)
    if spec.interface != "ee_delta":
        raise MethodError(f"{method} trains end-effector-delta worlds and {spec.name} acts "
                          f"through {spec.interface!r}; train it with arm-ppo, or use the "
                          "world's ee_delta version")
    return spec


def normalized_scores(ret: float, expert: float, rand: float) -> tuple[float, float]:
    """``(R / R_expert, (R - R_random) / (R_expert - R_random))``, 0 where undefined."""
    score = ret / expert if abs(expert) > 1e-9 else 0.0
    gain = (ret - rand) / (expert - rand) if abs(expert - rand) > 1e-9 else 0.0
    return score, gain


def run_arm_bc(name: str, mode: str, world, steps: int = 2_000, num_envs: int = 64,
               seed: int = 0, device: str = "cpu", run_dir=None,
               options: MethodOptions | None = None) -> MethodResult:
    """Collect ``options.bc_levels`` expert episodes, clone the successful ones (``steps``
    gradient steps, capped at 20,000) and score the policy on ``num_envs`` validation
    episodes."""
    from autoworld.atomic import atomic_write
    from autoworld.envs.arm.demos import collect_demos
    from autoworld.envs.arm.experts import standard_operators
    from autoworld.learners.arm_bc import (
        ArmBCConfig,
        build_chunks,
        expert_actor,
        make_policy,
        random_actor,
        rollout,
        rollout_success,
        train_bc,
    )
    from autoworld.learners.xembodiment import XPolicyConfig, save_xpolicy

    options = options or MethodOptions()
    spec = _ee_delta_world(world, name)
    start = time.perf_counter()
    policy = make_policy(XPolicyConfig(arch="mlp", head="mse", chunk=8), seed=seed)
    eval_seed = seed + 10_007  # validation scenes differ from the demonstrations'
    initial = rollout_success(policy, [spec], num_envs, seed=eval_seed, device=device)
    demos = collect_demos([spec], options.bc_levels, standard_operators(), seed=seed,
                          device=device)
    if bool(demos.success.any()):  # clone successful demonstrations only
        demos = demos.subset(demos.success)
    cfg = ArmBCConfig(debias=mode, steps=max(1, min(int(steps), 20_000)))
    data = build_chunks(demos, policy.config.chunk, mode, seed=seed)
    losses = train_bc(policy, data, cfg, seed=seed, device=device)
    final = rollout_success(policy, [spec], num_envs, seed=eval_seed, device=device)
    expert = rollout(expert_actor(standard_operators()[:1], seed=eval_seed), [spec], num_envs,
                     seed=eval_seed, device=device)
    rand = rollout(random_actor(eval_seed), [spec], num_envs, seed=eval_seed, device=device)
    score, gain = normalized_scores(final.mean_return, expert.mean_return, rand.mean_return)
    init_score, _ = normalized_scores(initial.mean_return, expert.mean_return, rand.mean_return)
    test_score = None
    if options.test_eval:
        shifted = rollout_success(policy, [spec], num_envs, seed=eval_seed, device=device,
                                  split="shifted")
        test_score = normalized_scores(shifted.mean_return, expert.mean_return, rand.mean_return)[0]
    out = MethodResult(method=name, world=spec.name, seed=seed, steps=steps,
                       env_steps=0, initial_score=init_score, score=score,
                       normalized_gain=gain, mean_return=final.mean_return,
                       success=final.success, test_score=test_score,
                       seconds=time.perf_counter() - start,
                       extra={"debias": mode, "demonstrations": len(demos),
                              "demonstration_steps": int(demos.valid.sum()),
                              "chunks": len(data), "final_loss": losses[-1],
                              "expert_return": expert.mean_return,
                              "expert_success": expert.success,
                              "random_return": rand.mean_return,
                              "oracle": "scripted expert (not a proven optimum)"})
    if run_dir is not None:
        rd = Path(run_dir)
        save_xpolicy(policy, rd / "policy", extra={"method": name, "world": spec.name,
                                                   "spec_hash": spec.content_hash()})
        atomic_write(rd / "result.json", out.model_dump_json(indent=1) + "\n")
    return out


# ====================================================================== ES on arm worlds
class ArmPopulationEvaluator:
    """Scores a population of flat weight vectors of one ``XPolicy`` in ONE ``ArmEngine`` of
    ``pop * episodes`` envs: member m owns envs [m*E, (m+1)*E), every member plays the same
    scenes (common random numbers: the engine seed is fixed, and env j of each member takes
    stream j). The first episode of each env is scored: ``ret`` its return, ``success`` its
    success, ``cost`` its length."""

    def __init__(self, spec, policy, *, episodes: int, device: str = "cpu", seed: int = 0
                 ) -> None:
        self.spec, self.policy, self.episodes = spec, policy, int(episodes)
        self.device, self.seed = device, seed
        self._longest: int | None = None  # longest episode of the last rollout
        self.check_every: int | None = None  # None: soe.end_check_every(the device)

    @torch.no_grad()
    def score(self, cands, seed: int, budget: int | None = None) -> int:
        """Score ``cands`` in place; returns the env-steps spent, at most ``budget``
        (``soe.fit_rollout``: fewer episodes, a capped horizon, or ``BudgetExhausted``)."""
        from autoworld.envs.arm.engine import ArmEngine
        from autoworld.learners.soe import end_check_every, fit_rollout, load_flat

        P = len(cands)
        E, horizon = fit_rollout(P, self.episodes, budget, self._longest,
                                 int(self.spec.max_steps) + 1)
        engine = ArmEngine(self.spec, num_envs=P * E, device=self.device, seed=self.seed)
        # env j of every member meets the same scene: stream j
        obs = engine.reset(seed=self.seed, streams=torch.arange(E).repeat(P))
        T = self.policy.config.chunk
        B = P * E
        alive = torch.ones(B, dtype=torch.bool, device=engine.device)
        ok = torch.zeros(B, dtype=torch.bool, device=engine.device)
        ret = torch.zeros(B, dtype=torch.float64, device=engine.device)
        length = torch.zeros(B, dtype=torch.float64, device=engine.device)
        chunk = torch.zeros(B, T, 3, device=engine.device)
        every = self.check_every or end_check_every(engine.device)
        live_steps = torch.zeros((), dtype=torch.long, device=engine.device)
        for k in range(horizon):
            if k % T == 0:
                for m, c in enumerate(cands):
                    load_flat(self.policy, c.params)
                    sl = slice(m * E, (m + 1) * E)
                    chunk[sl] = self.policy.act({key: v[sl] for key, v in obs.items()},
                                                greedy=True)
            obs, reward, terminated, truncated, info = engine.step(chunk[:, k % T])
            live_steps += alive.any()  # a step counts while some episode is still running
            ret += torch.where(alive, reward.double(), 0.0)
            length += alive.double()
            ok |= alive & info["success"].bool()
            alive &= ~(terminated | truncated)
            if (k + 1) % every == 0 and not bool(alive.any()):  # on a GPU: every 8 steps
                break
        steps = int(live_steps) * B
        self._longest = steps // B
        for m, c in enumerate(cands):
            sl = slice(m * E, (m + 1) * E)
            c.ret = float(ret[sl].mean())
            c.success = float(ok[sl].float().mean())
            c.cost = float(length[sl].mean())
        return steps


def run_arm_es(world, steps: int = 200_000, num_envs: int = 64, seed: int = 0,
               device: str = "cpu", run_dir=None, options: MethodOptions | None = None
               ) -> MethodResult:
    """OpenAI-ES on a small MSE chunk policy's weights within ``steps`` env-steps."""
    from autoworld.atomic import atomic_write
    from autoworld.learners import soe
    from autoworld.learners.arm_bc import (
        expert_actor,
        make_policy,
        random_actor,
        rollout,
        rollout_success,
    )
    from autoworld.learners.es import ESConfig, ESOperator
    from autoworld.learners.xembodiment import XPolicyConfig, save_xpolicy

    options = options or MethodOptions()
    spec = _ee_delta_world(world, "arm-es")
    start = time.perf_counter()
    policy = make_policy(XPolicyConfig(arch="mlp", head="mse", chunk=8, hidden=32, layers=1,
                                       embed_dim=8), seed=seed)
    eval_seed = seed + 10_007
    initial = rollout_success(policy, [spec], num_envs, seed=eval_seed, device=device,
                              greedy=True)
    cfg = ESConfig(**({} if options.population is None else {"population": options.population}))
    cfg = cfg.model_copy(update={"episodes": max(1, num_envs // (cfg.population + 1))})
    op = ESOperator(soe.flat_params(policy).cpu(), cfg, seed=seed)
    evaluator = ArmPopulationEvaluator(spec, policy, episodes=cfg.episodes, device=device,
                                       seed=seed)
    _, logs, spent = soe.search(op.theta, evaluator.score, lambda c: soe.select_best(c, 1), op,
                                steps=steps, seed=seed)
    soe.load_flat(policy, op.theta)
    final = rollout_success(policy, [spec], num_envs, seed=eval_seed, device=device,
                            greedy=True)
    expert = rollout(expert_actor(None, seed=eval_seed), [spec], num_envs, seed=eval_seed,
                     device=device)
    rand = rollout(random_actor(eval_seed), [spec], num_envs, seed=eval_seed, device=device)
    score, gain = normalized_scores(final.mean_return, expert.mean_return, rand.mean_return)
    out = MethodResult(method="arm-es", world=spec.name, seed=seed, steps=steps,
                       env_steps=int(spent),
                       initial_score=normalized_scores(initial.mean_return, expert.mean_return,
                                                 rand.mean_return)[0],
                       score=score, normalized_gain=gain, mean_return=final.mean_return,
                       success=final.success, seconds=time.perf_counter() - start,
                       extra={"generations": len(logs), "expert_return": expert.mean_return,
                              "random_return": rand.mean_return,
                              "oracle": "scripted expert (not a proven optimum)"})
    if run_dir is not None:
        rd = Path(run_dir)
        save_xpolicy(policy, rd / "policy", extra={"method": "arm-es", "world": spec.name})
        atomic_write(rd / "result.json", out.model_dump_json(indent=1) + "\n")
    return out


def run_arm_ppo(world, steps: int = 200_000, num_envs: int = 64, seed: int = 0,
                device: str = "cpu", run_dir=None, options: MethodOptions | None = None,
                **kw: Any) -> MethodResult:
    """PPO with a Gaussian policy on the arm's end-effector deltas (``learners.arm_ppo``;
    ``kw``: its ``config``, ``resume`` and ``checkpoint_every``)."""
    from autoworld.learners.arm_ppo import run_arm_ppo as run

    return run(world, steps, num_envs, seed, device, run_dir, options, **kw)


def _method(name: str, mode: str):
    def run(world, steps: int = 2_000, num_envs: int = 64, seed: int = 0, device: str = "cpu",
            run_dir=None, options: MethodOptions | None = None) -> MethodResult:
        return run_arm_bc(name, mode, world, steps, num_envs, seed, device, run_dir, options)

    return run


def _spec(*args: Any) -> MethodSpec:
    """A ``MethodSpec``, tagged ``family="arm"`` where the registry knows families."""
    spec = MethodSpec(*args)
    if "family" in getattr(MethodSpec, "__dataclass_fields__", {}):
        import dataclasses

        spec = dataclasses.replace(spec, family="arm")
    return spec


ARM_METHODS: list[MethodSpec] = [
    _spec("arm-bc", "best", "Behaviour cloning of expert action chunks",
               "cross-embodiment policy weights",
               "Chunked BC of multi-operator arm demonstrations, chunks as recorded.",
               _method("arm-bc", "none")),
    _spec("arm-bc-debias", "best", "Behaviour cloning of action-rate debiased chunks",
               "cross-embodiment policy weights",
               "Chunked BC whose chunk lengths match a learned action-rate model.",
               _method("arm-bc-debias", "debias")),
    _spec("arm-es", "best", "OpenAI-ES (antithetic, centred ranks, Adam)",
               "cross-embodiment policy weights",
               "A Gaussian search around one chunk policy, every member in one arm engine.",
               run_arm_es),
    _spec("arm-ppo", "best", "PPO (GAE, clipped objective, diagonal Gaussian policy)",
               "policy weights",
               "One PPO learner on the continuous end-effector deltas, all envs in one arm "
               "engine.", run_arm_ppo),
]


def register() -> list[MethodSpec]:
    """Add the arm methods to ``learners.methods.METHODS`` (names already there are kept)."""
    from autoworld.learners.methods import METHODS
    from autoworld.learners.methods import register as add

    return [add(m) for m in ARM_METHODS if m.name not in METHODS]


register()  # importing this module first (before learners.methods) still registers them
