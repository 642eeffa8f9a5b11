"""Shared fixtures: a seeded random generator for every test."""

from __future__ import annotations

import os

import numpy as np
import pytest

# Keras (dev extra) runs on its torch backend in tests, whatever else is installed; the guide's
# trap demonstrations choose their own backend in subprocesses (tests/keras/test_guide.py).
os.environ.setdefault("KERAS_BACKEND", "torch")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261122)
