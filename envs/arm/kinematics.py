"""Batched planar kinematics: forward kinematics, Jacobians, damped least-squares IK and the
reachable workspace of an embodiment.

Formulation (no Python loop over joints): the absolute link angles are the cumulative sum of
the joint angles; the joint points are the cumulative sum of the link vectors; the Jacobian's
column ``j`` is the 90-degree rotation of ``ee - p_j``. Padded joints have zero-length links, so
their points coincide with the end-effector and their Jacobian columns vanish.

The engine's step uses the batch-last variants (``*_bl``: batch in the last dimension), which run
several times faster on the CPU; the batch-first functions serve everything else.
"""

from __future__ import annotations

import math
from functools import cache

import torch
import torch.nn.functional as F

from autoworld.envs.arm.embodiment import N_MAX, Embodiment


def forward_kinematics(q: torch.Tensor, links: torch.Tensor) -> torch.Tensor:
    """Joint points ``(B, N+1, 2)`` of configurations ``q`` (B, N) with link lengths (B, N):
    point 0 is the base (origin), point N the end-effector."""
    phi = q.cumsum(1)  # (B, N) absolute link angles
    seg = torch.stack((phi.cos() * links, phi.sin() * links), -1)  # (B, N, 2)
    return F.pad(seg.cumsum(1), (0, 0, 1, 0))


def jacobian_from_points(pts: torch.Tensor) -> torch.Tensor:
    """End-effector Jacobian ``(B, 2, N)`` from joint points ``(B, N+1, 2)``."""
    diff = pts[:, -1:, :] - pts[:, :-1, :]  # (B, N, 2) ee - p_j
    return torch.stack((-diff[..., 1], diff[..., 0]), 1)


def dls_step(jac: torch.Tensor, dx: torch.Tensor, damping: torch.Tensor,
             weights: torch.Tensor | None = None) -> torch.Tensor:
    """Joint step ``(B, N)`` that moves the end-effector by about ``dx`` (B, 2).

    Weighted damped least squares: ``dq = W J^T (J W J^T + lambda^2 I)^-1 dx``, with the 2x2
    system solved in closed form. ``weights`` (B, N) slow joints near their limits.
    """
    j0, j1 = jac[:, 0], jac[:, 1]  # (B, N)
    if weights is not None:
        w0, w1 = j0 * weights, j1 * weights
    else:
        w0, w1 = j0, j1
    lam2 = damping * damping
    a11 = (w0 * j0).sum(1) + lam2
    a12 = (w0 * j1).sum(1)
    a22 = (w1 * j1).sum(1) + lam2
    det = a11 * a22 - a12 * a12
    x0 = (a22 * dx[:, 0] - a12 * dx[:, 1]) / det
    x1 = (a11 * dx[:, 1] - a12 * dx[:, 0]) / det
    return w0 * x0[:, None] + w1 * x1[:, None]


def ik_step(pts: torch.Tensor, q: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
            dx: torch.Tensor, damping: torch.Tensor, margin: float = 0.3) -> torch.Tensor:
    """Joint step ``(B, N)`` for an end-effector step ``dx`` (B, 2) from joint points ``pts``.

    Two damped least-squares solves: the first shows which way each joint would turn; the
    second weighs down joints that would turn into a limit less than ``margin`` radians away
    (weights in [0.02, 1]), so that the other joints take over the motion. Batch-first wrapper
    of :func:`ik_step_bl` (the result is a batch-first view).
    """
    return batch_last(ik_step_bl(batch_last(pts), batch_last(q), batch_last(lo),
                                 batch_last(hi), batch_last(dx), damping * damping, margin))


# ---------------------------------------------------------------- batch-last formulation
# The engine keeps its per-joint tensors batch-last, (..., B): elementwise work then runs over
# long contiguous rows, and broadcasting a per-env value across joints costs nothing extra
# (batch-first tensors put 7 joints or 2 coordinates in the innermost dimension, where the CPU
# kernels cannot vectorise a broadcast).


def batch_last(x: torch.Tensor) -> torch.Tensor:
    """The view of ``x`` with its dimensions reversed: batch-first ``(B, a, b)`` becomes
    batch-last ``(b, a, B)`` and back (1-d tensors are returned as they are)."""
    if x.dim() == 2:
        return x.t()
    if x.dim() == 3:
        return x.permute(2, 1, 0)
    return x if x.dim() < 2 else x.permute(tuple(reversed(range(x.dim()))))


def forward_kinematics_bl(q: torch.Tensor, links: torch.Tensor) -> torch.Tensor:
    """Joint points ``(2, N+1, B)`` of configurations ``q`` (N, B), link lengths (N, B)."""
    phi = q.cumsum(0)  # (N, B) absolute link angles
    seg = torch.stack((phi.cos(), phi.sin())) * links  # (2, N, B)
    return F.pad(seg.cumsum(1), (0, 0, 1, 0))


def _solve_rotated(g: torch.Tensor, rhs: torch.Tensor, lam2: torch.Tensor) -> torch.Tensor:
    """``(G + lam2 I)^-1 rhs`` for symmetric 2x2 ``g`` (2, 2, B), ``rhs`` (2, B): closed form."""
    a = g[0, 0] + lam2
    c = g[1, 1] + lam2
    b = g[0, 1]
    det = a * c - b * b
    return torch.stack((c * rhs[0] - b * rhs[1], a * rhs[1] - b * rhs[0])) / det


def ik_step_bl(pts: torch.Tensor, q: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
               dx: torch.Tensor, lam2: torch.Tensor, margin: float = 0.3) -> torch.Tensor:
    """Batch-last :func:`ik_step`: points (2, N+1, B), q / lo / hi (N, B), dx (2, B) and the
    squared damping ``lam2`` (B,); returns the joint step (N, B).

    With ``D`` (2, N, B) the vectors ``ee - p_j``, the Jacobian is ``J = R D^T`` (``R`` the
    90-degree rotation), so ``J W J^T + lambda^2 I = R (G + lambda^2 I) R^T`` with
    ``G = sum_j w_j D_j D_j^T`` and the step is ``dq = W D (G + lambda^2 I)^-1 R^T dx``: both
    solves share ``D`` and the outer products ``D_j D_j^T``.
    """
    d = pts[:, -1:] - pts[:, :-1]  # (2, N, B) ee - p_j
    outer = d[:, None] * d[None]  # (2, 2, N, B)
    rhs = torch.stack((dx[1], -dx[0]))  # (2, B) R^T dx
    r0 = _solve_rotated(outer.sum(2), rhs, lam2)
    turn = (d * r0[:, None]).sum(0) > 0  # (N, B) direction of the unweighted step
    room = torch.lerp(q - lo, hi - q, turn.to(q.dtype))  # exact select (weights 0 / 1)
    w = (room / margin).clamp(0.02, 1.0)
    r = _solve_rotated((outer * w).sum(2), rhs, lam2)
    return w * (d * r[:, None]).sum(0)


def padded(arm: Embodiment) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(links, lo, hi, vel) of one arm, each ``(N_MAX,)`` float32, zero past ``n_joints``."""
    d = arm.joint_desc()
    return d[:, 0], d[:, 1], d[:, 2], d[:, 3]


@cache
def workspace_radii(arm: Embodiment, samples: int = 256, iters: int = 300,
                    seed: int = 0) -> tuple[float, float]:
    """Innermost and outermost reachable distances ``(r_min, r_max)`` from the base.

    The distance of the end-effector from the base depends on joints 1..N-1 only and is
    continuous on their (connected) box of limits, so its range is an interval; when the base
    joint turns through the full circle the reachable set is the annulus ``r_min <= |p| <=
    r_max``. ``r_max`` is the total length (the zero pose is legal); ``r_min`` is minimised by
    projected gradient descent from ``samples`` random poses (closed form for two links).
    """
    links, lo, hi, _ = padded(arm)
    n = arm.n_joints
    r_max = float(links.sum())
    if n == 2:  # |l0 + l1 e^{i q1}| is smallest where cos q1 is: at an odd multiple of pi
        a, b = float(lo[1]), float(hi[1])  # in the limits, else at the limit whose cos is least
        odd_pi = math.pi + 2 * math.pi * math.ceil((a - math.pi) / (2 * math.pi))
        c = -1.0 if odd_pi <= b else min(math.cos(a), math.cos(b))
        l0, l1 = float(links[0]), float(links[1])
        return math.sqrt(max(l0 * l0 + l1 * l1 + 2 * l0 * l1 * c, 0.0)), r_max
    g = torch.Generator().manual_seed(seed)
    q = lo + (hi - lo) * torch.rand(samples, N_MAX, generator=g)
    q[:, 0] = 0.0
    L = links.expand(samples, N_MAX)
    for _ in range(iters):  # projected gradient descent on |ee|^2 (gradient 2 J^T ee)
        pts = forward_kinematics(q, L)
        grad = 2 * (jacobian_from_points(pts) * pts[:, -1, :, None]).sum(1)  # (S, N_MAX)
        q = torch.maximum(torch.minimum(q - 0.5 * grad, hi), lo)
    r_min = float(forward_kinematics(q, L)[:, -1].norm(dim=1).min())
    return (0.0 if r_min < 1e-3 else r_min), r_max


def base_turns_fully(arm: Embodiment) -> bool:
    """Whether the base joint covers (-pi, pi] (the workspace is then rotation-symmetric)."""
    lo, hi = arm.joint_limits[0]
    return lo <= -math.pi + 1e-6 and hi >= math.pi - 1e-6


def reachable(arm: Embodiment, points: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """Which of ``points`` (P, 2) the end-effector can reach with ``margin`` to spare  # (P,)

    Exact for arms whose base turns fully (annulus test). Otherwise each point is searched by
    damped least-squares IK from 16 spread start poses within the joint limits; a point is
    reachable when one of them converges to within 2 mm (a numerical check: it can miss
    points that only a rare pose reaches).
    """
    r_min, r_max = workspace_radii(arm)
    r = points.norm(dim=1)
    ok = (r >= r_min + margin) & (r <= r_max - margin)
    if base_turns_fully(arm) or len(points) == 0:
        return ok
    links, lo, hi, _ = padded(arm)
    starts = 16
    P = points.shape[0]
    g = torch.Generator().manual_seed(0)
    q = (lo + (hi - lo) * torch.rand(P * starts, N_MAX, generator=g))
    target = points.repeat_interleave(starts, 0)
    L = links.expand(P * starts, N_MAX)
    lam = torch.full((P * starts,), 0.05)
    for _ in range(300):
        pts = forward_kinematics(q, L)
        err = target - pts[:, -1]
        dq = dls_step(jacobian_from_points(pts), err.clamp(-0.05, 0.05), lam)
        q = torch.maximum(torch.minimum(q + dq, hi), lo)
    err = (target - forward_kinematics(q, L)[:, -1]).norm(dim=1).view(P, starts)
    return ok & (err.min(1).values < 2e-3)
