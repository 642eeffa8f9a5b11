"""Seeded randomness that leaves the caller's global random generators as they were."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["seeded"]


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
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
