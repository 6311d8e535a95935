"""Forward kinematics, Jacobians, IK and the reachability check on analytic cases."""

from __future__ import annotations

import math

import pytest
import torch

from autoworld.envs.arm.embodiment import N_MAX, Embodiment, standard_embodiments
from autoworld.envs.arm.engine import ArmEngine
from autoworld.envs.arm.kinematics import (
    dls_step,
    forward_kinematics,
    ik_step,
    jacobian_from_points,
    padded,
    reachable,
    workspace_radii,
)
from autoworld.envs.arm.spec import arm_world

ARM2 = standard_embodiments()["arm2"]


def _pad(q: list[float]) -> torch.Tensor:
    out = torch.zeros(1, N_MAX)
    out[0, : len(q)] = torch.tensor(q)
    return out


def test_fk_two_link_closed_form():
    l0, l1 = 0.6, 0.4
    links = _pad([l0, l1])
    for q0, q1 in [(0.0, 0.0), (0.3, 1.2), (-1.0, -2.0), (2.5, 0.7)]:
        pts = forward_kinematics(_pad([q0, q1]), links)[0]
        elbow = (l0 * math.cos(q0), l0 * math.sin(q0))
        ee = (elbow[0] + l1 * math.cos(q0 + q1), elbow[1] + l1 * math.sin(q0 + q1))
        assert pts[0].tolist() == [0.0, 0.0]
        assert pts[1].tolist() == pytest.approx(elbow, abs=1e-6)
        assert pts[-1].tolist() == pytest.approx(ee, abs=1e-6)
        assert torch.allclose(pts[2:], pts[-1].expand(N_MAX - 1, 2))  # padding sits at the ee


def test_jacobian_matches_finite_differences():
    arm = standard_embodiments()["arm5"]
    links = padded(arm)[0][None]
    q = _pad([0.3, -0.5, 0.8, 0.2, -1.1])
    jac = jacobian_from_points(forward_kinematics(q, links))[0]  # (2, N_MAX)
    eps = 1e-3
    for j in range(N_MAX):
        dq = torch.zeros_like(q)
        dq[0, j] = eps
        num = (forward_kinematics(q + dq, links)[0, -1]
               - forward_kinematics(q - dq, links)[0, -1]) / (2 * eps)
        assert jac[:, j].tolist() == pytest.approx(num.tolist(), abs=1e-3)
    assert jac[:, 5:].abs().max() == 0  # padded joints have no effect


def test_dls_reaches_analytic_two_link_solution():
    l0, l1 = 0.5, 0.5
    links = _pad([l0, l1])
    target = torch.tensor([[0.55, 0.35]])
    # closed-form IK, elbow-up branch (positive elbow angle)
    r2 = float((target ** 2).sum())
    q1 = math.acos((r2 - l0 * l0 - l1 * l1) / (2 * l0 * l1))
    q0 = math.atan2(0.35, 0.55) - math.atan2(l1 * math.sin(q1), l0 + l1 * math.cos(q1))
    q = _pad([0.2, 1.0])
    for _ in range(200):
        pts = forward_kinematics(q, links)
        err = (target - pts[:, -1]).clamp(-0.05, 0.05)
        q = q + dls_step(jacobian_from_points(pts), err, torch.tensor([0.01]))
    assert forward_kinematics(q, links)[0, -1].tolist() == pytest.approx([0.55, 0.35], abs=1e-4)
    assert q[0, :2].tolist() == pytest.approx([q0, q1], abs=1e-3)


def test_ik_step_moves_the_end_effector_by_dx():
    eng = ArmEngine(arm_world("reach", "arm4"), num_envs=1)
    s, p = eng.state, eng.p
    dx = torch.tensor([[0.01, -0.005]])
    dq = ik_step(s.pts, s.q, p["lo"], p["hi"], dx, torch.tensor([0.01]))
    moved = eng.forward_kinematics(s.q + dq)[0, -1] - s.pts[0, -1]
    assert moved.tolist() == pytest.approx(dx[0].tolist(), abs=5e-4)


@pytest.mark.parametrize("interface", ["ee_delta", "joint_velocity"])
def test_joint_and_velocity_limits_hold(interface):
    worlds = [arm_world("reach", a, interface=interface, max_steps=500)
              for a in ("arm2", "arm4_stiff", "arm4_slow", "arm7")]
    eng = ArmEngine(worlds, num_envs=16, seed=3)
    lo, hi, vel = eng.p["lo"], eng.p["hi"], eng.p["vel"]
    g = torch.Generator().manual_seed(0)
    cols = eng.action_dim
    hit_limit = torch.zeros(16, N_MAX, dtype=torch.bool)
    for _ in range(150):
        # biased random actions drive joints into their limits
        a = (torch.rand(16, cols, generator=g) * 2 - 0.6).clamp(-1, 1) * 3
        q_before = eng.state.q.clone()
        eng.step(a)
        q = eng.state.q
        assert (q >= lo - 1e-6).all() and (q <= hi + 1e-6).all()
        step = (q - q_before).abs()
        fresh = eng.state.t == 0  # envs reset this step jump to a new start pose
        assert (step[~fresh] <= vel[~fresh] * (1 + 1e-5)).all()
        hit_limit |= (q >= hi - 1e-4) | (q <= lo + 1e-4)
    assert (q[:, 2:] == 0).logical_or(eng.joint_mask[:, 2:]).all()  # padded joints stay 0
    assert hit_limit.any()  # the limits were really exercised


def test_workspace_radii_two_link_analytic():
    r_min, r_max = workspace_radii(ARM2)
    assert r_max == pytest.approx(1.0)
    # the elbow folds to +-2.6 rad at most: |l0 + l1 e^{i 2.6}|
    assert r_min == pytest.approx(math.sqrt(0.5 + 0.5 * math.cos(2.6)), abs=1e-6)
    arm3 = standard_embodiments()["arm3"]
    assert workspace_radii(arm3)[0] == 0.0  # three equal links fold onto the base


def test_reachability_check_is_right():
    r_min = math.sqrt(0.5 + 0.5 * math.cos(2.6))
    pts = torch.tensor([[0.5, 0.0], [0.0, -0.9], [-0.99, 0.0],  # reachable
                        [r_min - 0.02, 0.0], [0.0, 0.1], [1.02, 0.0], [0.8, 0.8]])  # not
    assert reachable(ARM2, pts).tolist() == [True, True, True, False, False, False, False]
    # the check agrees with where IK really gets to
    for p, ok in zip(pts.tolist(), reachable(ARM2, pts).tolist(), strict=True):
        q = _pad([math.atan2(p[1], p[0]) - 0.5, 1.0])
        links = _pad([0.5, 0.5])
        lo, hi = padded(ARM2)[1][None], padded(ARM2)[2][None]
        for _ in range(300):
            pts_ = forward_kinematics(q, links)
            err = (torch.tensor([p]) - pts_[:, -1]).clamp(-0.05, 0.05)
            q = (q + ik_step(pts_, q, lo, hi, err, torch.tensor([0.01]))).clamp(lo, hi)
        got = float((forward_kinematics(q, links)[0, -1] - torch.tensor(p)).norm())
        assert (got < 2e-3) == ok, (p, got)


def test_reachability_with_a_limited_base_is_searched_numerically():
    arm = Embodiment("narrow", (0.5, 0.5), ((-0.5, 0.5), (-2.6, 2.6)), (0.1, 0.1))
    # (0.8, 0) needs the base at +-0.64 rad (elbow 1.29 rad): just outside +-0.5
    pts = torch.tensor([[0.9, 0.0], [0.6, 0.3], [0.8, 0.0], [-0.9, 0.0], [0.0, -0.9]])
    assert reachable(arm, pts).tolist() == [True, True, False, False, False]


@pytest.mark.parametrize("elbow", [(-3.0, 1.0), (-1.0, 3.0), (-2.0, 2.5), (-math.pi, math.pi)])
def test_two_link_inner_radius_matches_brute_force(elbow):
    arm = Embodiment("two", (0.5, 0.4), ((-math.pi, math.pi), elbow), (0.15, 0.15))
    q = torch.linspace(elbow[0], elbow[1], 200_001, dtype=torch.float64)
    brute = float(torch.sqrt(0.25 + 0.16 + 0.4 * torch.cos(q)).min())
    # the legal elbow angle nearest +-pi may be the lower limit (it used to look at +pi only)
    assert workspace_radii(arm)[0] == pytest.approx(brute, abs=1e-6)
