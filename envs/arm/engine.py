"""The batched engine of the arm family: N planar arms stepped by one tensor program.

Heterogeneous batches (different tasks and embodiments) share one program: per-joint tensors
are padded to ``N_MAX`` with a mask, every task's rule runs on every env and its effect is
selected by the env's task. Shapes are static and a step never synchronises with the host;
episodes that end are reset in the same step (``info["final_obs"]`` holds their final
observation). Randomness is counter-based (``autoworld.rng``): a run is a pure function of the
seed.

Example:
    >>> from autoworld.envs.arm.spec import arm_world
    >>> eng = ArmEngine([arm_world("reach", "arm2"), arm_world("push", "arm7")], num_envs=4)
    >>> obs = eng.reset(seed=0)
    >>> tuple(obs["joint_state"].shape), tuple(obs["task"].shape)
    ((4, 7, 3), (4, 16))
    >>> obs, reward, terminated, truncated, info = eng.step(torch.zeros(4, 3))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch

from autoworld.envs.arm import scene as scene_mod
from autoworld.envs.arm.embodiment import N_MAX
from autoworld.envs.arm.kinematics import (
    forward_kinematics,
    ik_step,
    jacobian_from_points,
    padded,
)
from autoworld.envs.arm.spec import TASKS, ArmWorldSpec
from autoworld.errors import EngineError
from autoworld.rng import MASK32, derive_seed, hash32, randint

TASK_DIM = 16  # fixed width of the task-feature vector (zero padded)
NUM_TASKS = len(TASKS)
T = {t: i for i, t in enumerate(TASKS)}
EE_RADIUS = 0.02  # contact radius of the end-effector (pushing)
SPLITS = ("train", "shifted")
DEFAULT_BANK = 4096  # scenes per world and split (ids 0..DEFAULT_BANK-1)
BANK_CACHE_SIZE = 256  # scene banks kept per process (read-only once built)
_BANK_CACHE: dict[tuple, dict[str, torch.Tensor]] = {}
_FRESH = ("dq", "magnet", "held", "via_done", "phase", "count", "cover", "t")  # zero at reset
SPILL_TOLERANCE = 1.1  # the slow phase allows 10% over slow_speed (IK tracking error)


@dataclass
class ArmState:
    """The batched state (leading dim B)."""

    q: torch.Tensor  # (B, N_MAX) joint angles
    pts: torch.Tensor  # (B, N_MAX+1, 2) joint points of q (cached forward kinematics)
    dq: torch.Tensor  # (B, N_MAX) last executed joint step
    magnet: torch.Tensor  # (B,) bool
    goal: torch.Tensor  # (B, 2) goal (wipe: region centre)
    aux: torch.Tensor  # (B, 2) via point / obstacle centre / pour point
    aux_r: torch.Tensor  # (B,) obstacle radius
    half: torch.Tensor  # (B,) wipe region half side
    disk: torch.Tensor  # (B, 2)
    held: torch.Tensor  # (B,) bool
    via_done: torch.Tensor  # (B,) bool
    phase: torch.Tensor  # (B,) long, dwell task: 0 reach pour point, 1 hold, 2 slow carry
    count: torch.Tensor  # (B,) long, dwell steps held
    cover: torch.Tensor  # (B, 9) bool wiped cells
    distract: torch.Tensor  # (B, D_MAX, 2)
    n_distract: torch.Tensor  # (B,) long
    start_ee: torch.Tensor  # (B, 2) end-effector at the episode's start
    phi: torch.Tensor  # (B,) shaping potential
    t: torch.Tensor  # (B,) long step in episode
    ep: torch.Tensor  # (B,) long episodes started
    key: torch.Tensor  # (B,) long per-env random key
    scene_key: torch.Tensor  # (B,) long key of the current scene (its id)

    def clone(self) -> ArmState:
        return ArmState(**{f.name: getattr(self, f.name).clone() for f in fields(self)})


def _task_masks(task: torch.Tensor) -> dict[str, torch.Tensor]:
    return {t: task == i for i, t in enumerate(TASKS)}


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.view(-1, *([1] * (a.dim() - 1))), a, b)


class ArmEngine:
    """Batched arm worlds (see the module docstring).

    Args:
        worlds: one spec or several (a heterogeneous batch; one action interface for all).
        num_envs: batch size B.
        device: torch device.
        seed: root seed (env i derives its stream from (seed, i)).
        world_ids: which world each env runs (default round-robin).
        split: ``"train"`` scenes or ``"shifted"`` (held-out scene shifts).
        obs_velocity: ablation only: add ``joint_vel`` (B, N_MAX), the last joint step over the
            velocity limit, to the observation (it reveals the operator's speed).
        num_scenes: scenes per world and split in the scene bank (default 4096). Each
            episode draws its scene from the bank; a scene's id (0..num_scenes-1) names the
            same scene for every seed and engine, so small pools give scenario-limited data.
        compile: run the step through ``torch.compile`` (fuses the elementwise work; the
            first steps compile for a minute or so). Results are the same up to float
            rounding.
    """

    def __init__(self, worlds: ArmWorldSpec | Sequence[ArmWorldSpec], num_envs: int = 1,
                 device: str | torch.device = "cpu", seed: int = 0,
                 world_ids: Sequence[int] | None = None, split: str = "train",
                 obs_velocity: bool = False, num_scenes: int | None = None,
                 compile: bool = False) -> None:
        self.worlds = [worlds] if isinstance(worlds, ArmWorldSpec) else list(worlds)
        if not self.worlds:
            raise EngineError("worlds must hold at least one ArmWorldSpec")
        if any(not isinstance(w, ArmWorldSpec) for w in self.worlds):
            raise EngineError("worlds must be ArmWorldSpec objects (see arm_world())")
        interfaces = {w.interface for w in self.worlds}
        if len(interfaces) != 1:
            raise EngineError(f"every world in one engine must use the same action interface "
                              f"(got {sorted(interfaces)}); build one engine per interface")
        self.interface = interfaces.pop()
        if split not in SPLITS:
            raise EngineError(f"split must be one of {SPLITS} (got {split!r})")
        if int(num_envs) < 1:
            raise EngineError(f"num_envs must be >= 1 (got {num_envs})")
        if num_scenes is not None and int(num_scenes) < 1:
            raise EngineError(f"num_scenes must be >= 1 or None (got {num_scenes})")
        self.num_envs = B = int(num_envs)
        self.device = torch.device(device)
        self.split = split
        self.obs_velocity = bool(obs_velocity)
        self.num_scenes = None if num_scenes is None else int(num_scenes)
        self.bank_size = DEFAULT_BANK if num_scenes is None else int(num_scenes)
        self.action_dim = 3 if self.interface == "ee_delta" else N_MAX
        W = len(self.worlds)
        if world_ids is None:
            ids = torch.arange(B) % W
        else:
            ids = torch.as_tensor(list(world_ids), dtype=torch.long)
            if ids.shape != (B,) or int(ids.min()) < 0 or int(ids.max()) >= W:
                raise EngineError(f"world_ids must be {B} ints in 0..{W - 1}")
        self.world_ids = ids.to(self.device)
        self.tasks_present = {w.task for w in self.worlds}
        self._build_tables()
        self._build_bank()
        self._step_fn = torch.compile(self._step_impl) if compile else self._step_impl
        self.seed = int(seed)
        self.state = self._fresh_state()
        self.reset(seed=self.seed)

    # ------------------------------------------------------------------ construction
    def _build_tables(self) -> None:
        from autoworld.envs.arm.components import COMPONENTS

        rows: dict[str, list] = {}

        def put(k, v):
            rows.setdefault(k, []).append(v)

        self.arms = [w.arm for w in self.worlds]
        for w, arm in zip(self.worlds, self.arms, strict=True):
            links, lo, hi, vel = padded(arm)
            mask = arm.joint_mask()
            home = arm.home_pose()
            ee = forward_kinematics(home[None], links[None])[0, -1]
            home[0] = -math.atan2(float(ee[1]), float(ee[0]))  # ee points along +x
            comp = {k: (w.component(k) or c()) for k, c in COMPONENTS.items()}
            for k, v in {
                "task": T[w.task], "links": links, "lo": lo, "hi": hi,
                "vel": torch.where(mask, vel, torch.ones_like(vel)), "mask": mask,
                "home": home, "desc": arm.joint_desc(), "gripper": arm.gripper,
                "max_steps": w.max_steps, "max_ee_step": w.max_ee_step,
                "damping": w.ik_damping, "bonus": w.success_bonus, "shaping": w.shaping,
                "radius_lo": w.scene.radius_lo, "radius_hi": w.scene.radius_hi,
                "sector": w.scene.sector, "shift_sector": w.scene.shift_sector,
                "shift_scale": w.scene.shift_scale, "jitter": w.scene.home_jitter,
                "goal_r": comp["goal"].radius, "via_r": comp["via_point"].radius,
                "disk_r": comp["disk"].radius, "grab_r": comp["disk"].grab_radius,
                "obst_lo": comp["obstacle"].radius_lo, "obst_hi": comp["obstacle"].radius_hi,
                "penalty": comp["obstacle"].penalty, "half_lo": comp["wipe_region"].half_lo,
                "half_hi": comp["wipe_region"].half_hi, "brush": comp["wipe_region"].brush,
                "dwell_r": comp["dwell"].radius, "dwell_steps": comp["dwell"].steps,
                "slow": comp["dwell"].slow_speed,
                "distractors": (w.component("distractors").count
                                if w.component("distractors") else 0),
                "salt": int(w.content_hash()[:8], 16),
            }.items():
                put(k, v)
        ids = self.world_ids
        dev = self.device
        self.pw: dict[str, torch.Tensor] = {}  # per world (W, ...)
        for k, vals in rows.items():
            if isinstance(vals[0], torch.Tensor):
                t = torch.stack(vals)
            elif isinstance(vals[0], bool):
                t = torch.tensor(vals, dtype=torch.bool)
            elif isinstance(vals[0], int) and k in ("task", "max_steps", "dwell_steps",
                                                    "distractors", "salt"):
                t = torch.tensor(vals, dtype=torch.long)
            else:
                t = torch.tensor(vals, dtype=torch.float32)
            self.pw[k] = t.to(dev)
        self.p = {k: v[ids] for k, v in self.pw.items()}  # per env (B, ...)
        p = self.p
        self.is_task = _task_masks(p["task"])  # (B,) bool each
        self.is_disk_task = self.is_task["push"] | self.is_task["pick_place"]
        self._ctx = self._obs_context(p)
        self.joint_desc = p["desc"]  # (B, N_MAX, JOINT_DESC_DIM)
        self.joint_mask = p["mask"]  # (B, N_MAX) bool

    def _fresh_state(self) -> ArmState:
        B, dev = self.num_envs, self.device
        z2 = torch.zeros(B, 2, device=dev)
        zb = torch.zeros(B, dtype=torch.bool, device=dev)
        zl = torch.zeros(B, dtype=torch.long, device=dev)
        zf = torch.zeros(B, device=dev)
        q = torch.zeros(B, N_MAX, device=dev)
        return ArmState(q=q, pts=self.forward_kinematics(q), dq=q.clone(), magnet=zb,
                        goal=z2, aux=z2, aux_r=zf, half=zf, disk=z2, held=zb, via_done=zb,
                        phase=zl, count=zl,
                        cover=torch.zeros(B, 9, dtype=torch.bool, device=dev),
                        distract=torch.zeros(B, scene_mod.D_MAX, 2, device=dev),
                        n_distract=zl, start_ee=z2, phi=zf, t=zl, ep=zl, key=zl, scene_key=zl)

    # ------------------------------------------------------------------ kinematics
    def forward_kinematics(self, q: torch.Tensor) -> torch.Tensor:
        """Joint points ``(B, N_MAX+1, 2)`` of configurations ``q`` (B, N_MAX) of each env's
        arm; point 0 is the base, the last the end-effector."""
        return forward_kinematics(q, self.p["links"])

    def jacobian(self, q: torch.Tensor) -> torch.Tensor:
        """End-effector Jacobian ``(B, 2, N_MAX)`` of each env's arm (zero padded columns)."""
        return jacobian_from_points(self.forward_kinematics(q))

    # ------------------------------------------------------------------ scene bank
    def _build_bank(self) -> None:
        """Every world's scene bank (S scenes per world and split), generated once per process
        (banks are cached by world content, split, size and device): a reset then only gathers
        a scene, which keeps the same-step autoreset cheap."""
        banks = [self._world_bank(w) for w in range(len(self.worlds))]
        self.bank = {k: torch.cat([b[k] for b in banks]) if len(banks) > 1 else banks[0][k]
                     for k in banks[0]}
        self._bank_offset = self.world_ids * self.bank_size  # (B,)
        # one packed float table: a reset gathers every field with a single index_select
        self._layout: list[tuple[str, int, int, tuple[int, ...], torch.dtype]] = []
        cols, start = [], 0
        for k, v in self.bank.items():
            flat = v.reshape(v.shape[0], -1)
            self._layout.append((k, start, start + flat.shape[1], tuple(v.shape[1:]), v.dtype))
            cols.append(flat.to(torch.float32))
            start += flat.shape[1]
        self._packed = torch.cat(cols, 1)  # (W*S, F) float32

    def _world_bank(self, w: int) -> dict[str, torch.Tensor]:
        key = (self.worlds[w].content_hash(), self.split, self.bank_size, str(self.device))
        if key in _BANK_CACHE:
            return _BANK_CACHE[key]
        S = self.bank_size
        pw = {k: v[w].expand(S, *v.shape[1:]) for k, v in self.pw.items()}  # views
        table = scene_mod.WorldTable(**{f.name: pw[f.name] for f in fields(scene_mod.WorldTable)})
        split_salt = 0x51F7 if self.split == "shifted" else 0
        index = torch.arange(S, device=self.device)
        keys = hash32(pw["salt"] ^ hash32(index * 0x9E3779B9 + split_salt + 7))

        def fk(q):
            return forward_kinematics(q, pw["links"])

        sc = scene_mod.generate(table, keys, self.split == "shifted", fk)
        is_ = _task_masks(pw["task"])
        disk_task = is_["push"] | is_["pick_place"]
        uses_aux = is_["via_point"] | is_["reach_around"] | is_["dwell_slow"]
        zero2 = torch.zeros_like(sc["aux"])
        pts = fk(sc["q"])
        bank = dict(q=sc["q"], pts=pts, goal=sc["goal"],
                    aux=torch.where(uses_aux[:, None], sc["aux"], zero2),
                    aux_r=sc["aux_r"], half=sc["half"],
                    disk=torch.where(disk_task[:, None], sc["aux"], zero2),
                    distract=sc["distract"], n_distract=sc["n_distract"], start_ee=pts[:, -1])
        zb = torch.zeros(S, dtype=torch.bool, device=self.device)
        zl = torch.zeros(S, dtype=torch.long, device=self.device)
        tmp = ArmState(**bank, dq=torch.zeros_like(sc["q"]), magnet=zb, held=zb, via_done=zb,
                       phase=zl, count=zl, cover=torch.zeros(S, 9, dtype=torch.bool,
                                                             device=self.device),
                       phi=torch.zeros(S, device=self.device), t=zl, ep=zl, key=zl,
                       scene_key=index)
        bank["phi"] = self._potential(tmp, is_, pw, {self.worlds[w].task})
        bank["scene_key"] = index
        js, ee, task = self._observe_parts(tmp, self._obs_context(pw))
        bank.update({"obs_joint_state": js, "obs_ee": ee, "obs_task": task})
        bank = {k: v.contiguous() for k, v in bank.items()}
        if len(_BANK_CACHE) >= BANK_CACHE_SIZE:
            _BANK_CACHE.pop(next(iter(_BANK_CACHE)))
        _BANK_CACHE[key] = bank
        return bank

    def _new_episode(self, s: ArmState, mask: torch.Tensor | None) -> None:
        """Draw the next scene of each env's stream from its world's bank and merge it into
        ``s`` where ``mask`` (all envs when None)."""
        idx = self._bank_offset + randint(s.key, s.ep, 0xC0FFEE, self.bank_size)  # (B,)
        rows = self._packed.index_select(0, idx)  # (B, F)
        first_obs = {}
        for k, a, b, shape, dtype in self._layout:
            new = rows[:, a:b].view(-1, *shape)
            if dtype != torch.float32:
                new = new.to(dtype)
            if k.startswith("obs_"):
                first_obs[k[4:]] = new
                continue
            setattr(s, k, new if mask is None else _where(mask, new, getattr(s, k)))
        self._first_obs = first_obs  # observation of the fresh episodes (B rows)
        if mask is None:
            for k in _FRESH:
                setattr(s, k, torch.zeros_like(getattr(s, k)))
        else:
            for k in _FRESH:
                cur = getattr(s, k)
                setattr(s, k, torch.where(mask.view(-1, *([1] * (cur.dim() - 1))),
                                          torch.zeros((), dtype=cur.dtype, device=cur.device),
                                          cur))

    def reset(self, seed: int | None = None,
              mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Start new episodes (all envs, or those in ``mask`` (B,) bool) and return the
        observation. ``seed`` re-derives every env's key from (seed, env index); without it
        the next scene of each env's stream is drawn."""
        s = self.state
        if seed is not None:
            self.seed = int(seed)
            base = derive_seed(self.seed, "arm-engine") & MASK32
            idx = torch.arange(self.num_envs, device=self.device)
            s.key = hash32(hash32(idx * 0x9E3779B9 + 1) ^ base)
            s.ep = torch.zeros_like(s.ep)
            mask = None
        else:
            s.ep = s.ep + (1 if mask is None else mask.long())
        self._new_episode(s, mask)
        return self.observe(s)

    # ------------------------------------------------------------------ observation
    def observe(self, s: ArmState | None = None) -> dict[str, torch.Tensor]:
        """The observation dict of state ``s`` (default: the current state)."""
        s = self.state if s is None else s
        joint_state, ee, task = self._observe_parts(s, self._ctx)
        obs = {"joint_state": joint_state, "joint_desc": self.joint_desc,
               "joint_mask": self.joint_mask, "ee": ee, "task": task}
        if self.obs_velocity:
            obs["joint_vel"] = s.dq / self.p["vel"]
        return obs

    def _obs_context(self, p: dict[str, torch.Tensor]) -> dict:
        """Per-row constants the observation needs (per env, or per bank scene)."""
        is_ = _task_masks(p["task"])
        rng = (p["hi"] - p["lo"]).clamp(min=1e-6)
        mask = p["mask"]
        return {
            "lo": p["lo"], "mask": mask, "maskf": mask.float(),
            "qscale": torch.where(mask, 2.0 / rng, torch.zeros_like(rng)),
            "onehot": torch.nn.functional.one_hot(p["task"], NUM_TASKS).float(),
            "disk": (is_["push"] | is_["pick_place"])[:, None],
            "around": is_["reach_around"], "wipe": is_["wipe"],
            "slow_ratio": torch.where(is_["dwell_slow"], p["slow"] / p["max_ee_step"],
                                      torch.zeros_like(p["slow"])),
            "goal_r": p["goal_r"], "dwell_steps": p["dwell_steps"].float(),
        }

    def _observe_parts(self, s: ArmState, c: dict) -> tuple[torch.Tensor, ...]:
        """joint_state (R, N_MAX, 3), ee (R, 3) and task features (R, TASK_DIM).

        Task features: one-hot task (7), goal xy, aux xy (via point, disk, obstacle centre or
        pour point), size (obstacle radius, wipe half side or goal radius), then flags: via
        reached / disk held / dwell progress / wiped fraction; slow phase / wiped fraction of
        row 0; slow speed over max ee step / row 1; row 2."""
        m = c["maskf"]
        qn = ((s.q - c["lo"]) * c["qscale"] - 1.0) * m
        joint_state = torch.stack((s.q.sin() * m, s.q.cos() * m, qn), -1)
        ee = torch.cat((s.pts[:, -1], s.magnet.float()[:, None]), 1)
        cov = s.cover.float()
        rows = cov.view(-1, 3, 3).mean(2)
        prog = torch.where(s.phase >= 2, 1.0, s.count.float() / c["dwell_steps"]) \
            * (s.phase >= 1)
        aux = torch.where(c["disk"], s.disk, s.aux)
        size = torch.where(c["around"], s.aux_r, torch.where(c["wipe"], s.half, c["goal_r"]))
        f_a = s.via_done.float() + s.held.float() + prog + rows.mean(1)
        f_b = (s.phase == 2).float() + rows[:, 0]
        task = torch.cat((c["onehot"], s.goal, aux, size[:, None], f_a[:, None], f_b[:, None],
                          (c["slow_ratio"] + rows[:, 1])[:, None], rows[:, 2:3]), 1)
        return joint_state, ee, task

    def observation_spec(self) -> dict[str, tuple[tuple[int, ...], torch.dtype, float, float]]:
        """Per-env (shape, dtype, low, high) of each observation key."""
        from autoworld.envs.arm.embodiment import JOINT_DESC_DIM

        spec = {"joint_state": ((N_MAX, 3), torch.float32, -1.0, 1.0),
                "joint_desc": ((N_MAX, JOINT_DESC_DIM), torch.float32, -math.pi, math.pi),
                "joint_mask": ((N_MAX,), torch.bool, 0, 1),
                "ee": ((3,), torch.float32, -2.0, 2.0),
                "task": ((TASK_DIM,), torch.float32, -2.0, 2.0)}
        if self.obs_velocity:
            spec["joint_vel"] = ((N_MAX,), torch.float32, -1.0, 1.0)
        return spec

    # ------------------------------------------------------------------ rules
    def _potential(self, s: ArmState, is_: dict[str, torch.Tensor] | None = None,
                   p: dict[str, torch.Tensor] | None = None,
                   present: set[str] | None = None) -> torch.Tensor:
        """Shaping potential of each env's state (higher is closer to success). Only the
        rules of the tasks ``present`` in the batch run (a static choice)."""
        ee = s.pts[:, -1]
        is_ = self.is_task if is_ is None else is_
        p = self.p if p is None else p
        present = self.tasks_present if present is None else present
        d_ee_goal = (ee - s.goal).norm(dim=1)
        phi = -d_ee_goal
        if present & {"via_point", "dwell_slow"}:
            d_ee_aux = (ee - s.aux).norm(dim=1)
            d_aux_goal = (s.aux - s.goal).norm(dim=1)
        if "via_point" in present:
            phi = torch.where(is_["via_point"] & ~s.via_done, -(d_ee_aux + d_aux_goal), phi)
        if present & {"push", "pick_place"}:
            d_disk_goal = (s.disk - s.goal).norm(dim=1)
            d_ee_disk = (ee - s.disk).norm(dim=1)
            phi = torch.where(is_["push"], -(d_disk_goal + 0.2 * d_ee_disk), phi)
            phi = torch.where(is_["pick_place"] & ~s.held, -(d_ee_disk + d_disk_goal), phi)
        if "wipe" in present:
            phi = torch.where(is_["wipe"], -0.15 * (~s.cover).sum(1).float(), phi)
        if "dwell_slow" in present:
            prog = s.count.float() / p["dwell_steps"].float()
            dwell = torch.where(s.phase == 0, -(d_ee_aux + d_aux_goal + 0.5),
                                torch.where(s.phase == 1, -(d_aux_goal + 0.5 * (1 - prog)),
                                            -d_ee_goal))
            phi = torch.where(is_["dwell_slow"], dwell, phi)
        return phi

    def step(self, action: torch.Tensor):
        """Advance every env one step.

        Args:
            action: ``ee_delta``: (B, 3) in [-1, 1]: (dx, dy) times the world's
                ``max_ee_step``, executed by damped least-squares IK within joint velocity and
                position limits; grip > 0 switches the magnet on. ``joint_velocity``:
                (B, N_MAX) in [-1, 1] times each joint's velocity limit (padded joints
                ignored), or (B, N_MAX + 1) whose last column is the grip.

        Returns:
            ``obs, reward (B,) f32, terminated (B,) bool, truncated (B,) bool, info`` with
            ``info["success"]`` (B,) bool, ``info["final_obs"]`` (the observation of the state
            each episode ended in; rows of envs that did not end hold their current one),
            ``info["scene"]`` (B,) the scene id of the episode that took the step,
            ``info["spill"]`` (B,) bool (dwell_slow: too fast in the slow phase) and
            ``info["joint_action"]`` (B, N_MAX) the executed joint step over the velocity
            limits.
        """
        B = self.num_envs
        a = torch.as_tensor(action, device=self.device)
        ok_cols = (3,) if self.interface == "ee_delta" else (N_MAX, N_MAX + 1)
        if a.dim() != 2 or a.shape[0] != B or a.shape[1] not in ok_cols:
            raise EngineError(f"action must have shape (B={B}, {' or '.join(map(str, ok_cols))})"
                              f" for the {self.interface} interface (got {tuple(a.shape)})")
        return self._step_fn(a.to(torch.float32))

    def _step_impl(self, a: torch.Tensor):
        B = self.num_envs
        a = a.clamp(-1.0, 1.0)
        s, p = self.state, self.p
        if self.interface == "ee_delta":
            dx = a[:, :2] * p["max_ee_step"][:, None]
            grip = a[:, 2] > 0
            dq = ik_step(s.pts, s.q, p["lo"], p["hi"], dx, p["damping"])
        else:
            dq = a[:, :N_MAX] * p["vel"]
            grip = a[:, N_MAX] > 0 if a.shape[1] > N_MAX else torch.zeros_like(s.magnet)
        dq = dq * self.joint_mask
        ratio = (dq.abs() / p["vel"]).amax(1).clamp(min=1.0)  # uniform scaling keeps direction
        q_new = torch.maximum(torch.minimum(s.q + dq / ratio[:, None], p["hi"]), p["lo"])
        pts = self.forward_kinematics(q_new)
        ee_old = s.pts[:, -1]
        ee = pts[:, -1]
        reward = torch.zeros(B, device=self.device)
        is_ = self.is_task
        if "reach_around" in self.tasks_present:
            blocked = is_["reach_around"] & ((ee - s.aux).norm(dim=1) < s.aux_r)
            q_new = _where(blocked, s.q, q_new)
            pts = _where(blocked, s.pts, pts)
            ee = pts[:, -1]
            reward = reward - blocked.float() * p["penalty"]
        s.dq = q_new - s.q
        joint_action = s.dq / p["vel"]  # (B, N_MAX) executed command, in velocity limits
        s.q, s.pts = q_new, pts
        s.magnet = grip & p["gripper"]
        if self.tasks_present & {"push", "pick_place"}:
            self._disk_rules(s, ee)
        if "via_point" in self.tasks_present:
            s.via_done = s.via_done | (is_["via_point"] & ((ee - s.aux).norm(dim=1)
                                                           < p["via_r"]))
        spill = torch.zeros_like(s.held)
        if "dwell_slow" in self.tasks_present:
            spill = self._dwell_rules(s, ee, ee_old)
        if "wipe" in self.tasks_present:
            cells = scene_mod.wipe_cells(s.goal, s.half)  # (B, 9, 2)
            reach = p["brush"] * s.half * (2.0 / 3.0)
            near = (cells - ee[:, None, :]).norm(dim=2) < reach[:, None]
            s.cover = s.cover | (near & is_["wipe"][:, None])
        # success
        tip = torch.where(self.is_disk_task[:, None], s.disk, ee)
        at_goal = (tip - s.goal).norm(dim=1) < p["goal_r"]
        gate = ~(is_["via_point"] & ~s.via_done) & ~(is_["pick_place"] & s.held) \
            & ~(is_["dwell_slow"] & (s.phase < 2))
        success = torch.where(is_["wipe"], s.cover.all(1), at_goal & gate)
        phi = self._potential(s)
        reward = reward + p["shaping"] * (phi - s.phi) + p["bonus"] * success.float() \
            - spill.float()
        s.phi = phi
        s.t = s.t + 1
        terminated = success | spill
        truncated = (s.t >= p["max_steps"]) & ~terminated
        done = terminated | truncated
        final_obs = self.observe(s)
        scene = s.scene_key.clone()
        s.ep = s.ep + done.long()
        self._new_episode(s, done)
        info = {"success": success, "final_obs": final_obs, "scene": scene, "spill": spill,
                "joint_action": joint_action}
        obs = dict(final_obs)
        for k, v in self._first_obs.items():  # fresh episodes: their (precomputed) first obs
            obs[k] = _where(done, v, final_obs[k])
        if self.obs_velocity:
            obs["joint_vel"] = s.dq / p["vel"]
        return obs, reward, terminated, truncated, info

    def _disk_rules(self, s: ArmState, ee: torch.Tensor) -> None:
        p, is_ = self.p, self.is_task
        # push: the end-effector shoves the disk out of contact (kinematic contact)
        v = s.disk - ee
        dist = v.norm(dim=1, keepdim=True).clamp(min=1e-6)
        contact = (p["disk_r"] + EE_RADIUS)[:, None]
        shove = is_["push"] & (dist[:, 0] < contact[:, 0])
        s.disk = _where(shove, ee + v / dist * contact, s.disk)
        # carry: the magnet picks the disk up near it and drops it where it is switched off
        pick = is_["pick_place"] & s.magnet & ~s.held & (dist[:, 0] < p["grab_r"])
        s.held = (s.held | pick) & s.magnet
        s.disk = _where(s.held, ee, s.disk)

    def _dwell_rules(self, s: ArmState, ee: torch.Tensor, ee_old: torch.Tensor) -> torch.Tensor:
        p = self.p
        dwell = self.is_task["dwell_slow"]
        step_len = (ee - ee_old).norm(dim=1)
        spill = dwell & (s.phase == 2) & (step_len > p["slow"] * SPILL_TOLERANCE)
        near = (ee - s.aux).norm(dim=1) < p["dwell_r"]
        phase0 = dwell & (s.phase == 0)
        holding = dwell & (s.phase == 1)
        count = torch.where(holding, torch.where(near, s.count + 1, 0), s.count)
        phase = torch.where(phase0 & near, 1, s.phase)
        phase = torch.where(holding & (count >= p["dwell_steps"]), 2, phase)
        s.count, s.phase = count, phase
        return spill
