"""The CUDA-graph step (``cuda_graph=True``) replays exactly the eager step.

On CPU the recording is emulated (``GraphedStep(emulate=True)``: the same static buffers, outputs
copied into the recorded tensors), which checks the state handling between replays; on a GPU the
real graph is recorded and replayed.
"""

from __future__ import annotations

import gc

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from autoworld.envs.catalogue import load_world
from autoworld.envs.grid.bucketed import make_engine
from autoworld.envs.grid.engine import NUM_ACTIONS
from autoworld.envs.grid.graphs import GraphedStep
from autoworld.errors import EngineError

pytestmark = pytest.mark.cuda_graph
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
MIX = ("DoorKey-8x8", "IceRink-9x9", "SlipperyLava-9x9", "WindyCoins-9x9")


def test_cuda_graph_on_cpu_names_the_fix():
    with pytest.raises(EngineError, match="needs a CUDA device.*leave it off on CPU"):
        make_engine(load_world("DoorKey-8x8"), num_envs=4, device="cpu", cuda_graph=True)


def test_the_environment_switch_applies_to_cuda_engines_only(monkeypatch):
    monkeypatch.setenv("AUTOWORLD_CUDA_GRAPH", "1")
    spec = load_world("DoorKey-8x8")
    assert make_engine(spec, num_envs=4, device="cpu")._graphed is None  # CPU: ignored
    worlds = [spec, load_world("IceRink-9x9")]
    mixed = make_engine(worlds, num_envs=8, device="cpu", bucketing="components")
    assert all(b._graphed is None for b in mixed.buckets)
    if torch.cuda.is_available():
        assert make_engine(spec, num_envs=4, device="cuda")._graphed is not None
        assert make_engine(spec, num_envs=4, device="cuda", cuda_graph=False)._graphed is None
    monkeypatch.setenv("AUTOWORLD_CUDA_GRAPH", "0")
    if torch.cuda.is_available():
        assert make_engine(spec, num_envs=4, device="cuda")._graphed is None


class _CaptureForbidden(TorchDispatchMode):
    """Records the ops a CUDA-graph capture cannot hold: outputs whose shape depends on the data
    (nonzero, boolean-mask indexing, unique, ...) and reads of a tensor's value on the host."""

    DATA_DEPENDENT = {"nonzero", "masked_select", "unique", "_unique2", "unique_consecutive",
                      "_local_scalar_dense", "repeat_interleave", "lift_fresh", "lift_fresh_copy"}

    def __init__(self) -> None:
        super().__init__()
        self.hits: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in self.DATA_DEPENDENT:
            self.hits.add(name)
        if name in ("index", "index_put", "index_put_") and any(
                i is not None and i.dtype == torch.bool for i in args[1]):
            self.hits.add(f"{name} with a boolean mask")
        return func(*args, **(kwargs or {}))


# the 12-world mix of docs/benchmarks.md and the stochastic worlds: every component kind
SCANNED = ("Checkpoints-9x9", "CoinMaze-11x11", "CrumblingBridge-9x9", "DoorKey-8x8",
           "FoggyRooms-11x11", "IceRink-9x9", "InverseLava-8x8", "MirrorLava-9x9",
           "NoisyMaze-9x9", "SlipperyDeceptive-7x7", "SlipperyLava-9x9", "Sokoban-7x7",
           "WindyCoins-9x9")


def test_the_step_never_needs_the_host():
    """A step must be recordable as a CUDA graph: no op whose output shape depends on values, no
    value read back to Python. Checked on CPU over 20 steps of each scanned world (episodes end
    and reset within them)."""
    gen = torch.Generator().manual_seed(0)
    found = {}
    for name in SCANNED:
        eng = make_engine(load_world(name), num_envs=16, device="cpu", seed=0)
        eng.reset()
        scan = _CaptureForbidden()
        for _ in range(20):
            actions = torch.randint(0, NUM_ACTIONS, (16,), generator=gen)
            with scan:
                eng.state, *_ = eng._step_fn(eng.state, actions, None)
        if scan.hits:
            found[name] = sorted(scan.hits)
    assert not found, f"steps a CUDA graph cannot record: {found}"


def test_the_scan_sees_what_capture_forbids():
    x = torch.tensor([0, 3, 0, 5])
    scan = _CaptureForbidden()
    with scan:
        _ = x[x > 0]
        _ = int(x.sum())
    assert scan.hits == {"index with a boolean mask", "_local_scalar_dense"}


def _run(worlds, mode: str, device: str = "cpu", steps: int = 80, num_envs: int = 96,
         compile_: bool = False, bucketing: str = "auto", concurrent: bool = False):
    """Every step's (previous obs, obs, reward, terminated, truncated, final obs) of a
    random-action rollout, with a re-seeded reset and pinned env keys half-way (the eager code
    paths that replace the state between replays). ``mode``: eager, graph or emulate."""
    eng = make_engine(worlds, num_envs=num_envs, device=device, seed=3,
                      cuda_graph=mode == "graph", compile=compile_, bucketing=bucketing,
                      concurrent=concurrent)
    if mode == "emulate":
        for program in getattr(eng, "buckets", [eng]):
            program._graphed = GraphedStep(program, emulate=True)
    gen = torch.Generator(device=device).manual_seed(0)
    obs = eng.reset()
    kept = []
    for t in range(steps):
        if t == steps // 2:
            obs = eng.reset(seed=11)
            eng.set_env_keys(torch.arange(num_envs, device=device) * 7 + 1)
        actions = torch.randint(0, NUM_ACTIONS, (num_envs,), device=device, generator=gen)
        prev = obs
        obs, reward, term, trunc, info = eng.step(actions)
        kept.append((prev, obs, reward, term, trunc, info.get("final_obs")))
    return kept, eng


def _assert_same(a, b):
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), k
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    elif a is not None:
        assert torch.equal(a, b)


@pytest.mark.parametrize("world", ["DoorKey-8x8", "Sokoban-7x7", "SlipperyLava-9x9",
                                   "WindyCoins-9x9", "CrumblingBridge-9x9"])
def test_emulated_replay_equals_the_eager_step(world):
    spec = load_world(world)
    eager, _ = _run(spec, "eager")
    replayed, eng = _run(spec, "emulate")
    assert eng._graphed.recorded
    # every step kept: observations of earlier steps are not overwritten by later replays
    _assert_same(eager, replayed)


def test_emulated_replay_of_a_bucketed_mix_equals_the_eager_step():
    worlds = [load_world(n) for n in MIX]
    eager, eng = _run(worlds, "eager", num_envs=64, bucketing="components")
    assert eng.num_buckets == 4
    _assert_same(eager, _run(worlds, "emulate", num_envs=64, bucketing="components")[0])


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("world", ["DoorKey-8x8", "Sokoban-7x7", "SlipperyLava-9x9",
                                   "WindyCoins-9x9"])
def test_graph_replay_equals_the_eager_step(world):
    spec = load_world(world)
    _assert_same(_run(spec, "eager", "cuda")[0], _run(spec, "graph", "cuda")[0])


@pytest.mark.cuda
@needs_cuda
def test_graph_replay_of_a_bucketed_mix_equals_the_eager_step():
    worlds = [load_world(n) for n in MIX]
    eager, eng = _run(worlds, "eager", "cuda", num_envs=64, bucketing="components")
    assert eng.num_buckets == 4
    _assert_same(eager, _run(worlds, "graph", "cuda", num_envs=64, bucketing="components")[0])


@pytest.mark.cuda
@pytest.mark.slow
@needs_cuda
def test_graph_of_a_compiled_step_equals_the_eager_step():
    spec = load_world("DoorKey-8x8")
    _assert_same(_run(spec, "eager", "cuda", steps=40)[0],
                 _run(spec, "graph", "cuda", steps=40, compile_=True)[0])


def test_recording_runs_with_the_collector_off(monkeypatch):
    """A collection during a capture could free a dead engine's graph, which invalidates the
    capture: the recorded body runs with the collector off, and it is on again afterwards."""
    eng = make_engine(load_world("DoorKey-8x8"), num_envs=8, device="cpu")
    eng._graphed = GraphedStep(eng, emulate=True)
    seen = []
    step = eng._step_fn

    def spy(*args):
        seen.append(gc.isenabled())
        return step(*args)

    monkeypatch.setattr(eng, "_step_fn", spy)
    eng.reset()
    eng.step(torch.zeros(8, dtype=torch.long))
    eng.step(torch.zeros(8, dtype=torch.long))
    assert seen[0] is False and all(seen[1:])  # recording, then the replays (emulated)
    assert len(seen) == 3
    assert gc.isenabled()


def test_a_compiled_engine_lifts_the_per_code_specialization_limit():
    """Every engine's compiled step specializes the same code object; dynamo's default of 8
    would drop the ninth engine of a process (a 12-bucket mix) back to the eager step."""
    import torch._dynamo

    make_engine(load_world("DoorKey-8x8"), num_envs=4, device="cpu", compile=True)
    assert torch._dynamo.config.recompile_limit >= 64


def test_concurrent_buckets_need_cuda():
    worlds = [load_world(n) for n in MIX]
    with pytest.raises(EngineError, match="CUDA streams.*leave it off"):
        make_engine(worlds, num_envs=8, device="cpu", bucketing="components", concurrent=True)


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("mode", ["eager", "graph"])
def test_buckets_on_their_own_streams_step_as_one_after_another(mode):
    worlds = [load_world(n) for n in MIX]
    eager, _ = _run(worlds, "eager", "cuda", num_envs=64, bucketing="components")
    streamed, eng = _run(worlds, mode, "cuda", num_envs=64, bucketing="components",
                         concurrent=True)
    assert eng.streams is not None and len(eng.streams) == 4
    _assert_same(eager, streamed)


class _FakeStream:
    """Stands in for a CUDA stream on CPU and logs the ordering calls (see below)."""

    def __init__(self, name: str, log: list) -> None:
        self.name, self.log = name, log

    def wait_stream(self, other) -> None:
        self.log.append(f"{self.name} waits {other.name}")


def test_concurrent_step_orders_the_streams_and_keeps_trajectories(monkeypatch):
    """The stream logic run on CPU with logged stand-ins: every bucket's stream waits for the
    caller's before its step, the caller waits for every bucket's after all of them, and the
    merged outputs equal the one-after-another step's."""
    worlds = [load_world(n) for n in MIX]
    eager, _ = _run(worlds, "eager", num_envs=64, bucketing="components")
    log: list[str] = []
    main = _FakeStream("main", log)
    current = [main]

    class _Use:
        def __init__(self, stream):
            self.stream = stream

        def __enter__(self):
            current.append(self.stream)
            log.append(f"on {self.stream.name}")

        def __exit__(self, *exc):
            current.pop()

    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: current[-1])
    monkeypatch.setattr(torch.cuda, "stream", _Use)
    real = make_engine

    def with_fake_streams(*args, **kwargs):
        eng = real(*args, **kwargs)
        eng.streams = [_FakeStream(f"s{b}", log) for b in range(eng.num_buckets)]
        return eng

    monkeypatch.setitem(globals(), "make_engine", with_fake_streams)
    streamed, eng = _run(worlds, "eager", num_envs=64, bucketing="components")
    _assert_same(eager, streamed)
    one_step = ([f"s{b} waits main" if i == 0 else f"on s{b}" for b in range(4) for i in (0, 1)]
                + [f"main waits s{b}" for b in range(4)])
    assert log[:len(one_step)] == one_step
    assert len(log) == 80 * len(one_step)  # every step of the rollout
