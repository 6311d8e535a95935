"""Scripted experts of the arm family: an end-effector path planner tracked through IK.

The expert plans, per env and per step, the next end-effector target of its task (goal, via
point, disk approach and push line, pick-up and drop, a detour around the obstacle on a chosen
side, a boustrophedon over the wipe region, pour point / hold / slow carry) and commands a step
towards it. Its speed comes from an ``Operator``: a speed scale for the whole demonstration,
smooth in-episode speed jitter and random short pauses. All operators share the path
distribution; only the rate along the path differs ("action-rate multimodality"). A
task-required slow phase (``dwell_slow``'s carry) runs at the task's speed for every operator.

Randomness (operator, side, jitter phase, pauses) is counter-based on (seed, env, episode, step).

Example:
    >>> from autoworld.envs.arm.engine import ArmEngine
    >>> from autoworld.envs.arm.spec import arm_world
    >>> eng = ArmEngine(arm_world("reach", "arm3"), num_envs=8, seed=0)
    >>> expert = ScriptedExpert(eng, standard_operators(), seed=0)
    >>> obs, reward, terminated, truncated, info = eng.step(expert.act(eng.observe()))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from autoworld.envs.arm.engine import EE_RADIUS, ArmEngine
from autoworld.envs.arm.kinematics import ik_step
from autoworld.envs.arm.scene import wipe_cells
from autoworld.errors import EngineError
from autoworld.rng import MASK32, derive_seed, hash32, uniform

NOMINAL_SPEED = 0.55  # end-effector step of a speed-1.0 operator, as a fraction of max_ee_step
SLOW_MARGIN = 0.7  # the slow phase runs at this fraction of the task's slow_speed
WAYPOINT_TOL = 0.02  # a waypoint counts as passed within this distance (m)
RING_ANGLES = (3 * math.pi / 4, math.pi / 2, math.pi / 4)  # detour points around the obstacle
WIPE_ORDER = (0, 2, 5, 3, 6, 8)  # boustrophedon over the 3x3 cells (row 0 first)
SIDES = ("random", "left", "right")
CARROT = 0.1  # look-ahead of the arc path round the base (m)


@dataclass(frozen=True)
class Operator:
    """A synthetic demonstrator.

    Args:
        name: operator name.
        speed: speed scale of the whole demonstration (1.0: nominal).
        jitter: relative amplitude of a smooth in-episode speed oscillation.
        pause_prob: chance per step of starting a pause of 3 to 8 steps.
    """

    name: str
    speed: float
    jitter: float = 0.0
    pause_prob: float = 0.0

    def __post_init__(self) -> None:
        if not 0.1 <= self.speed <= 1.0 / NOMINAL_SPEED:
            raise EngineError(f"operator {self.name!r}: speed must lie in [0.1, "
                              f"{1.0 / NOMINAL_SPEED:.2f}] (got {self.speed})")
        if not 0.0 <= self.jitter <= 0.8 or not 0.0 <= self.pause_prob <= 0.2:
            raise EngineError(f"operator {self.name!r}: jitter must lie in [0, 0.8] and "
                              "pause_prob in [0, 0.2]")


def standard_operators() -> list[Operator]:
    """Three operators with speeds 0.6, 1.0 and 1.6, mild jitter and rare pauses.

    Example:
        >>> [o.speed for o in standard_operators()]
        [0.6, 1.0, 1.6]
    """
    return [Operator("slow", 0.6, 0.15, 0.01), Operator("steady", 1.0, 0.15, 0.01),
            Operator("fast", 1.6, 0.15, 0.01)]


def _perp(v: torch.Tensor) -> torch.Tensor:
    return torch.stack((-v[:, 1], v[:, 0]), 1)


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=1, keepdim=True).clamp(min=1e-6)


def _seg_dist(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance (B,) from points p to segments a-b."""
    ab = b - a
    t = ((p - a) * ab).sum(1) / (ab * ab).sum(1).clamp(min=1e-9)
    return (a + ab * t.clamp(0, 1)[:, None] - p).norm(dim=1)


class ScriptedExpert:
    """Batched scripted expert for every env of an ``ArmEngine`` (any task, any embodiment).

    Args:
        engine: the engine it acts in (it reads the engine's state: scene, disk, phases).
        operators: operators to draw from, one per episode uniformly (default: one nominal
            operator without jitter or pauses).
        seed: root seed of the expert's draws.
        side: ``reach_around`` detour: ``"random"`` (per episode), ``"left"`` or ``"right"``
            of the start-to-goal direction.

    Per-episode metadata (read after ``act``): ``operator`` (B,) long index,
    ``speed`` (B,) float, ``side`` (B,) long (-1 left, +1 right, 0 for other tasks).
    """

    def __init__(self, engine: ArmEngine, operators: Sequence[Operator] | None = None,
                 seed: int = 0, side: str = "random") -> None:
        if side not in SIDES:
            raise EngineError(f"side must be one of {SIDES} (got {side!r})")
        self.engine = engine
        self.operators = list(operators) if operators else [Operator("nominal", 1.0)]
        self.side_mode = side
        dev, B = engine.device, engine.num_envs
        self._op_speed = torch.tensor([o.speed for o in self.operators], device=dev)
        self._op_jitter = torch.tensor([o.jitter for o in self.operators], device=dev)
        self._op_pause = torch.tensor([o.pause_prob for o in self.operators], device=dev)
        base = derive_seed(seed, "arm-expert") & MASK32
        self._key = hash32(hash32(torch.arange(B, device=dev) * 0x9E3779B9 + 3) ^ base)
        self.operator = torch.zeros(B, dtype=torch.long, device=dev)
        self.speed = torch.ones(B, device=dev)
        self.side = torch.zeros(B, dtype=torch.long, device=dev)
        self._phase = torch.zeros(B, device=dev)
        self._freq = torch.zeros(B, device=dev)
        self._pause = torch.zeros(B, dtype=torch.long, device=dev)
        self._wp = torch.zeros(B, dtype=torch.long, device=dev)
        self.uses_grip_column = (engine.interface == "joint_velocity"
                                 and "pick_place" in engine.tasks_present)

    # ------------------------------------------------------------------ per-episode draws
    def _start_episodes(self, new: torch.Tensor) -> None:
        s = self.engine.state
        tick = s.ep * 4096
        k = self._key
        n_ops = len(self.operators)
        op = (uniform(k, tick, 1) * n_ops).long().clamp(max=n_ops - 1)
        if self.side_mode == "random":
            side = torch.where(uniform(k, tick, 2) < 0.5, -1, 1)
        else:
            side = torch.full_like(op, -1 if self.side_mode == "left" else 1)
        side = torch.where(self.engine.is_task["reach_around"], side, 0)
        self.operator = torch.where(new, op, self.operator)
        self.speed = torch.where(new, self._op_speed[op], self.speed)
        self.side = torch.where(new, side, self.side)
        self._phase = torch.where(new, 2 * math.pi * uniform(k, tick, 3), self._phase)
        self._freq = torch.where(new, 0.02 + 0.04 * uniform(k, tick, 4), self._freq)
        self._pause = torch.where(new, 0, self._pause)
        self._wp = torch.where(new, 0, self._wp)

    # ------------------------------------------------------------------ targets
    def _target(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per env: target point (B, 2), grip (B,) bool, hold still (B,) bool, task-fixed speed
        (B,) (0 where the operator sets the speed)."""
        eng, s, p, is_ = self.engine, self.engine.state, self.engine.p, self.engine.is_task
        ee = s.pts[:, -1]
        B = eng.num_envs
        target = s.goal.clone()
        grip = torch.zeros(B, dtype=torch.bool, device=eng.device)
        hold = torch.zeros_like(grip)
        fixed = torch.zeros(B, device=eng.device)
        if "via_point" in eng.tasks_present:
            target = torch.where((is_["via_point"] & ~s.via_done)[:, None], s.aux, target)
        if "pick_place" in eng.tasks_present:
            pick = is_["pick_place"]
            target = torch.where((pick & ~s.held)[:, None], s.disk, target)
            at_goal = (ee - s.goal).norm(dim=1) < 0.4 * p["goal_r"]
            grip = grip | (pick & ~(s.held & at_goal))
        if "push" in eng.tasks_present:
            target = torch.where(is_["push"][:, None], self._push_target(ee), target)
        if "reach_around" in eng.tasks_present:
            target = torch.where(is_["reach_around"][:, None], self._around_target(ee), target)
        if "wipe" in eng.tasks_present:
            target = torch.where(is_["wipe"][:, None], self._wipe_target(ee), target)
        if "dwell_slow" in eng.tasks_present:
            dwell = is_["dwell_slow"]
            target = torch.where((dwell & (s.phase < 2))[:, None], s.aux, target)
            hold = dwell & (s.phase == 1)
            fixed = torch.where(dwell & (s.phase == 2), SLOW_MARGIN * p["slow"], fixed)
        return target, grip, hold, fixed

    def _push_target(self, ee: torch.Tensor) -> torch.Tensor:
        s, p = self.engine.state, self.engine.p
        contact = (p["disk_r"] + EE_RADIUS)[:, None]
        u = _unit(s.goal - s.disk)
        n = _perp(u)
        e = ee - s.disk
        along = -(e * u).sum(1)  # > 0 behind the disk
        lateral = (e * n).sum(1)
        aligned = (along > contact[:, 0] - 0.015) & (along < contact[:, 0] + 0.05) \
            & (lateral.abs() < 0.015)
        push_to = s.goal - u * contact
        behind = s.disk - u * (contact + 0.03)
        # go round the disk (on the side the end-effector is on) when the way behind it is
        # blocked by the disk itself
        sgn = torch.where(lateral >= 0, 1.0, -1.0)[:, None]
        side_pt = s.disk + n * sgn * (contact + 0.04) - u * 0.02
        blocked = _seg_dist(s.disk, ee, behind) < contact[:, 0] + 0.01
        approach = torch.where(blocked[:, None], side_pt, behind)
        return torch.where(aligned[:, None], push_to, approach)

    def _around_target(self, ee: torch.Tensor) -> torch.Tensor:
        s = self.engine.state
        u = _unit(s.goal - s.start_ee)
        n = _perp(u) * (-self.side).float()[:, None]  # left (-1) is counter-clockwise of u
        c = (s.aux_r + 0.05)[:, None]
        pts = [s.aux + c * (math.cos(a) * u + math.sin(a) * n) for a in RING_ANGLES]
        pts.append(s.goal)
        wps = torch.stack(pts, 1)  # (B, 4, 2)
        return self._follow(wps, ee, self.engine.is_task["reach_around"])

    def _wipe_target(self, ee: torch.Tensor) -> torch.Tensor:
        s = self.engine.state
        cells = wipe_cells(s.goal, s.half)[:, list(WIPE_ORDER)]  # (B, 6, 2)
        return self._follow(cells, ee, self.engine.is_task["wipe"])

    def _follow(self, wps: torch.Tensor, ee: torch.Tensor, mine: torch.Tensor) -> torch.Tensor:
        """The current waypoint of a sequence (B, K, 2); advances ``_wp`` where reached."""
        K = wps.shape[1]
        idx = self._wp.clamp(max=K - 1)
        cur = wps.gather(1, idx[:, None, None].expand(-1, 1, 2))[:, 0]
        reached = mine & ((ee - cur).norm(dim=1) < WAYPOINT_TOL) & (self._wp < K - 1)
        self._wp = self._wp + reached.long()
        idx = self._wp.clamp(max=K - 1)
        return wps.gather(1, idx[:, None, None].expand(-1, 1, 2))[:, 0]

    def _keep_in_workspace(self, ee: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Where the straight way to ``target`` dips inside the scene's inner radius, aim at a
        carrot on the polar (radius, angle) interpolation instead: an arc round the base."""
        p = self.engine.p
        inner = p["radius_lo"] - 0.03
        dips = _seg_dist(torch.zeros_like(ee), ee, target) < inner
        r0, a0 = ee.norm(dim=1), torch.atan2(ee[:, 1], ee[:, 0])
        r1, a1 = target.norm(dim=1), torch.atan2(target[:, 1], target[:, 0])
        arc = ((r1 - r0).square() + (r0 * (a1 - a0)).square()).sqrt().clamp(min=1e-6)
        f = (CARROT / arc).clamp(max=1.0)
        r, a = r0 + (r1 - r0) * f, a0 + (a1 - a0) * f
        carrot = torch.stack((r * a.cos(), r * a.sin()), 1)
        return torch.where(dips[:, None], carrot, target)

    # ------------------------------------------------------------------ act
    def act(self, obs: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The action for the engine's current state: (B, 3) for ``ee_delta``; (B, N_MAX) for
        ``joint_velocity`` ((B, N_MAX + 1) with a grip column when a world needs the magnet).
        ``obs`` is accepted for the policy-like signature; the expert reads the engine."""
        eng, s, p = self.engine, self.engine.state, self.engine.p
        self._start_episodes(s.t == 0)
        ee = s.pts[:, -1]
        target, grip, hold, fixed = self._target()
        k, tick = self._key, s.ep * 4096 + s.t + 16
        # operator speed: scale x smooth jitter, with pauses
        jit = self._op_jitter[self.operator]
        wave = 1.0 + jit * torch.sin(self._phase + 2 * math.pi * self._freq * s.t.float())
        start_pause = (self._pause == 0) & (uniform(k, tick, 5) < self._op_pause[self.operator])
        length = 3 + (uniform(k, tick, 6) * 6).long()
        self._pause = torch.where(start_pause, length, (self._pause - 1).clamp(min=0))
        v = NOMINAL_SPEED * p["max_ee_step"] * self.speed * wave
        v = torch.where(self._pause > 0, 0.0, v)
        v = torch.where(fixed > 0, fixed, v)  # task-required speed: the same for everyone
        v = torch.where(hold, 0.0, v)
        target = self._keep_in_workspace(ee, target)
        delta = target - ee
        dist = delta.norm(dim=1, keepdim=True).clamp(min=1e-9)
        step = torch.minimum(dist, v[:, None])
        dxy = (delta / dist * step / p["max_ee_step"][:, None]).clamp(-1.0, 1.0)  # (B, 2)
        self.last_ee_action = torch.cat((dxy, torch.where(grip, 1.0, -1.0)[:, None]), 1)
        if eng.interface == "ee_delta":
            return self.last_ee_action.clone()
        dq = ik_step(s.pts, s.q, p["lo"], p["hi"], dxy * p["max_ee_step"][:, None],
                     p["damping"]) * eng.joint_mask
        a = (dq / p["vel"]).clamp(-1.0, 1.0) * eng.joint_mask
        if self.uses_grip_column:
            a = torch.cat((a, self.last_ee_action[:, 2:]), 1)
        return a


