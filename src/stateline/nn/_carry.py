"""The carry: the recurrent state as a value, owned by the caller.

A carry is a tuple of tensors shaped ``(layers, batch, hidden)``: ``(h, c)``
for an LSTM, ``(h,)`` for a GRU, exactly what ``torch.nn.LSTM``/``GRU`` take
and return. Row ``i`` of every tensor belongs to batch row (lane, stream) ``i``.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

Carry = tuple[Tensor, ...]

__all__ = [
    "Carry",
    "CarryModel",
    "detach_carry",
    "keep_where",
    "reset_carry",
    "select_rows",
    "top_hidden",
]


class CarryModel(Protocol):
    """The carry contract every stateline model follows (training, streaming, online)."""

    def initial_carry(
        self,
        batch: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Carry: ...

    def __call__(
        self,
        xs: Tensor,
        carry: Carry | None = None,
        *,
        reset: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> tuple[Tensor, Carry]: ...


def reset_carry(carry: Carry, reset: Tensor | None) -> Carry:
    """Zero the rows of ``carry`` flagged in the ``(batch,)`` bool ``reset``.

    >>> carry = (torch.ones(1, 3, 2),)
    >>> reset_carry(carry, torch.tensor([False, True, False]))[0][0, :, 0].tolist()
    [1.0, 0.0, 1.0]
    """
    if reset is None:
        return carry
    keep = (~reset.to(dtype=torch.bool, device=carry[0].device)).to(carry[0].dtype)
    return tuple(part * keep[None, :, None] for part in carry)


def keep_where(step_mask: Tensor, new: Carry, old: Carry) -> Carry:
    """Rows where ``step_mask`` is True take ``new``, the others keep ``old``."""
    flags = step_mask.to(dtype=torch.bool, device=new[0].device)[None, :, None]
    return tuple(torch.where(flags, n, o) for n, o in zip(new, old, strict=True))


def detach_carry(carry: Carry) -> Carry:
    """Cut the gradient path through ``carry`` (the truncation of truncated BPTT)."""
    return tuple(part.detach() for part in carry)


def select_rows(carry: Carry, rows: Tensor) -> Carry:
    """The carry of the given batch rows, in that order."""
    return tuple(part.index_select(1, rows) for part in carry)


def top_hidden(carry: Carry) -> Tensor:
    """``(batch, hidden)``: the hidden state of the top layer, what heads read."""
    return carry[0][-1]
