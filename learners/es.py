"""OpenAI-ES (Salimans et al. 2017) over a policy's flat weights.

Antithetic sampling (each noise vector eps is evaluated as theta + sigma*eps and theta - sigma*eps),
centred-rank fitness shaping, Adam on the estimated gradient, L2 weight decay. The whole perturbed
population (and the current centre) is evaluated in ONE batched engine call per generation by
``soe.PopulationEvaluator``. With ``pareto=True`` the fitness to rank is the Pareto rank over
(return, success, -episode length), return breaking ties within a rank.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from autoworld.learners.soe import Candidate, centred_ranks, pareto_ranks


class ESConfig(BaseModel):
    """Hyper-parameters of OpenAI-ES."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    population: int = Field(16, ge=2, description="Perturbed policies per generation (even: "
                            "population/2 antithetic pairs).")
    sigma: float = Field(0.1, gt=0, description="Standard deviation of the weight noise.")
    lr: float = Field(0.05, gt=0, description="Adam learning rate on the weights.")
    weight_decay: float = Field(0.005, ge=0, description="L2 coefficient subtracted from the "
                                "shaped gradient.")
    episodes: int = Field(8, ge=1, description="Episodes per perturbed policy per generation.")
    pareto: bool = Field(False, description="Rank by Pareto front over (return, success, "
                         "-length) instead of return alone.")


class Adam:
    """A minimal Adam ascent on one flat vector (the optimizer state stays inspectable)."""

    def __init__(self, dim: int, lr: float, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8) -> None:
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m = torch.zeros(dim)
        self.v = torch.zeros(dim)
        self.t = 0

    def step(self, grad: torch.Tensor) -> torch.Tensor:
        """The ascent step for ``grad`` (D,)."""
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * grad
        self.v = self.beta2 * self.v + (1 - self.beta2) * grad * grad
        m_hat = self.m / (1 - self.beta1 ** self.t)
        v_hat = self.v / (1 - self.beta2 ** self.t)
        return self.lr * m_hat / (v_hat.sqrt() + self.eps)


def antithetic_noise(half: int, dim: int, gen: torch.Generator) -> torch.Tensor:
    """(2*half, D) noise: rows 2i and 2i+1 are eps_i and -eps_i."""
    eps = torch.randn(half, dim, generator=gen)
    return torch.stack([eps, -eps], 1).reshape(2 * half, dim)


def es_gradient(noise: torch.Tensor, fitness: torch.Tensor, sigma: float) -> torch.Tensor:
    """The centred-rank ES gradient estimate from (N, D) antithetic noise and (N,) raw fitness:
    sum_i shaped_i * eps_i / (N * sigma)."""
    shaped = centred_ranks(fitness).to(noise.dtype)
    return shaped @ noise / (noise.shape[0] * sigma)


class ESOperator:
    """The optimization operator of OpenAI-ES: proposes the antithetic population around its
    centre, then (``update``) moves the centre with Adam. The last proposal is the unperturbed
    centre (evaluated for the pool, not used in the gradient)."""

    def __init__(self, theta: torch.Tensor, config: ESConfig, seed: int = 0) -> None:
        self.theta = theta.detach().clone().float()
        self.config = config
        self.adam = Adam(self.theta.numel(), config.lr)
        self.gen = torch.Generator().manual_seed(seed)
        self._noise: torch.Tensor | None = None

    def propose(self, selected: list[Candidate]) -> list[Candidate]:
        half = max(1, self.config.population // 2)
        self._noise = antithetic_noise(half, self.theta.numel(), self.gen)
        pop = self.theta[None] + self.config.sigma * self._noise
        cands = [Candidate(params=p) for p in pop]
        cands.append(Candidate(params=self.theta.clone(), state={"centre": True}))
        return cands

    def fitness(self, evaluated: list[Candidate]) -> torch.Tensor:
        """Raw fitness of the perturbed members (N,) to be centred-ranked."""
        ret = torch.tensor([c.ret for c in evaluated], dtype=torch.float64)
        if not self.config.pareto:
            return ret
        ranks = torch.from_numpy(pareto_ranks(torch.tensor(
            [c.objectives() for c in evaluated], dtype=torch.float64).numpy())).double()
        spread = (ret - ret.min()) / (ret.max() - ret.min() + 1e-12)  # in [0, 1]
        return -ranks + 0.5 * spread  # a better rank always wins; return orders within a rank

    def update(self, evaluated: list[Candidate]) -> None:
        assert self._noise is not None, "update() follows propose()"
        members = evaluated[:-1]
        grad = es_gradient(self._noise, self.fitness(members), self.config.sigma).float()
        grad = grad - self.config.weight_decay * self.theta
        self.theta = self.theta + self.adam.step(grad)
