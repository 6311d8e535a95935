"""Validation of arm world specs: schema, build, reachability and the expert oracle.

Stages (like grid worlds): the spec parses; an engine builds and steps; every goal, object and
waypoint of every scene in the world's scene banks (train and shifted) is reachable by the
embodiment (``kinematics.reachable``, exact for arms whose base turns fully); the scripted
expert solves the world, and its mean return is the world's oracle. The expert is not a proven
optimum, so the report says ``oracle_is_exact=False``; the random-policy return is reported
beside it.

Example:
    >>> from autoworld.envs.arm.spec import arm_world
    >>> report = validate_arm_spec(arm_world("reach", "arm2"), episodes=16)
    >>> report.ok, report.oracle_is_exact
    (True, False)
"""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, ConfigDict, Field

from autoworld.envs.arm.engine import EE_RADIUS, ArmEngine
from autoworld.envs.arm.experts import RING_ANGLES, ScriptedExpert, _perp, _unit
from autoworld.envs.arm.kinematics import reachable, workspace_radii
from autoworld.envs.arm.scene import wipe_cells
from autoworld.envs.arm.spec import ArmWorldSpec
from autoworld.errors import AutoworldError

REACH_MARGIN = 0.02  # targets must lie this far inside the workspace's outer rim (m)
MIN_EXPERT_SUCCESS = 0.9


class ReachabilityStage(BaseModel):
    """Reachability of the targets of every scene in one split's bank."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    split: str = Field(..., description="Scene split.")
    scenes: int = Field(..., description="Scenes checked (the whole bank).")
    points: int = Field(..., description="Target points checked.")
    unreachable: int = Field(..., description="Points the arm cannot reach.")


class ArmValidationReport(BaseModel):
    """What ``validate_arm_spec`` found."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(..., description="World name.")
    ok: bool = Field(..., description="Every stage passed.")
    errors: list[str] = Field(default_factory=list, description="What failed, and the fix.")
    r_min: float = Field(..., description="Innermost reachable radius of the arm (m).")
    r_max: float = Field(..., description="Outermost reachable radius of the arm (m).")
    reachability: list[ReachabilityStage] = Field(default_factory=list,
                                                  description="Per split.")
    episodes: int = Field(0, description="Episodes rolled out per policy.")
    oracle_return: float | None = Field(None, description="Mean return of the scripted expert.")
    oracle_is_exact: bool = Field(False, description="False: the oracle is the expert's "
                                  "return, not a proven optimum.")
    expert_success: float | None = Field(None, description="Expert success rate.")
    random_return: float | None = Field(None, description="Mean return of uniform random "
                                        "actions.")


def target_points(engine: ArmEngine) -> tuple[torch.Tensor, torch.Tensor]:
    """Every point the task needs reached, for every scene of the engine's bank:
    points (S, K, 2) and mask (S, K) bool (S = worlds x bank size)."""
    b = engine.bank
    S = b["goal"].shape[0]
    W = len(engine.worlds)
    rows = torch.arange(W, device=engine.device).repeat_interleave(engine.bank_size)
    pw = {k: v[rows] for k, v in engine.pw.items()}
    from autoworld.envs.arm.engine import _task_masks

    is_ = _task_masks(pw["task"])
    pts, masks = [], []

    def add(p: torch.Tensor, m: torch.Tensor) -> None:
        pts.append(p)
        masks.append(m)

    add(b["goal"], ~is_["wipe"])
    add(b["aux"], is_["via_point"] | is_["dwell_slow"])
    add(b["disk"], is_["push"] | is_["pick_place"])
    # push: the approach point behind the disk and the end-effector's final push point
    contact = (pw["disk_r"] + EE_RADIUS)[:, None]
    u = _unit(b["goal"] - b["disk"])
    add(b["disk"] - u * (contact + 0.03), is_["push"])
    add(b["goal"] - u * contact, is_["push"])
    # reach around: the detour points on both sides
    ua = _unit(b["goal"] - b["start_ee"])
    n = _perp(ua)
    c = (b["aux_r"] + 0.05)[:, None]
    for sgn in (-1.0, 1.0):
        for a in RING_ANGLES:
            add(b["aux"] + c * (math.cos(a) * ua + sgn * math.sin(a) * n), is_["reach_around"])
    cells = wipe_cells(b["goal"], b["half"])
    for k in range(9):
        add(cells[:, k], is_["wipe"])
    return torch.stack(pts, 1), torch.stack(masks, 1).view(S, -1)


def _rollout(engine: ArmEngine, policy, episodes: int) -> tuple[float, float]:
    """Mean return and success rate of the first episode of each env."""
    B = engine.num_envs
    ret = torch.zeros(B)
    done = torch.zeros(B, dtype=torch.bool)
    succ = torch.zeros(B, dtype=torch.bool)
    with torch.no_grad():
        for _ in range(max(w.max_steps for w in engine.worlds)):
            _, r, term, trunc, info = engine.step(policy())
            ret = ret + torch.where(done, 0.0, r)
            ended = ~done & (term | trunc)
            succ = succ | (ended & info["success"])
            done = done | ended
            if bool(done.all()):
                break
    return float(ret[:episodes].mean()), float(succ[:episodes].float().mean())


def validate_arm_spec(spec: ArmWorldSpec, episodes: int = 64, seed: int = 0) -> ArmValidationReport:
    """Validate an arm world (see the module docstring); never raises on a bad world, the
    report's ``errors`` say what failed and what to change."""
    errors: list[str] = []
    arm = spec.arm
    r_min, r_max = workspace_radii(arm)
    stages = []
    try:
        for split in ("train", "shifted"):
            eng = ArmEngine(spec, num_envs=1, seed=seed, split=split)
            pts, mask = target_points(eng)
            flat = pts.reshape(-1, 2)[mask.reshape(-1)]
            ok = reachable(arm, flat, margin=0.0) & (flat.norm(dim=1) <= r_max - REACH_MARGIN)
            bad = int((~ok).sum())
            stages.append(ReachabilityStage(split=split, scenes=eng.bank_size,
                                            points=int(flat.shape[0]), unreachable=bad))
            if bad:
                errors.append(f"{split} scenes: {bad} of {flat.shape[0]} targets lie outside "
                              f"the reach of {arm.name} (r in [{r_min:.3f}, "
                              f"{r_max - REACH_MARGIN:.3f}]); narrow scene.radius_lo/radius_hi")
    except AutoworldError as e:
        return ArmValidationReport(name=spec.name, ok=False, errors=[f"build: {e}"],
                                   r_min=r_min, r_max=r_max)
    eng = ArmEngine(spec, num_envs=episodes, seed=seed)
    expert = ScriptedExpert(eng, None, seed=seed)
    oracle, success = _rollout(eng, expert.act, episodes)
    eng = ArmEngine(spec, num_envs=episodes, seed=seed)
    g = torch.Generator().manual_seed(seed)
    cols = eng.action_dim + (1 if eng.interface == "joint_velocity" else 0)
    rand, _ = _rollout(eng, lambda: torch.rand(episodes, cols, generator=g) * 2 - 1, episodes)
    if success < MIN_EXPERT_SUCCESS:
        errors.append(f"the scripted expert solves only {success:.0%} of episodes (needs "
                      f"{MIN_EXPERT_SUCCESS:.0%}); raise max_steps or ease the scene")
    if oracle <= rand:
        errors.append(f"the expert's return {oracle:.3f} does not beat random ({rand:.3f})")
    return ArmValidationReport(name=spec.name, ok=not errors, errors=errors, r_min=r_min,
                               r_max=r_max, reachability=stages, episodes=episodes,
                               oracle_return=oracle, oracle_is_exact=False,
                               expert_success=success, random_return=rand)
