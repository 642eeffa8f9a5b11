"""Sequence numbers as the caller gives them, checked one event at a time.

A ``seq`` must be a whole number in ``0 .. 2**63 - 1`` on every path (the
engine, the service's events and columns, Kafka). Read as ``int64`` without
a check, ``1.5`` became ``1`` (a step answered ``duplicate``, never applied),
``-5`` was taken, and ``nan`` or ``2**63`` raised for the whole call; each such
event is now refused alone, with the reason.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._errors import ShapeError, describe

__all__ = ["SEQ_RULE", "seq_out_of_range", "sequence_numbers"]

SEQ_RULE = "an integer in 0 .. 2**63 - 1"
"""What a seq must be, on every path (a row whose seq is not is refused alone)."""

_LARGEST = 2**63 - 1


def seq_out_of_range(value: object) -> str:
    """The error of a row whose seq breaks :data:`SEQ_RULE`."""
    return describe("seq", SEQ_RULE, str(value)[:40], problem="is out of range.")


def sequence_numbers(seq: Any, count: int) -> tuple[NDArray[np.int64] | None, dict[int, str]]:
    """``seq`` (one per event, or None) as ``int64``, and the errors of the events whose seq
    breaks :data:`SEQ_RULE` (their number reads 0: they are refused, never applied).

    >>> numbers, errors = sequence_numbers([3, 1.5, -1, 2.0, float("nan")], 5)
    >>> numbers.tolist(), sorted(errors)
    ([3, 0, 0, 2, 0], [1, 2, 4])
    """
    if seq is None:
        return None, {}
    if np.ndim(seq) == 0:
        raise ShapeError(
            describe(
                "seq", f"one value per event ({count})", repr(seq), problem="has the wrong shape."
            )
        )
    array = np.asarray(seq)
    if array.shape != (count,):
        raise ShapeError(
            describe(
                "seq",
                f"one value per event: shape ({count},)",
                f"shape {array.shape}",
                problem="has the wrong shape.",
            )
        )
    if array.dtype.kind == "i":  # the common case: one pass, no Python per event
        bad = np.flatnonzero(array < 0)
        numbers_ = array.astype(np.int64, copy=False)
    else:
        wanted = [_whole(value) for value in array.tolist()]
        bad = np.array([i for i, value in enumerate(wanted) if value is None], dtype=np.int64)
        numbers_ = np.array([0 if value is None else value for value in wanted], dtype=np.int64)
    if not len(bad):
        return numbers_, {}
    numbers_ = numbers_.copy()
    numbers_[bad] = 0
    return numbers_, {int(i): seq_out_of_range(array[int(i)]) for i in bad}


def _whole(value: object) -> int | None:
    """``value`` as a seq, or None when it is not one (a bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if isinstance(value, numbers.Integral):
        number = int(value)
    else:
        real = float(value)
        if not math.isfinite(real) or real != math.floor(real):
            return None
        number = int(real)
    return number if 0 <= number <= _LARGEST else None
