"""Synthetic demonstration sets with the DemoSet contract's fields and shapes.

``pure_rate_demos``: every episode follows the same kind of straight path from a start to a
goal; operators differ only in speed (action-rate multimodality), so the observation (end
effector and goal) never reveals the rate. ``spatial_demos``: one speed, but the path passes an
obstacle on the left or on the right (spatial multimodality).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

N_MAX, DESC, TASK = 7, 6, 16
STEP = 0.05  # end-effector displacement of a unit action


@dataclass
class FakeDemos:
    joint_state: torch.Tensor
    joint_desc: torch.Tensor
    joint_mask: torch.Tensor
    ee: torch.Tensor
    task: torch.Tensor
    ee_action: torch.Tensor
    joint_action: torch.Tensor
    valid: torch.Tensor
    length: torch.Tensor
    success: torch.Tensor
    speed: torch.Tensor
    side: torch.Tensor
    operator: torch.Tensor
    scene: torch.Tensor
    world: list[str] = field(default_factory=list)
    task_name: list[str] = field(default_factory=list)
    embodiment: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.valid.shape[0])


def joint_desc(n: int) -> torch.Tensor:
    """A plausible (N_MAX, DESC) description of an n-joint arm of reach 1."""
    d = torch.zeros(N_MAX, DESC)
    for i in range(n):
        d[i] = torch.tensor([1.0 / n, -math.pi, math.pi, 0.2, i / (N_MAX - 1), float(i == n - 1)])
    return d


def _pack(paths: list[torch.Tensor], goals: list[torch.Tensor], n_joints: int, speed, side,
          operator) -> FakeDemos:
    """Episodes from end-effector waypoint paths (each (S_e + 1, 2))."""
    E = len(paths)
    S = max(p.shape[0] - 1 for p in paths)
    ee = torch.zeros(E, S, 3)
    act = torch.zeros(E, S, 3)
    task = torch.zeros(E, S, TASK)
    valid = torch.zeros(E, S, dtype=torch.bool)
    length = torch.zeros(E, dtype=torch.long)
    for i, (p, g) in enumerate(zip(paths, goals, strict=True)):
        n = p.shape[0] - 1
        ee[i, :n, :2] = p[:-1]
        act[i, :n, :2] = (p[1:] - p[:-1]) / STEP
        task[i, :n, :2] = g
        valid[i, :n] = True
        length[i] = n
    # joint state: a smooth function of the end-effector position only (never of speed)
    ang = torch.stack([ee[..., 0] * (k + 1) + ee[..., 1] for k in range(N_MAX)], -1)
    mask = torch.zeros(N_MAX, dtype=torch.bool)
    mask[:n_joints] = True
    js = torch.stack([ang.sin(), ang.cos(), ang.tanh()], -1) * mask[:, None]
    return FakeDemos(joint_state=js, joint_desc=joint_desc(n_joints).expand(E, -1, -1).clone(),
                     joint_mask=mask.expand(E, -1).clone(), ee=ee, task=task, ee_action=act,
                     joint_action=torch.zeros(E, S, N_MAX), valid=valid, length=length,
                     success=torch.ones(E, dtype=torch.bool),
                     speed=torch.as_tensor(speed, dtype=torch.float32),
                     side=torch.as_tensor(side, dtype=torch.long),
                     operator=torch.as_tensor(operator, dtype=torch.long),
                     scene=torch.arange(E), world=["fake"] * E, task_name=["reach"] * E,
                     embodiment=[f"arm{n_joints}"] * E)


def _line(a: torch.Tensor, b: torch.Tensor, rate: float) -> torch.Tensor:
    """Waypoints from a to b, ``rate * STEP`` apart (the last step shorter)."""
    d = float((b - a).norm())
    n = max(1, math.ceil(d / (rate * STEP)))
    s = torch.linspace(0, 1, n + 1)[:, None]
    return a + s * (b - a)


def pure_rate_demos(episodes: int = 60, speeds=(0.6, 1.0, 1.6), base_rate: float = 0.45,
                    n_joints: int = 3, seed: int = 0) -> FakeDemos:
    """Same paths, different operator speeds: episode i uses operator i % len(speeds)."""
    g = torch.Generator().manual_seed(seed)
    paths, goals, speed, op = [], [], [], []
    for i in range(episodes):
        start = torch.tensor([-0.5, -0.3]) + 0.1 * torch.rand(2, generator=g)
        goal = torch.tensor([0.5, 0.3]) + 0.1 * torch.rand(2, generator=g)
        k = i % len(speeds)
        paths.append(_line(start, goal, base_rate * speeds[k]))
        goals.append(goal)
        speed.append(speeds[k])
        op.append(k)
    return _pack(paths, goals, n_joints, speed, [0] * episodes, op)


def spatial_demos(episodes: int = 40, rate: float = 0.5, n_joints: int = 4, seed: int = 0,
                  noise: float = 0.05) -> FakeDemos:
    """One speed; the path passes an obstacle at the origin on the left (x < 0, side -1) or
    the right (side +1), alternately. ``noise``: spread of the start and goal positions."""
    g = torch.Generator().manual_seed(seed)
    paths, goals, side = [], [], []
    for i in range(episodes):
        s = -1 if i % 2 == 0 else 1
        start = torch.tensor([0.0, -0.6]) + noise * torch.randn(2, generator=g)
        goal = torch.tensor([0.0, 0.6]) + noise * torch.randn(2, generator=g)
        via = torch.tensor([0.35 * s, 0.0])
        p = torch.cat([_line(start, via, rate)[:-1], _line(via, goal, rate)])
        paths.append(p)
        goals.append(goal)
        side.append(s)
    return _pack(paths, goals, n_joints, [1.0] * episodes, side, [0] * episodes)
