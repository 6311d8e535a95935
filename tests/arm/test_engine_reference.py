"""The batched engine against a straightforward reference formulation of one step.

The reference keeps every tensor batch-first, builds the Jacobian explicitly, solves the damped
least-squares system per Jacobian row, resets every field of every env with ``torch.where`` and
observes the post-reset state afresh (no precomputed first observations). The engine must agree
with it to float rounding on a mixed batch of tasks and embodiments.
"""

from __future__ import annotations

import pytest
import torch

from autoworld.envs.arm import scene as scene_mod
from autoworld.envs.arm.embodiment import N_MAX
from autoworld.envs.arm.engine import _FRESH, EE_RADIUS, SPILL_TOLERANCE, TASK_DIM, ArmEngine
from autoworld.envs.arm.kinematics import dls_step, forward_kinematics, jacobian_from_points
from autoworld.envs.arm.spec import TASKS, arm_world
from autoworld.rng import randint

ARMS = ["arm2", "arm3", "arm4", "arm5", "arm6", "arm7", "arm3_long_base", "arm4_stiff",
        "arm4_slow", "arm6_short"]


def _bw(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.view(-1, *([1] * (a.dim() - 1))), a, b)


def ref_ik(pts, q, lo, hi, dx, damping, margin=0.3):
    jac = jacobian_from_points(pts)
    dq0 = dls_step(jac, dx, damping)
    room = torch.where(dq0 > 0, hi - q, q - lo)
    return dls_step(jac, dx, damping, (room / margin).clamp(0.02, 1.0))


def ref_observe(eng: ArmEngine, s) -> dict[str, torch.Tensor]:
    p, is_ = eng.p, eng.is_task
    m = p["mask"].float()
    rng = (p["hi"] - p["lo"]).clamp(min=1e-6)
    qn = ((s.q - p["lo"]) * torch.where(p["mask"], 2.0 / rng, 0.0) - 1.0) * m
    joint_state = torch.stack((s.q.sin() * m, s.q.cos() * m, qn), -1)
    ee = torch.cat((s.pts[:, -1], s.magnet.float()[:, None]), 1)
    rows = s.cover.float().view(-1, 3, 3).mean(2)
    prog = torch.where(s.phase >= 2, 1.0, s.count.float() / p["dwell_steps"].float()) \
        * (s.phase >= 1)
    aux = torch.where(eng.is_disk_task[:, None], s.disk, s.aux)
    size = torch.where(is_["reach_around"], s.aux_r,
                       torch.where(is_["wipe"], s.half, p["goal_r"]))
    slow = torch.where(is_["dwell_slow"], p["slow"] / p["max_ee_step"], 0.0)
    f_a = s.via_done.float() + s.held.float() + prog + rows.mean(1)
    f_b = (s.phase == 2).float() + rows[:, 0]
    onehot = torch.nn.functional.one_hot(p["task"], len(TASKS)).float()
    task = torch.cat((onehot, s.goal, aux, size[:, None], f_a[:, None], f_b[:, None],
                      (slow + rows[:, 1])[:, None], rows[:, 2:3]), 1)
    return {"joint_state": joint_state, "joint_desc": eng.joint_desc,
            "joint_mask": eng.joint_mask, "ee": ee, "task": task}


def ref_reset(eng: ArmEngine, s, mask: torch.Tensor) -> None:
    idx = eng._bank_offset + randint(s.key, s.ep, 0xC0FFEE, eng.bank_size)
    for k, v in eng.bank.items():
        if not k.startswith("obs_"):
            setattr(s, k, _bw(mask, v[idx], getattr(s, k)))
    for k in _FRESH:
        cur = getattr(s, k)
        setattr(s, k, _bw(mask, torch.zeros_like(cur), cur))


def ref_step(eng: ArmEngine, s, a: torch.Tensor):
    """One step of the reference formulation on the batch-first state ``s`` (mutated)."""
    p, is_ = eng.p, eng.is_task
    a = a.clamp(-1.0, 1.0)
    if eng.interface == "ee_delta":
        dq = ref_ik(s.pts, s.q, p["lo"], p["hi"], a[:, :2] * p["max_ee_step"][:, None],
                    p["damping"])
        grip = a[:, 2] > 0
    else:
        dq = a[:, :N_MAX] * p["vel"]
        grip = a[:, N_MAX] > 0 if a.shape[1] > N_MAX else torch.zeros_like(s.magnet)
    dq = dq * eng.joint_mask
    ratio = (dq.abs() / p["vel"]).amax(1).clamp(min=1.0)
    q_new = torch.maximum(torch.minimum(s.q + dq / ratio[:, None], p["hi"]), p["lo"])
    pts = forward_kinematics(q_new, p["links"])
    ee_old, ee = s.pts[:, -1], pts[:, -1]
    blocked = is_["reach_around"] & ((ee - s.aux).norm(dim=1) < s.aux_r)
    q_new, pts = _bw(blocked, s.q, q_new), _bw(blocked, s.pts, pts)
    ee = pts[:, -1]
    reward = -blocked.float() * p["penalty"]
    s.dq = q_new - s.q
    joint_action = s.dq / p["vel"]
    s.q, s.pts = q_new, pts
    s.magnet = grip & p["gripper"]
    # disk: push and carry
    v = s.disk - ee
    dist = v.norm(dim=1, keepdim=True).clamp(min=1e-6)
    contact = (p["disk_r"] + EE_RADIUS)[:, None]
    shove = is_["push"] & (dist[:, 0] < contact[:, 0])
    s.disk = _bw(shove, ee + v / dist * contact, s.disk)
    pick = is_["pick_place"] & s.magnet & ~s.held & (dist[:, 0] < p["grab_r"])
    s.held = (s.held | pick) & s.magnet
    s.disk = _bw(s.held, ee, s.disk)
    s.via_done = s.via_done | (is_["via_point"] & ((ee - s.aux).norm(dim=1) < p["via_r"]))
    # dwell
    dwell = is_["dwell_slow"]
    spill = dwell & (s.phase == 2) & ((ee - ee_old).norm(dim=1) > p["slow"] * SPILL_TOLERANCE)
    near = (ee - s.aux).norm(dim=1) < p["dwell_r"]
    holding = dwell & (s.phase == 1)
    count = torch.where(holding, torch.where(near, s.count + 1, 0), s.count)
    phase = torch.where(dwell & (s.phase == 0) & near, 1, s.phase)
    s.phase = torch.where(holding & (count >= p["dwell_steps"]), 2, phase)
    s.count = count
    # wipe
    cells = scene_mod.wipe_cells(s.goal, s.half)
    reach = p["brush"] * s.half * (2.0 / 3.0)
    near = (cells - ee[:, None, :]).norm(dim=2) < reach[:, None]
    s.cover = s.cover | (near & is_["wipe"][:, None])
    tip = torch.where(eng.is_disk_task[:, None], s.disk, ee)
    at_goal = (tip - s.goal).norm(dim=1) < p["goal_r"]
    gate = ~(is_["via_point"] & ~s.via_done) & ~(is_["pick_place"] & s.held) \
        & ~(dwell & (s.phase < 2))
    success = torch.where(is_["wipe"], s.cover.all(1), at_goal & gate)
    phi = eng._potential(s, present=set(TASKS))
    reward = reward + p["shaping"] * (phi - s.phi) + p["bonus"] * success.float() \
        - spill.float()
    s.phi = phi
    s.t = s.t + 1
    terminated = success | spill
    truncated = (s.t >= p["max_steps"]) & ~terminated
    final_obs = ref_observe(eng, s)
    done = terminated | truncated
    s.ep = s.ep + done.long()
    ref_reset(eng, s, done)
    return ref_observe(eng, s), reward, terminated, truncated, final_obs, joint_action


@pytest.mark.parametrize(("interface", "sparse_reset"),
                         [("ee_delta", True), ("ee_delta", False), ("joint_velocity", True)])
def test_step_matches_the_reference_formulation(interface, sparse_reset):
    """20 steps of a mixed batch; ``sparse_reset=False`` runs the masked (device) reset."""
    worlds = [arm_world(t, a, interface=interface, max_steps=5 + i % 5)
              for i, (t, a) in enumerate((t, a) for t in TASKS for a in ARMS[:4])
              if not (t == "pick_place" and a == "arm5_nogrip")]
    worlds += [arm_world("reach", a, interface=interface, max_steps=9) for a in ARMS[4:]]
    B = 2 * len(worlds) + 5
    eng = ArmEngine(worlds, num_envs=B, seed=3)
    eng._sparse_reset = sparse_reset
    ref = eng.state.clone()
    ref = type(ref)(**{k: getattr(ref, k).contiguous() for k in vars(ref)})
    g = torch.Generator().manual_seed(0)
    resets = 0
    for _ in range(20):
        a = (torch.rand(B, eng.action_dim, generator=g) * 2.4 - 1.2)
        obs, r, term, trunc, info = eng.step(a)
        r_obs, r_r, r_term, r_trunc, r_final, r_ja = ref_step(eng, ref, a)
        assert torch.equal(term, r_term) and torch.equal(trunc, r_trunc)
        torch.testing.assert_close(r, r_r, atol=1e-5, rtol=0)
        torch.testing.assert_close(info["joint_action"], r_ja, atol=1e-5, rtol=0)
        for k in obs:
            assert obs[k].shape == r_obs[k].shape and obs[k].is_contiguous(), k
            torch.testing.assert_close(obs[k], r_obs[k], atol=1e-5, rtol=0)
            torch.testing.assert_close(info["final_obs"][k], r_final[k], atol=1e-5, rtol=0)
        for k in vars(ref):
            torch.testing.assert_close(getattr(eng.state, k), getattr(ref, k), atol=1e-5,
                                       rtol=0)
        resets += int((term | trunc).sum())
    assert resets > 2 * B  # the same-step autoreset really ran (every env, twice)
    assert obs["task"].shape == (B, TASK_DIM)
