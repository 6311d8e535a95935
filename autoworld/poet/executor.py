"""Executors: where the batched work of an iteration runs, behind one interface.

- ``LocalExecutor`` (default): every ES step of every pair in ONE engine call on one device,
  every scoring request in one more.
- ``RayExecutor``: the same job functions as Ray tasks (one task per pair's ES step, scoring in
  chunks), retried when a worker dies. Because every env's randomness comes from its job (see
  ``autoworld.poet.rollout``), it returns the same numbers as the local executor for the same
  seed on CPU. Ray is imported lazily; install it with the ``ray`` extra.
"""

from __future__ import annotations

from typing import Protocol

from autoworld.learners.ppo import PPOConfig
from autoworld.poet.config import PoetError
from autoworld.poet.policy import PoetPolicy
from autoworld.poet.ppo_step import run_ppo_steps
from autoworld.poet.rollout import (
    EsJob,
    EsResult,
    EvalJob,
    RolloutEngine,
    WorldEntry,
    run_es_steps,
    run_evaluations,
)


class Executor(Protocol):
    """What the POET loop asks of a backend."""

    env_steps: int

    def es_steps(self, worlds: dict[str, WorldEntry], jobs: list[EsJob], population: int,
                 episodes: int, l2: float) -> list[EsResult]: ...

    def ppo_steps(self, worlds: dict[str, WorldEntry], jobs: list[EsJob], cfg: PPOConfig
                  ) -> list[EsResult]: ...

    def evaluate(self, worlds: dict[str, WorldEntry], jobs: list[EvalJob], eval_episodes: int,
                 levels: int) -> list[float]: ...

    def close(self) -> None: ...


class LocalExecutor:
    """All jobs of a request in one batched engine call on ``device``."""

    def __init__(self, policy: PoetPolicy, device: str = "cpu", bucketing: str = "auto",
                 cuda_graph: bool = False) -> None:
        self.runner = RolloutEngine(policy, device, bucketing=bucketing, cuda_graph=cuda_graph)

    @property
    def env_steps(self) -> int:
        return self.runner.env_steps

    def es_steps(self, worlds, jobs, population, episodes, l2):
        return run_es_steps(self.runner, worlds, jobs, population, episodes, l2)

    def ppo_steps(self, worlds, jobs, cfg):
        return run_ppo_steps(self.runner, worlds, jobs, cfg)

    def evaluate(self, worlds, jobs, eval_episodes, levels):
        return run_evaluations(self.runner, worlds, jobs, eval_episodes, levels)

    def close(self) -> None:
        pass


class SerialExecutor(LocalExecutor):
    """One engine call per job: the pair-after-pair baseline of the speed benchmark.

    Each pair keeps its own engines between calls, as a pair-by-pair implementation would (the
    engine cache grows to hold every job's engines instead of rebuilding them in turn).
    """

    def _hold(self, jobs) -> None:
        self.runner.cache_size = max(self.runner.cache_size, 2 * len(jobs) + 2)

    def es_steps(self, worlds, jobs, population, episodes, l2):
        self._hold(jobs)
        return [r for j in jobs for r in run_es_steps(self.runner, worlds, [j], population,
                                                      episodes, l2)]

    def ppo_steps(self, worlds, jobs, cfg):
        self._hold(jobs)
        return [r for j in jobs for r in run_ppo_steps(self.runner, worlds, [j], cfg)]

    def evaluate(self, worlds, jobs, eval_episodes, levels):
        self._hold(jobs)
        return [s for j in jobs for s in run_evaluations(self.runner, worlds, [j],
                                                         eval_episodes, levels)]


def _subset(worlds: dict[str, WorldEntry], keys) -> dict[str, WorldEntry]:
    return {k: worlds[k] for k in sorted(set(keys))}


def _remote_es(policy_args, device, worlds, jobs, population, episodes, l2, threads):
    import torch

    if threads:
        torch.set_num_threads(threads)
    runner = RolloutEngine(PoetPolicy(*policy_args), device)
    res = run_es_steps(runner, worlds, jobs, population, episodes, l2)
    return res, runner.env_steps


def _remote_ppo(policy_args, device, worlds, jobs, cfg, threads):
    import torch

    if threads:
        torch.set_num_threads(threads)
    runner = RolloutEngine(PoetPolicy(*policy_args), device)
    return run_ppo_steps(runner, worlds, jobs, cfg), runner.env_steps


def _remote_eval(policy_args, device, worlds, jobs, eval_episodes, levels, threads):
    import torch

    if threads:
        torch.set_num_threads(threads)
    runner = RolloutEngine(PoetPolicy(*policy_args), device)
    return run_evaluations(runner, worlds, jobs, eval_episodes, levels), runner.env_steps


class RayExecutor:
    """Jobs as Ray tasks (``max_retries`` re-runs a task whose worker died)."""

    def __init__(self, policy: PoetPolicy, device: str = "cpu", address: str | None = None,
                 num_cpus: int | None = None, max_retries: int = 3, eval_chunk: int = 16,
                 threads: int = 1) -> None:
        try:
            import ray
        except ImportError:
            raise PoetError("--backend ray needs Ray: pip install 'autoworld[ray]'") from None
        self.ray = ray
        if not ray.is_initialized():
            kwargs = {"address": address} if address else {"num_cpus": num_cpus}
            ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
        self._owns = address is None
        self.policy_args = (policy.S, policy.E, policy.H, policy.value_head)
        self.device = device
        self.eval_chunk = eval_chunk
        self.threads = threads
        self.env_steps = 0
        self.max_retries = max_retries
        self._es = self.task(_remote_es)
        self._eval = self.task(_remote_eval)
        self._ppo = self.task(_remote_ppo)

    def task(self, fn):
        """``fn`` as a Ray task that is re-run (up to ``max_retries`` times) when the worker
        running it dies; an exception raised by ``fn`` itself is a bug in the job and is not
        retried (``retry_exceptions=False``): it would fail again the same way."""
        return self.ray.remote(max_retries=self.max_retries, retry_exceptions=False)(fn)

    def ppo_steps(self, worlds, jobs, cfg):
        refs = [self._ppo.remote(self.policy_args, self.device, _subset(worlds, [j.world]), [j],
                                 cfg, self.threads) for j in jobs]
        out = []
        for res, steps in self.ray.get(refs):
            out += res
            self.env_steps += steps
        return out

    def es_steps(self, worlds, jobs, population, episodes, l2):
        refs = [self._es.remote(self.policy_args, self.device, _subset(worlds, [j.world]), [j],
                                population, episodes, l2, self.threads) for j in jobs]
        out = []
        for res, steps in self.ray.get(refs):
            out += res
            self.env_steps += steps
        return out

    def evaluate(self, worlds, jobs, eval_episodes, levels):
        chunks = [jobs[i:i + self.eval_chunk] for i in range(0, len(jobs), self.eval_chunk)]
        refs = [self._eval.remote(self.policy_args, self.device,
                                  _subset(worlds, [j.world for j in c]), c, eval_episodes,
                                  levels, self.threads) for c in chunks]
        out = []
        for res, steps in self.ray.get(refs):
            out += res
            self.env_steps += steps
        return out

    def close(self) -> None:
        if self._owns and self.ray.is_initialized():
            self.ray.shutdown()


def make_executor(backend: str, policy: PoetPolicy, device: str = "cpu",
                  address: str | None = None, bucketing: str = "auto",
                  cuda_graph: bool = False, **kwargs) -> Executor:
    """The executor named by ``backend`` (``local``, ``serial`` or ``ray``); ``bucketing`` is
    how the local engines group worlds and ``cuda_graph`` whether they replay recorded CUDA
    graphs on a CUDA device (both change speed, never results; Ray workers use neither)."""
    if backend == "local":
        return LocalExecutor(policy, device, bucketing, cuda_graph)
    if backend == "serial":
        return SerialExecutor(policy, device, bucketing, cuda_graph)
    if backend == "ray":
        return RayExecutor(policy, device, address, **kwargs)
    raise PoetError(f"backend: unknown backend {backend!r}; use local or ray")
