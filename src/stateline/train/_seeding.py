"""Seeded randomness that leaves the caller's global random generators as they were."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["kept_random_state", "seeded"]


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with PyTorch's generators seeded by ``seed``, then restore them.

    Training is reproducible without changing what the caller's own
    ``torch.rand`` calls return afterwards (CUDA generators included).

    >>> _ = torch.manual_seed(1)
    >>> before = torch.random.get_rng_state()
    >>> with seeded(0):
    ...     _ = torch.rand(3)
    >>> torch.equal(torch.random.get_rng_state(), before)
    True
    """
    with torch.random.fork_rng(devices=_cuda_in_use()):
        torch.manual_seed(seed)
        yield


@contextmanager
def kept_random_state() -> Iterator[None]:
    """Run the block, then put Python's, NumPy's global and PyTorch's generators back.

    For work that draws numbers nobody asked for: building a model whose
    initial weights are overwritten at once (loading one), or Keras drawing
    seeds as it builds layers.

    >>> import random
    >>> before = random.getstate(), torch.random.get_rng_state()
    >>> with kept_random_state():
    ...     _ = random.random(), torch.rand(2), np.random.rand()
    >>> random.getstate() == before[0], torch.equal(torch.random.get_rng_state(), before[1])
    (True, True)
    """
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=_cuda_in_use()):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def _cuda_in_use() -> list[int]:
    """The CUDA devices whose generators the caller may have used: every one once CUDA is
    initialised, none before (reading a device's state would create a context on each GPU)."""
    if not torch.cuda.is_available() or not torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        return []
    return list(range(torch.cuda.device_count()))
