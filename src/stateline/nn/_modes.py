"""A model's train/eval mode, switched for a while and given back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

__all__ = ["inference_mode"]


@contextmanager
def inference_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) for the duration, then the caller's mode back (an error in
    the block included).

    >>> model = nn.Dropout(0.5)
    >>> with inference_mode(model):
    ...     model.training
    False
    >>> model.training
    True
    """
    training = model.training
    if training:
        model.eval()
    try:
        yield
    finally:
        if training:
            model.train()
