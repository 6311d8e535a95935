"""Seeded, batched scene generation of the arm family.

A scene (start pose, goal, via point, disk, obstacle, wipe region, pour point, distractors) is a
pure function of a 32-bit scene key, drawn with counter-based hashing (``autoworld.rng``), so it
is reproducible and identical on every device. Targets lie in polar coordinates around the base:
radius in ``[radius_lo, radius_hi]``, angle in ``[-sector, sector]`` for train scenes and in
``sector < |angle| <= sector + shift_sector`` for held-out shifted scenes, which also scale
obstacles and wipe regions by ``shift_scale`` and add a distractor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from autoworld.rng import stream_bits

D_MAX = 4  # most distractor disks in a scene
NUM_DRAWS = 24 + D_MAX * 3
SCENE_STREAM = 0x5CE7E


@dataclass
class WorldTable:
    """Per-env constants of the worlds in a batch (each tensor has a leading env dim B)."""

    task: torch.Tensor  # (B,) long
    links: torch.Tensor  # (B, N_MAX)
    lo: torch.Tensor  # (B, N_MAX)
    hi: torch.Tensor  # (B, N_MAX)
    vel: torch.Tensor  # (B, N_MAX), 1 on padded joints (never divides by 0)
    mask: torch.Tensor  # (B, N_MAX) bool
    home: torch.Tensor  # (B, N_MAX) home pose, base turned so that the ee points along +x
    radius_lo: torch.Tensor
    radius_hi: torch.Tensor
    sector: torch.Tensor
    shift_sector: torch.Tensor
    shift_scale: torch.Tensor
    jitter: torch.Tensor
    goal_r: torch.Tensor
    via_r: torch.Tensor
    obst_lo: torch.Tensor
    obst_hi: torch.Tensor
    half_lo: torch.Tensor
    half_hi: torch.Tensor
    dwell_r: torch.Tensor
    distractors: torch.Tensor  # (B,) long


def _polar(r: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    return torch.stack((r * a.cos(), r * a.sin()), -1)


def generate(w: WorldTable, scene_key: torch.Tensor, shifted: bool, fk) -> dict[str, torch.Tensor]:
    """Scenes for every env (B rows) from their keys; ``fk(q)`` gives joint points.

    Returns a dict of tensors: ``q`` (B, N_MAX), ``goal``, ``aux`` (B, 2) (via point, pick-up
    disk, obstacle centre or pour point), ``aux_r`` (B,) (obstacle radius), ``half`` (B,)
    (wipe half side), ``distract`` (B, D_MAX, 2) and ``n_distract`` (B,).
    """
    from autoworld.envs.arm.spec import TASKS

    B, N = w.links.shape
    ticks = torch.arange(NUM_DRAWS, device=scene_key.device)
    u = (stream_bits(scene_key[:, None], ticks[None, :], SCENE_STREAM) >> 8).float() \
        * (1.0 / (1 << 24))  # (B, NUM_DRAWS) uniform [0, 1)
    uq = (stream_bits(scene_key[:, None], ticks[None, :N] + 1000, SCENE_STREAM) >> 8).float() \
        * (1.0 / (1 << 24))  # (B, N) pose jitter draws

    # start pose: home pose, jittered, base turned by a small random angle
    q = w.home + w.jitter[:, None] * (2 * uq - 1)
    q[:, 0] = w.home[:, 0] + 0.3 * (2 * u[:, 0] - 1)
    q = torch.maximum(torch.minimum(q, w.hi), w.lo) * w.mask
    ee0 = fk(q)[:, -1]  # (B, 2)
    r0, a0 = ee0.norm(dim=1), torch.atan2(ee0[:, 1], ee0[:, 0])

    span = w.radius_hi - w.radius_lo
    scale = w.shift_scale if shifted else torch.ones_like(w.shift_scale)

    def angle(ua: torch.Tensor, us: torch.Tensor) -> torch.Tensor:
        if not shifted:
            return w.sector * (2 * ua - 1)
        sign = torch.where(us < 0.5, -1.0, 1.0)
        return sign * (w.sector + w.shift_sector * (0.05 + 0.95 * ua))

    def point(ur, ua, us, lo=None, hi=None):
        lo = w.radius_lo if lo is None else lo
        hi = w.radius_hi if hi is None else hi
        return _polar(lo + (hi - lo) * ur, angle(ua, us))

    def toward_centre(base: torch.Tensor, ur, ua, inner, outer):
        """A point 0.3-0.55 rad from ``base``, turned towards the middle of the sector."""
        rb, ab = base.norm(dim=1), torch.atan2(base[:, 1], base[:, 0])
        r = (rb + 0.1 * (2 * ur - 1)).clamp(min=inner, max=outer)
        return _polar(r, ab - torch.sign(ab + 1e-6) * (0.3 + 0.25 * ua))

    goal = point(u[:, 1], u[:, 2], u[:, 3])
    aux = point(u[:, 4], u[:, 5], u[:, 6])
    task = w.task
    is_ = {t: task == i for i, t in enumerate(TASKS)}
    # keep a via point / pick-up disk apart from the goal: mirror the goal's angle (or turn
    # it by 0.6 rad near the middle), which keeps it in its split's sector
    close = (goal - aux).norm(dim=1) < 0.15
    close = close & (is_["via_point"] | is_["pick_place"])
    ag = torch.atan2(goal[:, 1], goal[:, 0])
    ag = torch.where(ag.abs() > 0.3, -ag, ag + 0.6)
    goal = torch.where(close[:, None], _polar(goal.norm(dim=1), ag), goal)
    inner, outer = w.radius_lo + 0.1, w.radius_hi - 0.08

    # push and dwell: the object (or pour point) away from the rim, the goal nearby
    mid_obj = point(u[:, 7], u[:, 8], u[:, 9], lo=inner, hi=outer)
    near_goal = toward_centre(mid_obj, u[:, 10], u[:, 11], inner, outer)
    mid_task = is_["push"] | is_["dwell_slow"]
    aux = torch.where(mid_task[:, None], mid_obj, aux)
    goal = torch.where(mid_task[:, None], near_goal, goal)
    # reach around: the goal 0.9-1.3 rad (shifted 1.1-1.5) from the start, the obstacle between
    turn = torch.where(u[:, 12] < 0.5, -1.0, 1.0) * ((1.1 if shifted else 0.9) + 0.4 * u[:, 13])
    around_goal = _polar((r0 + 0.05 * (2 * u[:, 14] - 1)).clamp(w.radius_lo, w.radius_hi),
                         a0 + turn)
    obst_r = (w.obst_lo + (w.obst_hi - w.obst_lo) * u[:, 15]) * scale
    around = is_["reach_around"]
    goal = torch.where(around[:, None], around_goal, goal)
    aux = torch.where(around[:, None], 0.5 * (ee0 + around_goal), aux)
    # wipe: the region's centre in goal, away from the rim
    half = (w.half_lo + (w.half_hi - w.half_lo) * u[:, 16]) * scale
    centre = point(u[:, 17], u[:, 18], u[:, 19], lo=w.radius_lo + 0.1,
                   hi=w.radius_hi - 1.45 * half)
    goal = torch.where(is_["wipe"][:, None], centre, goal)

    d = u[:, 24:].view(B, D_MAX, 3)
    rr = w.radius_lo[:, None] + span[:, None] * d[..., 0]
    if shifted:
        sign = torch.where(d[..., 2] < 0.5, -1.0, 1.0)
        aa = sign * (w.sector[:, None] + w.shift_sector[:, None] * d[..., 1])
    else:
        aa = w.sector[:, None] * (2 * d[..., 1] - 1)
    distract = _polar(rr, aa)
    n_distract = (w.distractors + (1 if shifted else 0)).clamp(max=D_MAX)
    return {"q": q, "goal": goal, "aux": aux,
            "aux_r": torch.where(around, obst_r, torch.zeros_like(obst_r)),
            "half": torch.where(is_["wipe"], half, torch.zeros_like(half)),
            "distract": distract, "n_distract": n_distract}


def wipe_cells(centre: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
    """Centres ``(B, 9, 2)`` of the 3x3 wipe cells, row by row (row 0 at the bottom)."""
    off = torch.tensor([-2.0 / 3.0, 0.0, 2.0 / 3.0], device=centre.device)
    gx = off.repeat(3)  # x varies fastest
    gy = off.repeat_interleave(3)
    grid = torch.stack((gx, gy), -1)  # (9, 2)
    return centre[:, None, :] + grid[None] * half[:, None, None]
