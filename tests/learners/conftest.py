"""Shared fixtures of the learner tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread per test: the figures these tests compare are reproducible, and two
    threads on a 2-core machine shared with other processes only wait for each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
