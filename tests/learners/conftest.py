"""Shared fixtures of the learner tests: every test runs single-threaded."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield
