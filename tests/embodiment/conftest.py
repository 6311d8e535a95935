"""Embodiment tests run single-threaded: small networks are fastest that way on a busy machine."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield
