"""The pure POET rules on hand-made score matrices."""

from __future__ import annotations

import numpy as np
import pytest

from autoworld.poet import decisions as d
from autoworld.poet.scores import ScoreMatrix


def test_minimal_criterion_is_inclusive_and_rejects_both_sides():
    assert d.passes_minimal_criterion(0.05, 0.05, 0.95)
    assert d.passes_minimal_criterion(0.95, 0.05, 0.95)
    assert d.passes_minimal_criterion(0.5, 0.05, 0.95)
    assert not d.passes_minimal_criterion(0.04, 0.05, 0.95)  # too hard for the parent
    assert not d.passes_minimal_criterion(0.96, 0.05, 0.95)  # trivial for the parent


def test_pata_ec_clips_then_centred_ranks():
    # 0.99 and 1.0 both clip to 0.95 and tie; -1 clips to 0.05
    desc = d.pata_ec([0.3, 1.0, -1.0, 0.99], 0.05, 0.95)
    np.testing.assert_allclose(desc, [-1 / 6, 1 / 3, -0.5, 1 / 3])
    assert desc.min() == -0.5 and abs(desc.sum()) < 1e-12


def test_pata_ec_is_invariant_to_monotone_rescaling():
    s = np.array([0.1, 0.4, 0.2, 0.8])
    np.testing.assert_allclose(d.pata_ec(s, 0.0, 1.0), d.pata_ec(s ** 2, 0.0, 1.0))


def test_novelty_is_mean_distance_to_k_nearest():
    known = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0], [0.0, 1.0]])
    x = np.array([0.0, 0.0])
    assert d.novelty(x, known, k=2) == pytest.approx(0.5)  # distances 0, 1
    assert d.novelty(x, known, k=3) == pytest.approx(2.0)  # 0, 1, 5
    assert d.novelty(x, known, k=10) == pytest.approx(4.0)  # all four: 0, 1, 5, 10
    assert d.novelty(x, np.zeros((0, 2)), k=5) == float("inf")


def test_pata_ec_novelty_ranks_a_world_that_orders_agents_differently_higher():
    # 3 agents; the known worlds all rank agent 0 < 1 < 2
    known = np.stack([d.pata_ec(c, 0.0, 1.0) for c in ([0.1, 0.5, 0.9], [0.2, 0.4, 0.6])])
    same = d.pata_ec([0.3, 0.35, 0.7], 0.0, 1.0)
    reversed_ = d.pata_ec([0.9, 0.5, 0.1], 0.0, 1.0)
    assert d.novelty(same, known, 5) == pytest.approx(0.0)
    assert d.novelty(reversed_, known, 5) > 1.0


def test_admit_filters_by_mc_ranks_by_novelty_and_caps_at_k():
    cands = [d.Candidate("a", 0.5, 0.2), d.Candidate("b", 0.01, 9.0),
             d.Candidate("c", 0.6, 0.7), d.Candidate("d", 0.99, 5.0),
             d.Candidate("e", 0.3, 0.4)]
    chosen, reasons = d.admit(cands, 0.05, 0.95, k_max=2)
    assert [c.key for c in chosen] == ["c", "e"]
    assert "below" in reasons["b"] and "above" in reasons["d"]
    assert "most novel" in reasons["a"]
    assert set(reasons) == {"a", "b", "d"}


def test_admit_ties_keep_proposal_order():
    cands = [d.Candidate("x", 0.5, 1.0), d.Candidate("y", 0.5, 1.0)]
    chosen, _ = d.admit(cands, 0.0, 1.0, k_max=1)
    assert [c.key for c in chosen] == ["x"]


def test_retire_oldest_moves_the_oldest_beyond_the_cap():
    assert d.retire_oldest([5, 1, 7, 3], cap=2) == [1, 3]
    assert d.retire_oldest([1, 2], cap=2) == []


def test_transfer_needs_to_beat_every_recent_score():
    recent = [0.2, 0.6, 0.4]
    assert d.transfer_decision(recent, {"a:direct": 0.55, "b:proposal": 0.6}) == (None, 0.6)
    assert d.transfer_decision(recent, {"a:direct": 0.55, "b:proposal": 0.61}) == (
        "b:proposal", 0.6)
    assert d.transfer_decision(recent, {}) == (None, 0.6)
    # a ranking tie goes to the first name in sorted order (deterministic)
    assert d.transfer_decision([0.1], {"b:x": 0.7, "a:x": 0.7})[0] == "a:x"


def test_annecs_counts_admitted_worlds_once_they_are_solved():
    c = d.AnnecsCounter(threshold=0.9)
    c.admit("w1")
    c.admit("w2")
    assert c.observe([("w0", 1.0), ("w1", 0.5)]) == []  # w0 is the root: never counted
    assert c.value == 0
    assert c.observe([("w1", 0.95), ("w2", 0.2)]) == ["w1"]
    assert c.observe([("w1", 0.1)]) == []  # forgetting does not uncount
    assert c.value == 1
    assert c.observe([("w2", 0.9)]) == ["w2"] and c.value == 2
    assert d.AnnecsCounter.from_state(c.state()).value == 2


def test_score_matrix_entries_go_stale_when_an_agent_changes():
    m = ScoreMatrix()
    m.set("a0", "w0", 0.5)
    m.set("a1", "w0", 0.1)
    assert m.missing(["a0", "a1"], ["w0", "w1"]) == [("a0", "w1"), ("a1", "w1")]
    m.bump("a0")
    assert m.get("a0", "w0") is None and m.get("a1", "w0") == 0.1
    assert ScoreMatrix.from_state(m.state()).get("a1", "w0") == 0.1
    mat = m.matrix(["a0", "a1"], ["w0"])
    assert np.isnan(mat[0, 0]) and mat[1, 0] == 0.1
