"""Configuration of a POET run: every constant of the loop is a documented option.

Defaults follow POET (Wang et al. 2019) and Enhanced POET (Wang et al. 2020), scaled to grid
worlds where a score is the oracle-normalized gain ``(R - R_rand) / (R_opt - R_rand)`` in
[0, 1] instead of a BipedalWalker return: the reproduction threshold 200 of 300 becomes 0.6,
the minimal criterion [25, 340] becomes [0.05, 0.95] (a child must be neither trivial nor
hopeless for its parent's agent), and "solved" is 0.9.

``PoetConfig.quick()`` is the short preset that ``autoworld evolve`` runs with no arguments.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from autoworld.errors import AutoworldError
from autoworld.learners.ppo import PPOConfig


class PoetError(AutoworldError):
    """A POET run was configured or resumed with inconsistent inputs; the message says what to
    change."""


class CheckpointError(PoetError):
    """A checkpoint is missing, truncated or corrupted."""


class PoetConfig(BaseModel):
    """Every option of the POET loop."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # ---------------------------------------------------------------- run
    iterations: int = Field(200, ge=1, description="POET iterations to run in total.")
    seed: int = Field(0, ge=0, description="Root seed; every random stream is derived from it.")
    device: str = Field("cpu", description="Torch device of the batched rollouts.")
    world: str = Field("Empty-6x6", description="The initial world: a catalogue name or a spec "
                       "file (ignored when `theme` is set).")
    theme: str | None = Field(None, description="Generate the initial world from this sentence "
                              "with the generator backend instead of loading `world`.")
    generator: Literal["procedural", "openai", "transformers"] = Field(
        "procedural", description="Generator backend that mutates worlds (procedural: the "
        "offline `mutate`; LLM backends get the parent spec and propose a harder variant).")
    generator_model: str | None = Field(None, description="Model name (openai) or local path "
                                        "(transformers) of an LLM generator backend.")
    learner: Literal["es", "ppo"] = Field("es", description="Optimizer of every pair: OpenAI-ES "
                                          "or PPO, both batched over all pairs.")
    backend: Literal["local", "ray"] = Field("local", description="Executor: one batched call "
                                             "on one device, or Ray tasks.")
    address: str | None = Field(None, description="Ray cluster address (None: start a local "
                                "instance).")
    bucketing: Literal["auto", "components", "none"] = Field(
        "auto", description="How a batched engine groups worlds (envs/grid/bucketed.py): one "
        "program per component set, or one program for all ('none', often faster for small "
        "populations of close mutants). Changes speed only, never results.")
    cuda_graph: bool = Field(False, description="On a CUDA device, replay every engine step as "
                             "a recorded CUDA graph (envs/grid/graphs.py; ignored on CPU). "
                             "Changes speed only, never results.")

    # ---------------------------------------------------------------- population
    max_active: int = Field(20, ge=1, le=1000, description="Cap on active (world, agent) pairs; "
                            "beyond it the oldest pairs move to the archive (POET: 20).")
    reproduce_every: int = Field(25, ge=1, description="Iterations between reproduction steps "
                                 "(POET: 25).")
    transfer_every: int = Field(25, ge=1, description="Iterations between transfer attempts "
                                "(POET: 25).")
    repro_threshold: float = Field(0.6, description="Normalized score a pair must reach to be "
                                   "eligible to reproduce (POET: 200 of 300).")
    mutation_attempts: int = Field(8, ge=1, description="Mutation attempts M per reproduction "
                                   "step (children proposed).")
    max_admitted: int = Field(1, ge=1, description="Children K admitted per reproduction step, "
                              "the most novel first (POET: 1).")
    mutation_strength: float = Field(0.5, ge=0.0, le=1.0, description="Edit strength passed to "
                                     "`mutate`.")
    mc_low: float = Field(0.05, description="Minimal criterion, lower bound: the parent agent's "
                          "normalized score on a child must be at least this.")
    mc_high: float = Field(0.95, description="Minimal criterion, upper bound: and at most this.")
    solved_threshold: float = Field(0.9, description="Normalized score at which a world counts "
                                    "as solved (ANNECS).")
    novelty_k: int = Field(5, ge=1, description="k nearest neighbours of the PATA-EC novelty.")
    archive_sample: int = Field(20, ge=0, description="Archived pairs sampled into PATA-EC and "
                                "the score matrix, so the cost stays bounded as the archive grows.")
    transfer_history: int = Field(5, ge=1, description="Recent scores of an incumbent a transfer "
                                  "must beat (Enhanced POET: 5).")
    transfer_proposals: int = Field(2, ge=0, description="Best direct candidates per target that "
                                    "also get a proposal transfer (one optimization step).")

    # ---------------------------------------------------------------- learner
    population: int = Field(512, ge=2, description="Rollouts per ES step per pair, as "
                            "population/2 antithetic pairs (POET: 512).")
    sigma: float = Field(0.1, gt=0, description="Initial ES noise scale (POET: 0.1).")
    sigma_decay: float = Field(0.999, gt=0, le=1, description="Per-step sigma decay.")
    sigma_min: float = Field(0.01, gt=0, description="Sigma floor (POET: 0.01).")
    lr: float = Field(0.01, gt=0, description="Initial Adam learning rate (POET: 0.01).")
    lr_decay: float = Field(0.9999, gt=0, le=1, description="Per-step learning-rate decay.")
    lr_min: float = Field(0.001, gt=0, description="Learning-rate floor (POET: 0.001).")
    l2: float = Field(0.01, ge=0, description="L2 coefficient on the weights (POET: 0.01).")
    episodes: int = Field(1, ge=1, description="Episodes per perturbed policy per ES step.")
    greedy: bool = Field(False, description="ES agents act by argmax, like POET's deterministic "
                         "controllers (a fresh argmax policy often never reaches a reward); PPO "
                         "agents always sample.")
    eval_episodes: int = Field(2, ge=1, description="Episodes per validation level when a "
                               "policy is scored.")
    ppo: PPOConfig = Field(
        default_factory=lambda: PPOConfig(num_envs=32, num_steps=64, learning_rate=1e-3),
        description="PPO hyper-parameters (learner 'ppo'): one PPO iteration of num_envs x "
        "num_steps env steps per pair per POET iteration; its `policy` field is unused (POET "
        "agents are PoetPolicy networks).")

    # ---------------------------------------------------------------- policy
    obs_size: int = Field(11, ge=3, le=32, description="Observations are padded/cropped to "
                          "obs_size x obs_size symbols so every agent can act in every world.")
    embed_dim: int = Field(2, ge=1, le=16, description="Learned symbol embedding size.")
    hidden: int = Field(32, ge=4, le=512, description="Hidden units of the policy MLP.")

    # ---------------------------------------------------------------- output
    gifs: bool = Field(True, description="Write a GIF of each active agent at the end.")
    tensorboard: bool = Field(True, description="Log to TensorBoard when it is installed.")
    train_levels: int = Field(512, ge=1, le=4096, description="Levels in each world's train bank "
                              "(ES and PPO rollouts draw from it; smaller banks build faster).")
    validation_levels: int = Field(5, ge=1, le=64, description="Validation levels checked by "
                                   "the validator and used to score agents.")

    @model_validator(mode="after")
    def _check(self) -> PoetConfig:
        if self.population % 2:
            raise PoetError(f"population: must be even (antithetic pairs), got "
                            f"{self.population}; use {self.population + 1}")
        if not self.mc_low <= self.mc_high:
            raise PoetError(f"mc_low ({self.mc_low}) must not exceed mc_high ({self.mc_high})")
        if self.sigma_min > self.sigma:
            raise PoetError(f"sigma_min ({self.sigma_min}) must not exceed sigma ({self.sigma})")
        if self.lr_min > self.lr:
            raise PoetError(f"lr_min ({self.lr_min}) must not exceed lr ({self.lr})")
        return self

    @classmethod
    def quick(cls, **overrides) -> PoetConfig:
        """The short preset of ``autoworld evolve`` with no arguments: a few minutes on 2 CPU
        cores, PPO as the pair optimizer (OpenAI-ES with small populations barely learns in
        minutes; ``learner="es"`` selects it), small ES populations, reproduction and transfers
        every 6 iterations, and lower
        bars (reproduction at 0.2, minimal criterion [0.0, 0.95]) so that a few minutes of
        learning already reproduce. Keyword overrides that are not None replace its values."""
        base = dict(learner="ppo", iterations=60, max_active=6, reproduce_every=6, transfer_every=6,
                    mutation_attempts=3, max_admitted=2, population=32, episodes=2,
                    sigma=0.1, lr=0.05, lr_min=0.005, lr_decay=0.999, repro_threshold=0.2,
                    mc_low=0.0, hidden=16, archive_sample=8, train_levels=128)
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)
