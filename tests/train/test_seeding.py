"""Seeded and kept random state: the caller's generators stay as they were."""

from __future__ import annotations

import pytest
import torch

from stateline.train._seeding import _cuda_in_use, kept_random_state


def test_cuda_generators_are_kept_only_once_cuda_is_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """From a review: every GPU's generator was read and set on every load, which creates a
    CUDA context on each GPU (a CPU-only server, N ranks x N GPUs under torchrun)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    assert _cuda_in_use() == []
    with kept_random_state():  # forks the CPU generator only: nothing touches CUDA
        torch.rand(2)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    assert _cuda_in_use() == [0, 1, 2, 3]
