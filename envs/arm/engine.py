"""The batched engine of the arm family: N planar arms stepped by one tensor program.

Heterogeneous batches (different tasks and embodiments) share one program: per-joint tensors
are padded to ``N_MAX`` with a mask, every task's rule runs on every env and its effect is
selected by the env's task. Shapes are static and a step never synchronises with the host;
episodes that end are reset in the same step (``info["final_obs"]`` holds their final
observation). Randomness is counter-based (``autoworld.rng``): a run is a pure function of the
seed.

Layout: the step computes batch-last, per-joint tensors (N_MAX, B), points (2, N_MAX+1, B) and
vectors (2, B), so that every elementwise operation runs over long contiguous rows; the state's
fields keep their batch-first shapes as views of that storage. Only the observation is written
batch-first (contiguous). On the CPU a reset touches only the envs whose episode ended.

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
    batch_last,
    forward_kinematics,
    forward_kinematics_bl,
    ik_step_bl,
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
    """The batched state (leading dim B). The engine stores every field batch-last and hands
    out batch-first views (``kinematics.batch_last``); any layout may be assigned."""

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


def _dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distances ``(R,)`` between batch-last points ``a`` and ``b`` (2, R)."""
    return _norm0(a - b)


def _norm0(v: torch.Tensor) -> torch.Tensor:
    """Euclidean norm over dim 0 (``linalg.vector_norm(v, dim=0)`` reduces an outer dim far
    more slowly on the CPU than this sum of squares)."""
    return (v * v).sum(0).sqrt()


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
        # ``step`` puts a copy of the state that ended an episode, before its reset, in
        # ``info["final_state"]`` (the Gymnasium env turns it on to render the last frame)
        self.keep_final_state = False
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
        if compile:
            from autoworld.envs.grid.engine import allow_compiled_engines

            # every arm's step is one code object: more than 8 compiled arms in a process (a
            # cross-embodiment batch, a bench worker) would fall back to eager without this
            allow_compiled_engines()
        self._step_fn = torch.compile(self._step_impl) if compile else self._step_impl
        # eager CPU: a reset touches only the envs whose episode ended (see _new_episode)
        self._sparse_reset = self.device.type == "cpu" and not compile
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
        # bound of positions in observations (end-effector, goals): 2.0 for the standard arms
        # (reach 1.0), twice the longest reach for arms built longer (links up to 2.0 each)
        self.coord_bound = max(2.0, 2.0 * max(sum(a.link_lengths) for a in self.arms))
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
        B, dev = self.num_envs, self.device
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
        # batch-last per-joint constants of the step, (N_MAX, B) each
        self.p_bl = {k: batch_last(p[k]).contiguous() for k in ("links", "lo", "hi", "vel")}
        self.p_bl["maskf"] = batch_last(p["mask"]).float().contiguous()
        self.p_bl["vel_masked"] = self.p_bl["vel"] * self.p_bl["maskf"]
        self.p_bl["lam2"] = p["damping"] * p["damping"]  # (B,)
        self.p_bl["zero"] = torch.zeros(B, device=dev)
        self._wipe_grid = batch_last(scene_mod.wipe_cells(torch.zeros(1, 2, device=dev),
                                                          torch.ones(1, device=dev)))  # (2,9,1)

    def _fresh_state(self) -> ArmState:
        B, dev = self.num_envs, self.device

        def z(*shape, dtype=torch.float32):  # batch-first view of batch-last storage
            return batch_last(torch.zeros(*reversed(shape), B, dtype=dtype, device=dev))

        zb, zl = z(dtype=torch.bool), z(dtype=torch.long)
        q = z(N_MAX)
        return ArmState(q=q, pts=self.forward_kinematics(q), dq=z(N_MAX), magnet=zb,
                        goal=z(2), aux=z(2), aux_r=z(), half=z(), disk=z(2), held=zb,
                        via_done=zb, phase=zl, count=zl, cover=z(9, dtype=torch.bool),
                        distract=z(scene_mod.D_MAX, 2), n_distract=zl, start_ee=z(2), phi=z(),
                        t=zl, ep=zl, key=zl, scene_key=zl)

    # ------------------------------------------------------------------ kinematics
    def forward_kinematics(self, q: torch.Tensor) -> torch.Tensor:
        """Joint points ``(B, N_MAX+1, 2)`` of configurations ``q`` (B, N_MAX) of each env's
        arm; point 0 is the base, the last the end-effector (a view of batch-last storage)."""
        return batch_last(forward_kinematics_bl(batch_last(q), self.p_bl["links"]))

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
        self._reset_plan()

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
        present = {self.worlds[w].task}
        bank["phi"] = self._potential(tmp, is_, pw, present)
        bank["scene_key"] = index
        js, ee, task = self._observe_parts(tmp, self._obs_context(pw), present)
        bank.update({"obs_joint_state": js, "obs_ee": ee, "obs_task": task})
        bank = {k: v.contiguous() for k, v in bank.items()}
        if len(_BANK_CACHE) >= BANK_CACHE_SIZE:
            _BANK_CACHE.pop(next(iter(_BANK_CACHE)))
        _BANK_CACHE[key] = bank
        return bank

    def _reset_plan(self) -> None:
        """Which fields a reset writes. A field that stays at its initial zero for every task
        in the batch (``aux`` without via / obstacle / pour tasks, ``disk`` without disk tasks,
        the flags and counters of absent tasks) needs no reset."""
        present = self.tasks_present
        skip = set()
        if not present & {"via_point", "reach_around", "dwell_slow"}:
            skip.add("aux")
        if not present & {"push", "pick_place"}:
            skip.add("disk")
        for task, names in (("pick_place", ("held",)), ("via_point", ("via_done",)),
                            ("dwell_slow", ("phase", "count")), ("wipe", ("cover",))):
            if task not in present:
                skip.update(names)
        self._reset_fields = [f for f in self._layout if f[0] not in skip]
        self._fresh_fields = [k for k in _FRESH if k not in skip]
        # fields every step rebinds to a tensor of its own: a reset inside the step may write
        # them in place (nothing outside the engine holds them yet)
        self._step_fields = {"q", "pts", "dq", "phi", "t", "magnet", "disk", "held",
                             "via_done", "phase", "count", "cover"}

    def _new_episode(self, s: ArmState, mask: torch.Tensor | None,
                     in_step: bool = False) -> None:
        """Draw the next scene of each env's stream from its world's bank and merge it into
        ``s`` where ``mask`` (all envs when None); ``self._first_obs`` is then ``(idx, obs)``:
        the first observation of the fresh episodes (rows ``idx``, or all rows when ``idx`` is
        None), or None when no episode started.

        On the CPU (eager) only the envs that start an episode are touched (their indices are
        read on the host, which costs nothing there); elsewhere every field is merged with a
        mask, so the step never synchronises with the host. Fields are never written in place
        unless ``in_step`` and the step made them (tensors handed out stay as they were)."""
        idx = None
        key, ep, offset = s.key, s.ep, self._bank_offset
        if mask is not None and self._sparse_reset:
            idx = mask.nonzero().squeeze(1)  # (n,)
            if idx.numel() == 0:
                self._first_obs = None
                return
            key, ep, offset = key[idx], ep[idx], offset[idx]
        rows = self._packed.index_select(0, offset + randint(key, ep, 0xC0FFEE,
                                                             self.bank_size))  # (n, F)
        first_obs = {}
        inplace = self._step_fields if in_step else ()
        for k, a, b, shape, dtype in self._reset_fields:
            new = rows[:, a:b].view(-1, *shape)
            if dtype != torch.float32:
                new = new.to(dtype)
            if k.startswith("obs_"):
                first_obs[k[4:]] = new
                continue
            new = batch_last(new)
            if mask is None:
                merged = new.contiguous()
            elif idx is not None:
                old = batch_last(getattr(s, k))
                merged = old.index_copy_(-1, idx, new) if k in inplace \
                    else old.index_copy(-1, idx, new)
            else:
                merged = torch.where(mask, new, batch_last(getattr(s, k)))
            setattr(s, k, batch_last(merged))
        self._first_obs = (idx, first_obs)
        for k in self._fresh_fields:
            cur = batch_last(getattr(s, k))
            if mask is None:
                cur = torch.zeros_like(cur, memory_format=torch.contiguous_format)
            elif idx is not None:
                cur = cur.index_fill_(-1, idx, 0) if k in inplace else cur.index_fill(-1, idx, 0)
            else:
                cur = torch.where(mask, torch.zeros((), dtype=cur.dtype, device=cur.device), cur)
            setattr(s, k, batch_last(cur))

    def reset(self, seed: int | None = None, mask: torch.Tensor | None = None, *,
              streams: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Start new episodes (all envs, or those in ``mask`` (B,) bool) and return the
        observation. ``seed`` re-derives the key of every env it resets from (seed, env
        index), or from (seed, ``streams[i]``) when given: envs with one stream index then meet
        the same scenes (common random numbers); without ``seed`` the next scene of each env's
        stream is drawn. Envs outside ``mask`` keep their key, stream and episode."""
        s = self.state
        if streams is not None and seed is None:
            raise EngineError("reset(streams=...) re-keys the envs: it needs a seed")
        if seed is not None:
            self.seed = int(seed)
            base = derive_seed(self.seed, "arm-engine") & MASK32
            idx = (torch.arange(self.num_envs, device=self.device) if streams is None
                   else torch.as_tensor(streams, device=self.device).long().reshape(-1))
            if idx.numel() != self.num_envs:
                raise EngineError(f"reset(streams=...) needs one stream index per env "
                                  f"({self.num_envs}), got {idx.numel()}")
            key = hash32(hash32(idx * 0x9E3779B9 + 1) ^ base)
            if mask is None:
                s.key, s.ep = key, torch.zeros_like(s.ep)
            else:
                s.key = torch.where(mask, key, s.key)
                s.ep = torch.where(mask, 0, s.ep)
        else:
            s.ep = s.ep + (1 if mask is None else mask.long())
        self._new_episode(s, mask)
        return self.observe(s)

    # ------------------------------------------------------------------ observation
    def observe(self, s: ArmState | None = None) -> dict[str, torch.Tensor]:
        """The observation dict of state ``s`` (default: the current state)."""
        s = self.state if s is None else s
        joint_state, ee, task = self._observe_parts(s, self._ctx, self.tasks_present)
        obs = {"joint_state": joint_state, "joint_desc": self.joint_desc,
               "joint_mask": self.joint_mask, "ee": ee, "task": task}
        if self.obs_velocity:  # clamped: (q + dq / r) - q rounds a hair past dq / r
            obs["joint_vel"] = (batch_last(s.dq) / self.p_bl["vel"]).clamp(-1.0, 1.0
                                                                             ).t().contiguous()
        return obs

    def _obs_context(self, p: dict[str, torch.Tensor]) -> dict:
        """Per-row constants the observation needs (per env, or per bank scene), batch-last."""
        is_ = _task_masks(p["task"])
        rng = (p["hi"] - p["lo"]).clamp(min=1e-6)
        mask = p["mask"]
        qscale = torch.where(mask, 2.0 / rng, torch.zeros_like(rng))
        qoff = torch.where(mask, -p["lo"] * qscale - 1.0, torch.zeros_like(rng))

        def bl(x):
            return batch_last(x).contiguous()

        return {
            "maskf": bl(mask.float()), "qscale": bl(qscale), "qoff": bl(qoff),
            "onehot": bl(torch.nn.functional.one_hot(p["task"], NUM_TASKS).float()),
            "disk": is_["push"] | is_["pick_place"],
            "around": is_["reach_around"], "wipe": is_["wipe"],
            "slow_ratio": torch.where(is_["dwell_slow"], p["slow"] / p["max_ee_step"],
                                      torch.zeros_like(p["slow"])),
            "goal_r": p["goal_r"], "dwell_steps": p["dwell_steps"].float(),
            "zero": torch.zeros_like(p["goal_r"]),
        }

    def _observe_parts(self, s: ArmState, c: dict,
                       present: set[str]) -> tuple[torch.Tensor, ...]:
        """joint_state (R, N_MAX, 3), ee (R, 3) and task features (R, TASK_DIM), contiguous.

        Task features: one-hot task (7), goal xy, aux xy (via point, disk, obstacle centre or
        pour point), size (obstacle radius, wipe half side or goal radius), then flags: via
        reached / disk held / dwell progress / wiped fraction; slow phase / wiped fraction of
        row 0; slow speed over max ee step / row 1; row 2. Only the features of the tasks
        ``present`` are computed (the others are zero)."""
        q = batch_last(s.q)  # (N_MAX, R)
        R = q.shape[1]
        m = c["maskf"]
        joint_state = torch.stack(((q.sin() * m).t(), (q.cos() * m).t(),
                                   torch.addcmul(c["qoff"], q, c["qscale"]).t()), -1)
        ee = torch.cat((batch_last(s.pts)[:, -1], s.magnet.to(q.dtype)[None]))  # (3, R)
        zero = c["zero"]
        f_a, f_b, f_c, f_d = zero, zero, c["slow_ratio"], zero
        if "wipe" in present:
            rows = batch_last(s.cover).to(q.dtype).view(3, 3, R).mean(1)  # (3, R)
            f_a, f_b, f_c, f_d = rows.mean(0), rows[0], f_c + rows[1], rows[2]
        if "via_point" in present:
            f_a = f_a + s.via_done.to(q.dtype)
        if "pick_place" in present:
            f_a = f_a + s.held.to(q.dtype)
        if "dwell_slow" in present:
            prog = torch.where(s.phase >= 2, 1.0, s.count.to(q.dtype) / c["dwell_steps"]) \
                * (s.phase >= 1)
            f_a = f_a + prog
            f_b = f_b + (s.phase == 2).to(q.dtype)
        aux = batch_last(s.aux)
        if present & {"push", "pick_place"}:
            aux = torch.where(c["disk"], batch_last(s.disk), aux)
        size = c["goal_r"]
        if "wipe" in present:
            size = torch.where(c["wipe"], s.half, size)
        if "reach_around" in present:
            size = torch.where(c["around"], s.aux_r, size)
        task = torch.cat((c["onehot"], batch_last(s.goal), aux,
                          torch.stack((size, f_a, f_b, f_c, f_d))))  # (TASK_DIM, R)
        return joint_state, ee.t().contiguous(), task.t().contiguous()

    def observation_spec(self) -> dict[str, tuple[tuple[int, ...], torch.dtype, float, float]]:
        """Per-env (shape, dtype, low, high) of each observation key."""
        from autoworld.envs.arm.embodiment import JOINT_DESC_DIM

        spec = {"joint_state": ((N_MAX, 3), torch.float32, -1.0, 1.0),
                "joint_desc": ((N_MAX, JOINT_DESC_DIM), torch.float32, -math.pi, math.pi),
                "joint_mask": ((N_MAX,), torch.bool, 0, 1),
                "ee": ((3,), torch.float32, -self.coord_bound, self.coord_bound),
                "task": ((TASK_DIM,), torch.float32, -self.coord_bound, self.coord_bound)}
        if self.obs_velocity:
            spec["joint_vel"] = ((N_MAX,), torch.float32, -1.0, 1.0)
        return spec

    # ------------------------------------------------------------------ rules
    def _potential(self, s: ArmState, is_: dict[str, torch.Tensor] | None = None,
                   p: dict[str, torch.Tensor] | None = None,
                   present: set[str] | None = None) -> torch.Tensor:
        """Shaping potential of each env's state (higher is closer to success). Only the
        rules of the tasks ``present`` in the batch run (a static choice)."""
        ee = batch_last(s.pts)[:, -1]  # (2, R)
        goal, aux, disk = batch_last(s.goal), batch_last(s.aux), batch_last(s.disk)
        is_ = self.is_task if is_ is None else is_
        p = self.p if p is None else p
        present = self.tasks_present if present is None else present
        d_ee_goal = _dist(ee, goal)
        phi = -d_ee_goal
        if present & {"via_point", "dwell_slow"}:
            d_ee_aux = _dist(ee, aux)
            d_aux_goal = _dist(aux, goal)
        if "via_point" in present:
            phi = torch.where(is_["via_point"] & ~s.via_done, -(d_ee_aux + d_aux_goal), phi)
        if present & {"push", "pick_place"}:
            d_disk_goal = _dist(disk, goal)
            d_ee_disk = _dist(ee, disk)
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
            each episode ended in; rows of envs that did not end hold their current one, and
            when no episode ended its tensors are those of ``obs``),
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
        # Batch-last throughout: per-joint tensors are (N_MAX, B), points (2, N_MAX+1, B),
        # vectors (2, B); the state's batch-first fields are views of such storage.
        a = a.clamp(-1.0, 1.0).t()  # (cols, B)
        s, p, pb, is_ = self.state, self.p, self.p_bl, self.is_task
        present = self.tasks_present
        q, pts = batch_last(s.q), batch_last(s.pts)
        if self.interface == "ee_delta":
            dq = ik_step_bl(pts, q, pb["lo"], pb["hi"], a[:2] * p["max_ee_step"], pb["lam2"])
            dq = dq * pb["maskf"]
            grip = a[2] > 0
        else:
            dq = a[:N_MAX] * pb["vel_masked"]
            grip = a[N_MAX] > 0 if a.shape[0] > N_MAX else torch.zeros_like(s.magnet)
        ratio = (dq.abs() / pb["vel"]).amax(0).clamp(min=1.0)  # uniform scaling keeps direction
        q_new = torch.clamp(q + dq / ratio, pb["lo"], pb["hi"])
        pts_new = forward_kinematics_bl(q_new, pb["links"])
        ee_old, ee = pts[:, -1], pts_new[:, -1]  # (2, B)
        reward = pb["zero"]
        if "reach_around" in present:
            blocked = is_["reach_around"] & (_dist(ee, batch_last(s.aux)) < s.aux_r)
            bf = blocked.to(q.dtype)
            q_new = torch.lerp(q_new, q, bf)  # exact select (weights 0 / 1)
            pts_new = torch.lerp(pts_new, pts, bf)
            ee = pts_new[:, -1]
            reward = reward - bf * p["penalty"]
        dq = q_new - q
        joint_action = batch_last(dq / pb["vel"]).clamp(-1.0, 1.0)  # (B, N_MAX) executed
        s.q, s.pts, s.dq = batch_last(q_new), batch_last(pts_new), batch_last(dq)
        s.magnet = grip & p["gripper"]
        if present & {"push", "pick_place"}:
            self._disk_rules(s, ee)
        if "via_point" in present:
            s.via_done = s.via_done | (is_["via_point"]
                                       & (_dist(ee, batch_last(s.aux)) < p["via_r"]))
        spill = torch.zeros_like(s.held)
        if "dwell_slow" in present:
            spill = self._dwell_rules(s, ee, ee_old)
        goal = batch_last(s.goal)
        if "wipe" in present:
            cells = goal[:, None] + self._wipe_grid * s.half  # (2, 9, B)
            reach = p["brush"] * s.half * (2.0 / 3.0)
            near = _norm0(cells - ee[:, None]) < reach  # (9, B)
            s.cover = batch_last(batch_last(s.cover) | (near & is_["wipe"]))
        # success
        tip = ee
        if present & {"push", "pick_place"}:
            tip = torch.where(self.is_disk_task, batch_last(s.disk), ee)
        success = _dist(tip, goal) < p["goal_r"]
        if "via_point" in present:
            success = success & ~(is_["via_point"] & ~s.via_done)
        if "pick_place" in present:
            success = success & ~(is_["pick_place"] & s.held)
        if "dwell_slow" in present:
            success = success & ~(is_["dwell_slow"] & (s.phase < 2))
        if "wipe" in present:
            success = torch.where(is_["wipe"], s.cover.all(1), success)
        phi = self._potential(s)
        reward = reward + p["shaping"] * (phi - s.phi) + p["bonus"] * success.float() \
            - spill.float()
        s.phi = phi
        s.t = s.t + 1
        terminated = success | spill
        truncated = (s.t >= p["max_steps"]) & ~terminated
        done = terminated | truncated
        final_obs = self.observe(s)
        final_state = s.clone() if self.keep_final_state else None
        scene = s.scene_key  # never written in place: a reset rebinds it
        s.ep = s.ep + done.long()
        self._new_episode(s, done, in_step=True)
        info = {"success": success, "final_obs": final_obs, "scene": scene, "spill": spill,
                "joint_action": joint_action}
        if final_state is not None:
            info["final_state"] = final_state
        obs = dict(final_obs)
        if self._first_obs is not None:  # fresh episodes: their (precomputed) first obs
            idx, first = self._first_obs
            for key, v in first.items():
                obs[key] = (_where(done, v, final_obs[key]) if idx is None
                            else final_obs[key].index_copy(0, idx, v))
            if self.obs_velocity:
                obs["joint_vel"] = (batch_last(s.dq) / pb["vel"]).clamp(-1.0, 1.0
                                                                      ).t().contiguous()
        return obs, reward, terminated, truncated, info

    def _disk_rules(self, s: ArmState, ee: torch.Tensor) -> None:
        p, is_ = self.p, self.is_task
        disk = batch_last(s.disk)  # (2, B)
        # push: the end-effector shoves the disk out of contact (kinematic contact)
        v = disk - ee
        dist = _norm0(v).clamp(min=1e-6)
        contact = p["disk_r"] + EE_RADIUS
        shove = is_["push"] & (dist < contact)
        disk = torch.where(shove, ee + v / dist * contact, disk)
        # carry: the magnet picks the disk up near it and drops it where it is switched off
        pick = is_["pick_place"] & s.magnet & ~s.held & (dist < p["grab_r"])
        s.held = (s.held | pick) & s.magnet
        s.disk = batch_last(torch.where(s.held, ee, disk))

    def _dwell_rules(self, s: ArmState, ee: torch.Tensor, ee_old: torch.Tensor) -> torch.Tensor:
        p = self.p
        dwell = self.is_task["dwell_slow"]
        step_len = _dist(ee, ee_old)
        spill = dwell & (s.phase == 2) & (step_len > p["slow"] * SPILL_TOLERANCE)
        near = _dist(ee, batch_last(s.aux)) < p["dwell_r"]
        phase0 = dwell & (s.phase == 0)
        holding = dwell & (s.phase == 1)
        count = torch.where(holding, torch.where(near, s.count + 1, 0), s.count)
        phase = torch.where(phase0 & near, 1, s.phase)
        phase = torch.where(holding & (count >= p["dwell_steps"]), 2, phase)
        s.count, s.phase = count, phase
        return spill
