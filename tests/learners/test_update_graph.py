"""Minibatch updates replayed as recorded CUDA graphs (``learners/update_graph.py``): PPO's and
behaviour cloning's.

On CPU the recording is emulated (``GraphedUpdate(emulate=True)``: the update runs on the static
buffers a recording would read), which checks the buffer handling and when an update is
recorded again; on a GPU the real graph is recorded and replayed against the eager update.
"""

from __future__ import annotations

import pytest
import torch

from autoworld.envs.catalogue import load_world
from autoworld.learners.ppo import PPO, PPOConfig
from autoworld.learners.update_graph import GraphedUpdate

pytestmark = pytest.mark.cuda_graph
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CFG = PPOConfig(num_envs=16, num_steps=16, num_minibatches=4, update_epochs=2)


def _learner(device: str = "cpu", graph: str = "off", cfg: PPOConfig = CFG) -> PPO:
    """graph: off (eager), emulate (the CPU stand-in) or record (a real CUDA graph)."""
    learner = PPO(load_world("Empty-6x6"), cfg, total_steps=10_000, device=device, seed=3,
                  graph_updates=graph == "record")
    if graph == "emulate":
        learner._graph = learner.graphed_update(emulate=True)
    return learner


def _weights(learner: PPO) -> list[torch.Tensor]:
    return [p.detach().cpu().clone() for p in learner.policy.parameters()]


def test_emulated_recording_matches_the_eager_update_exactly() -> None:
    eager, graphed = _learner(), _learner(graph="emulate")
    for _ in range(3):
        a, b = eager.iterate(), graphed.iterate()
        assert a == pytest.approx(b, abs=0, nan_ok=True)
    for x, y in zip(_weights(eager), _weights(graphed), strict=True):
        assert torch.equal(x, y)
    assert graphed._graph.records == 1  # one minibatch size, nothing changed: recorded once


def test_an_update_is_recorded_again_when_what_it_baked_in_changes() -> None:
    learner = _learner(graph="emulate")
    learner.iterate()
    assert learner._graph.records == 1
    for group in learner.optimizer.param_groups:  # PBT's explore, lr annealing
        group["lr"] = 0.5 * group["lr"]
    learner.iterate()
    assert learner._graph.records == 2
    learner.config = learner.config.model_copy(update={"ent_coef": 0.02})  # PBT's explore
    learner.iterate()
    assert learner._graph.records == 3
    # PBT's exploit and a resume replace the optimizer's state tensors
    learner.optimizer.load_state_dict(learner.state_dict()["optimizer"])  # a deep copy
    learner.iterate()
    assert learner._graph.records == 4
    learner.iterate()
    assert learner._graph.records == 4


def test_minibatches_of_two_sizes_keep_one_recording_each() -> None:
    cfg = CFG.model_copy(update={"num_steps": 15, "num_minibatches": 7})  # 240 = 2 x 35 + 5 x 34
    eager, graphed = _learner(cfg=cfg), _learner(graph="emulate", cfg=cfg)
    for _ in range(2):
        eager.iterate(), graphed.iterate()
    assert sorted(graphed._graph.recordings) == [34, 35] and graphed._graph.records == 2
    for x, y in zip(_weights(eager), _weights(graphed), strict=True):
        assert torch.equal(x, y)


def test_a_checkpoint_of_a_graphed_learner_resumes_eagerly() -> None:
    """A recording sets Adam's ``capturable``; a checkpoint leaves it off, so that it resumes on
    any device (capturable Adam refuses CPU parameters)."""
    learner = _learner(graph="emulate")
    learner.iterate()
    for group in learner.optimizer.param_groups:
        group["capturable"] = True  # what a recording on CUDA does
    state = learner.state_dict()
    assert all(not g["capturable"] for g in state["optimizer"]["param_groups"])
    resumed = _learner()
    resumed.load_state_dict(state)
    resumed.iterate()


def test_graphed_updates_on_cpu_name_the_fix(monkeypatch) -> None:
    with pytest.raises(ValueError, match="needs a CUDA device.*leave AUTOWORLD_CUDA_GRAPH_UPDATES"):
        _learner(graph="record")
    learner = _learner()
    plain = torch.optim.Adam(learner.policy.parameters())  # its step count lives on the host
    with pytest.raises(ValueError, match="fused=True"):
        GraphedUpdate(learner.policy, plain, lambda *a: torch.zeros(1), emulate=True)
    monkeypatch.setenv("AUTOWORLD_CUDA_GRAPH_UPDATES", "1")
    assert _learner()._graph is None  # the switch applies to CUDA learners only
    if torch.cuda.is_available():
        assert _learner("cuda")._graph is not None
        annealed = CFG.model_copy(update={"anneal_lr": True})  # would record every iteration
        assert _learner("cuda", cfg=annealed)._graph is None


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("minibatches", [4, 7])  # 7: two minibatch sizes, two recordings
def test_recorded_update_on_cuda_matches_the_eager_update(minibatches: int) -> None:
    """The replayed update runs the eager update's kernels: the same weights after a few
    iterations (compared with a tolerance for the GPU's reduction order), also after a change
    of learning rate, which records again."""
    cfg = CFG.model_copy(update={"num_steps": 15, "num_minibatches": minibatches})
    eager, graphed = _learner("cuda", cfg=cfg), _learner("cuda", graph="record", cfg=cfg)
    sizes = 1 if 240 % minibatches == 0 else 2
    for _ in range(3):
        a, b = eager.iterate(), graphed.iterate()
    assert a["policy_loss"] == pytest.approx(b["policy_loss"], rel=1e-4, abs=1e-6)
    for x, y in zip(_weights(eager), _weights(graphed), strict=True):
        assert torch.allclose(x, y, rtol=1e-4, atol=1e-6)
    assert graphed._graph.records == sizes
    for learner in (eager, graphed):  # a new learning rate records again
        for group in learner.optimizer.param_groups:
            group["lr"] = 0.5 * group["lr"]
        learner.iterate()
    assert graphed._graph.records == 2 * sizes
    for x, y in zip(_weights(eager), _weights(graphed), strict=True):
        assert torch.allclose(x, y, rtol=1e-4, atol=1e-6)


@pytest.mark.cuda
@needs_cuda
def test_pbt_with_recorded_updates_runs_on_cuda(monkeypatch) -> None:
    from autoworld.learners.pbt import PBTConfig, run_pbt

    monkeypatch.setenv("AUTOWORLD_CUDA_GRAPH_UPDATES", "1")
    best, logs = run_pbt(load_world("Empty-6x6"), CFG, PBTConfig(population=2, interval=1),
                         total_steps=4 * 16 * 16 * 2, device="cuda", seed=0)
    assert best._graph is not None and best._graph.records >= 1 and logs
    assert all(torch.isfinite(p).all() for p in best.policy.parameters())


def _bc_policy_and_demos():
    from autoworld.envs.grid.engine import GridEngine
    from autoworld.learners.bc import collect_demonstrations
    from autoworld.learners.policies import PolicyConfig, policy_from_spec

    spec = load_world("Empty-6x6")
    demos = collect_demonstrations(spec, levels=8, seed=1)
    obs_spec = GridEngine(spec, num_envs=1).observation_spec()
    torch.manual_seed(0)
    return policy_from_spec(obs_spec, PolicyConfig()), demos


def test_emulated_recording_of_behaviour_cloning_matches_the_eager_steps() -> None:
    """BC's last minibatch is smaller (N not a multiple of 32): two sizes, two recordings."""
    import copy

    from autoworld.learners.bc import BCConfig, clone

    policy, demos = _bc_policy_and_demos()
    cfg = BCConfig(epochs=3, batch_size=32)
    assert demos.actions.shape[0] % 32  # the test needs a short last minibatch
    twin = copy.deepcopy(policy)
    eager = clone(policy, demos, cfg, seed=2)
    graphed = clone(twin, demos, cfg, seed=2, emulate_graph=True)
    assert eager == graphed
    for x, y in zip(policy.parameters(), twin.parameters(), strict=True):
        assert torch.equal(x, y)


@pytest.mark.cuda
@needs_cuda
def test_recorded_behaviour_cloning_on_cuda_matches_the_eager_steps() -> None:
    import copy

    from autoworld.learners.bc import BCConfig, clone

    policy, demos = _bc_policy_and_demos()
    policy = policy.cuda()
    twin = copy.deepcopy(policy)
    cfg = BCConfig(epochs=5, batch_size=32)
    eager = clone(policy, demos, cfg, seed=2)
    graphed = clone(twin, demos, cfg, seed=2, graph_updates=True)
    assert eager == pytest.approx(graphed, rel=1e-4, abs=1e-6)
    for x, y in zip(policy.parameters(), twin.parameters(), strict=True):
        assert torch.allclose(x, y, rtol=1e-4, atol=1e-6)
