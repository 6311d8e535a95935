"""The pure decision rules of POET, on plain arrays so they can be tested on hand-made scores.

- ``passes_minimal_criterion``: the parent agent's normalized score on a child lies in
  [low, high].
- ``pata_ec``: a world's PATA-EC descriptor: the scores of a fixed, ordered set of agents on it,
  clipped to [low, high] and converted to centred ranks (Enhanced POET, section 3.1).
- ``novelty``: the mean Euclidean distance of a descriptor to its k nearest neighbours among the
  descriptors of the worlds already known (active and archived).
- ``admit``: the children that pass, most novel first, at most K.
- ``retire_oldest``: which pairs move to the archive when the population exceeds its cap.
- ``transfer_decision``: Enhanced POET's transfer rule: the best candidate replaces the
  incumbent only if it beats every one of the incumbent's recent scores.
- ``AnnecsCounter``: the accumulated number of novel environments created that passed the
  minimal criterion and were eventually solved (Enhanced POET's ANNECS, section 4).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from autoworld.learners.soe import centred_ranks


def passes_minimal_criterion(score: float, low: float, high: float) -> bool:
    """True when ``low <= score <= high`` (the child is neither trivial nor hopeless)."""
    return bool(low <= score <= high)


def pata_ec(scores: Sequence[float] | np.ndarray, low: float, high: float) -> np.ndarray:
    """PATA-EC descriptor (N,): ``scores`` of N agents on one world, clipped to [low, high], then
    centred ranks in [-0.5, 0.5] (ties share the mean rank)."""
    x = np.clip(np.asarray(scores, dtype=np.float64), low, high)
    if x.size == 0:
        return x
    return centred_ranks(torch.from_numpy(x)).numpy()


def novelty(descriptor: np.ndarray, known: np.ndarray, k: int) -> float:
    """Mean Euclidean distance from ``descriptor`` (N,) to its ``k`` nearest rows of ``known``
    (M, N); with fewer than k rows, the mean over all of them; with none, +inf (anything is
    novel in an empty world)."""
    known = np.asarray(known, dtype=np.float64).reshape(-1, descriptor.shape[0])
    if known.shape[0] == 0:
        return float("inf")
    d = np.sqrt(((known - descriptor[None]) ** 2).sum(axis=1))
    d.sort()
    return float(d[: max(1, k)].mean())


@dataclass(frozen=True)
class Candidate:
    """A child world proposed in one reproduction step."""

    key: str  # content hash of the child
    parent_score: float  # the parent agent's normalized score on the child
    novelty: float  # PATA-EC novelty (computed only for children passing the MC)


def admit(candidates: Sequence[Candidate], low: float, high: float, k_max: int
          ) -> tuple[list[Candidate], dict[str, str]]:
    """The children to admit (most novel first, at most ``k_max``; ties keep proposal order)
    and a rejection reason for every other candidate."""
    reasons: dict[str, str] = {}
    passing = []
    for c in candidates:
        if passes_minimal_criterion(c.parent_score, low, high):
            passing.append(c)
        else:
            side = "below" if c.parent_score < low else "above"
            reasons[c.key] = (f"minimal criterion: parent score {c.parent_score:.3f} is {side} "
                              f"[{low}, {high}]")
    order = sorted(range(len(passing)), key=lambda i: (-passing[i].novelty, i))
    chosen = [passing[i] for i in order[:k_max]]
    for i in order[k_max:]:
        reasons[passing[i].key] = (f"not among the {k_max} most novel (novelty "
                                   f"{passing[i].novelty:.3f})")
    return chosen, reasons


def retire_oldest(created: Sequence[int], cap: int) -> list[int]:
    """Indices (into ``created``, the creation order stamps of the active pairs) of the pairs
    to archive so that at most ``cap`` remain: the oldest first."""
    excess = len(created) - cap
    if excess <= 0:
        return []
    return sorted(range(len(created)), key=lambda i: (created[i], i))[:excess]


def transfer_decision(incumbent_recent: Sequence[float], candidates: dict[str, float]
                      ) -> tuple[str | None, float]:
    """Enhanced POET's transfer rule. ``candidates`` maps a candidate name to its score on the
    target (direct or after a proposal step); the best one is accepted only if it is strictly
    above the incumbent's best recent score. Returns (accepted name or None, the threshold)."""
    threshold = max(incumbent_recent) if len(incumbent_recent) else float("-inf")
    if not candidates:
        return None, threshold
    best = max(sorted(candidates), key=lambda n: candidates[n])
    return (best if candidates[best] > threshold else None), threshold


@dataclass
class AnnecsCounter:
    """ANNECS: a created world counts once it has passed the minimal criterion (it was
    admitted) and has later been solved by the system (some score on it reached the solved
    threshold). The count never decreases, archived worlds included."""

    threshold: float
    admitted: set[str] = field(default_factory=set)
    solved: set[str] = field(default_factory=set)

    def admit(self, key: str) -> None:
        """Record a child that passed the minimal criterion and was admitted."""
        self.admitted.add(key)

    def observe(self, scores: Iterable[tuple[str, float]]) -> list[str]:
        """Record (world, score) observations; returns the worlds newly counted."""
        new = []
        for key, score in scores:
            if key in self.admitted and key not in self.solved and score >= self.threshold:
                self.solved.add(key)
                new.append(key)
        return new

    @property
    def value(self) -> int:
        return len(self.solved)

    def state(self) -> dict:
        return {"threshold": self.threshold, "admitted": sorted(self.admitted),
                "solved": sorted(self.solved)}

    @classmethod
    def from_state(cls, d: dict) -> AnnecsCounter:
        return cls(float(d["threshold"]), set(d["admitted"]), set(d["solved"]))
