"""The cross-entropy method over a policy's flat weights.

A diagonal Gaussian (mean, std) over weights: sample a population, keep the elites (``select_best``
by return), refit mean and std to them, and add a decaying noise floor so that the search does
not collapse early (Szita & Lorincz 2006). The population is evaluated in one batched engine call.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from autoworld.learners.soe import Candidate, select_best


class CEMConfig(BaseModel):
    """Hyper-parameters of CEM."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    population: int = Field(16, ge=2, description="Samples per generation.")
    elite_frac: float = Field(0.25, gt=0, le=1, description="Fraction of samples kept as elites.")
    init_std: float = Field(0.1, gt=0, description="Initial standard deviation of every weight.")
    extra_std: float = Field(0.02, ge=0, description="Noise floor added to the refitted std.")
    extra_decay: float = Field(0.9, gt=0, le=1, description="Per-generation decay of the floor.")
    episodes: int = Field(8, ge=1, description="Episodes per sample per generation.")


class CEMOperator:
    """Proposes samples of the Gaussian (plus its mean, evaluated for the pool); ``update``
    refits the Gaussian to the elites."""

    def __init__(self, theta: torch.Tensor, config: CEMConfig, seed: int = 0) -> None:
        self.mean = theta.detach().clone().float()
        self.std = torch.full_like(self.mean, config.init_std)
        self.extra = config.extra_std
        self.config = config
        self.gen = torch.Generator().manual_seed(seed)

    def propose(self, selected: list[Candidate]) -> list[Candidate]:
        eps = torch.randn(self.config.population, self.mean.numel(), generator=self.gen)
        pop = self.mean[None] + self.std[None] * eps
        return [Candidate(params=p) for p in pop] + [
            Candidate(params=self.mean.clone(), state={"centre": True})]

    def update(self, evaluated: list[Candidate]) -> None:
        samples = evaluated[:-1]
        k = max(1, round(self.config.elite_frac * len(samples)))
        elites = torch.stack([c.params for c in select_best(samples, k)])
        self.mean = elites.mean(0)
        spread = elites.var(0, unbiased=False) if k > 1 else torch.zeros_like(self.mean)
        self.std = (spread + self.extra ** 2).sqrt()
        self.extra *= self.config.extra_decay
