"""A mutation-only genetic algorithm over a policy's flat weights (Such et al. 2017, "Deep
Neuroevolution"): each generation keeps the elite unchanged and fills the rest with Gaussian
mutants of selected parents (truncation selection by default, tournament or Pareto selection as
the method chooses). The generation is evaluated in one batched engine call."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from autoworld.learners.soe import Candidate


class GAConfig(BaseModel):
    """Hyper-parameters of the genetic algorithm."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    population: int = Field(16, ge=2, description="Candidates per generation.")
    parents: int = Field(4, ge=1, description="Parents drawn by the selection rule.")
    sigma: float = Field(0.05, gt=0, description="Standard deviation of the weight mutation.")
    elites: int = Field(1, ge=0, description="Best candidates copied unchanged (re-evaluated).")
    episodes: int = Field(8, ge=1, description="Episodes per candidate per generation.")


class MutationOperator:
    """Proposes ``elites`` copies of the best selected parents and ``population - elites``
    Gaussian mutants of parents chosen uniformly among the selected. Generational: the proposals
    replace the pool."""

    generational = True

    def __init__(self, config: GAConfig, seed: int = 0) -> None:
        self.config = config
        self.gen = torch.Generator().manual_seed(seed)

    def propose(self, selected: list[Candidate]) -> list[Candidate]:
        ordered = sorted(selected, key=lambda c: -c.ret)
        n_elite = min(self.config.elites, len(ordered))
        out = [Candidate(params=c.params.clone(), parent=c.uid, state={"elite": True})
               for c in ordered[:n_elite]]
        picks = torch.randint(len(selected), (self.config.population - n_elite,),
                              generator=self.gen).tolist()
        for i in picks:
            parent = selected[i]
            noise = torch.randn(parent.params.shape, generator=self.gen)
            out.append(Candidate(params=parent.params + self.config.sigma * noise,
                                 parent=parent.uid))
        return out

    def update(self, evaluated: list[Candidate]) -> None:
        """Mutation keeps no state: selection of the next generation's parents does the work."""
