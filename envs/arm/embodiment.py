"""Embodiments of the arm family: planar serial arms with 2 to 7 revolute joints.

An embodiment fixes link lengths, joint limits (radians), joint velocity limits (radians per
step) and whether the end-effector carries a magnetic gripper. Every per-joint tensor is padded to
``N_MAX`` joints with a mask, so that arms with different numbers of joints share one batch.

Example:
    >>> arm = standard_embodiments()["arm3"]
    >>> arm.n_joints, tuple(arm.joint_desc().shape), int(arm.joint_mask().sum())
    (3, (7, 6), 3)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import torch

from autoworld.errors import SpecError

N_MAX = 7  # most joints of any embodiment; per-joint tensors are padded to N_MAX
JOINT_DESC_DIM = 6  # (link_length, joint_lo, joint_hi, vel_limit, index/(N_MAX-1), is_last)
BASE_LIMIT = math.pi  # the standard arms' base joint turns through the full circle
JOINT_LIMIT = 2.6  # the standard arms' other joints: +-2.6 rad (they fold, but not onto a link)
VEL_LIMIT = 0.15  # rad per step


@dataclass(frozen=True)
class Embodiment:
    """A planar serial arm, based at the origin; joint ``i`` turns link ``i`` relative to link
    ``i-1`` (joint 0 relative to the x axis).

    Args:
        name: embodiment name.
        link_lengths: one length per link (metres; the standard arms reach 1.0 in total).
        joint_limits: ``(lo, hi)`` radians per joint, ``lo < 0 < hi`` (the zero pose is legal).
        vel_limits: largest joint speed, radians per step, per joint.
        gripper: whether the end-effector has a magnet that can hold one disk.
    """

    name: str
    link_lengths: tuple[float, ...]
    joint_limits: tuple[tuple[float, float], ...]
    vel_limits: tuple[float, ...]
    gripper: bool = True

    def __post_init__(self) -> None:
        n = len(self.link_lengths)
        where = f"embodiment {self.name!r}"
        if not 2 <= n <= N_MAX:
            raise SpecError(f"{where} has {n} links; use 2 to {N_MAX}", field="link_lengths")
        if len(self.joint_limits) != n or len(self.vel_limits) != n:
            raise SpecError(f"{where}: give one joint limit pair and one velocity limit per "
                            f"link ({n})", field="joint_limits")
        if any(not 0.01 <= float(x) <= 2.0 for x in self.link_lengths):
            raise SpecError(f"{where}: link lengths must lie in [0.01, 2.0]",
                            field="link_lengths")
        for lo, hi in self.joint_limits:
            if not -math.pi - 1e-6 <= lo < 0.0 < hi <= math.pi + 1e-6:
                raise SpecError(f"{where}: joint limits must satisfy -pi <= lo < 0 < hi <= pi "
                                f"(got ({lo}, {hi}))", field="joint_limits")
        if any(not 0.001 <= float(v) <= 1.0 for v in self.vel_limits):
            raise SpecError(f"{where}: velocity limits must lie in [0.001, 1.0] rad per step",
                            field="vel_limits")

    @property
    def n_joints(self) -> int:
        """Number of joints (= links)."""
        return len(self.link_lengths)

    @property
    def reach(self) -> float:
        """Total length of the arm (its largest reach)."""
        return float(sum(self.link_lengths))

    def joint_desc(self) -> torch.Tensor:
        """Per-joint description ``(N_MAX, JOINT_DESC_DIM)`` float32, zero rows past
        ``n_joints``: (link length, lo, hi, velocity limit, index / (N_MAX - 1), is last)."""
        d = torch.zeros(N_MAX, JOINT_DESC_DIM, dtype=torch.float32)
        n = self.n_joints
        d[:n, 0] = torch.tensor(self.link_lengths, dtype=torch.float32)
        d[:n, 1:3] = torch.tensor(self.joint_limits, dtype=torch.float32)
        d[:n, 3] = torch.tensor(self.vel_limits, dtype=torch.float32)
        d[:n, 4] = torch.arange(n, dtype=torch.float32) / (N_MAX - 1)
        d[n - 1, 5] = 1.0
        return d

    def joint_mask(self) -> torch.Tensor:
        """``(N_MAX,)`` bool, true for the arm's joints."""
        return torch.arange(N_MAX) < self.n_joints

    def home_pose(self) -> torch.Tensor:
        """The nominal start configuration ``(N_MAX,)``: a zig-zag with the end-effector at
        about three quarters of the reach, clear of the workspace's boundary singularity."""
        q = torch.zeros(N_MAX, dtype=torch.float32)
        for i in range(1, self.n_joints):
            lo, hi = self.joint_limits[i]
            q[i] = min(1.4, 0.9 * hi) if i % 2 == 1 else max(-1.4, 0.9 * lo)
        return q


def _arm(name: str, lengths, *, limit: float = JOINT_LIMIT, vel: float = VEL_LIMIT,
         gripper: bool = True) -> Embodiment:
    n = len(lengths)
    limits = ((-BASE_LIMIT, BASE_LIMIT),) + ((-limit, limit),) * (n - 1)
    return Embodiment(name, tuple(float(x) for x in lengths), limits, (float(vel),) * n, gripper)


@cache
def _standard() -> dict[str, Embodiment]:
    arms = {f"arm{n}": _arm(f"arm{n}", [1.0 / n] * n) for n in range(2, N_MAX + 1)}
    variants = [
        _arm("arm3_long_base", [0.5, 0.3, 0.2]),  # uneven links, same reach
        _arm("arm4_stiff", [0.25] * 4, limit=1.8),  # narrow joint ranges
        _arm("arm4_slow", [0.25] * 4, vel=0.08),  # slow joints
        _arm("arm5_nogrip", [0.2] * 5, gripper=False),  # no magnet: no pick-and-place
        _arm("arm6_short", [0.14] * 6),  # reach 0.84
    ]
    arms.update({a.name: a for a in variants})
    return arms


def standard_embodiments() -> dict[str, Embodiment]:
    """The built-in embodiments: ``arm2`` ... ``arm7`` (equal links, total reach 1.0, base
    joint +-pi, other joints +-2.6 rad, 0.15 rad per step, magnet) and a few variants:
    ``arm3_long_base``, ``arm4_stiff``, ``arm4_slow``, ``arm5_nogrip``, ``arm6_short``.

    Example:
        >>> sorted(standard_embodiments())[:3]
        ['arm2', 'arm3', 'arm3_long_base']
    """
    return dict(_standard())


def get_embodiment(name_or_arm: str | Embodiment) -> Embodiment:
    """An embodiment object from a standard name (or the object itself)."""
    if isinstance(name_or_arm, Embodiment):
        return name_or_arm
    arms = _standard()
    if name_or_arm not in arms:
        raise SpecError(f"unknown embodiment {name_or_arm!r}; use one of {sorted(arms)} or "
                        "give the arm inline (link_lengths, joint_limits, vel_limits, gripper)",
                        field="embodiment")
    return arms[name_or_arm]
