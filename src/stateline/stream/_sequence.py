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
    >>> sorted(sequence_numbers([True, 4], 2)[1]), sorted(sequence_numbers(["7", 4], 2)[1])
    ([0], [0])
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
    if isinstance(seq, list | tuple) and (
        array.dtype.kind not in "iuf" or any(isinstance(v, bool | np.bool_) for v in seq)
    ):  # numpy coerced the list to one type: True read as 1, 4 as "4" beside a "7"
        return _from_values(list(seq), count)
    if array.shape != (count,):
        raise _wrong_shape(count, array.shape)
    kind = array.dtype.kind
    if kind == "i":  # the common case: one pass, no Python per event
        good = array >= 0
    elif kind == "u":
        good = array <= _LARGEST
    elif kind == "f":
        with np.errstate(invalid="ignore"):
            good = np.isfinite(array) & (array == np.floor(array)) & (array >= 0)
            good &= array < 2.0**63
    else:  # objects, booleans, text: one value at a time
        return _from_values(array.tolist(), count)
    numbers_ = np.where(good, array, 0).astype(np.int64)
    if good.all():
        return numbers_, {}
    return numbers_, {int(i): seq_out_of_range(array[int(i)]) for i in np.flatnonzero(~good)}


def _from_values(values: list[Any], count: int) -> tuple[NDArray[np.int64], dict[int, str]]:
    """Each value checked as the caller gave it (a list: ``True`` is not 1, ``"7"`` not 7)."""
    if len(values) != count or any(np.ndim(value) != 0 for value in values):
        raise _wrong_shape(count, np.shape(values))
    wanted = [_whole(value) for value in values]
    numbers_ = np.array([0 if value is None else value for value in wanted], dtype=np.int64)
    errors = {i: seq_out_of_range(values[i]) for i, value in enumerate(wanted) if value is None}
    return numbers_, errors


def _wrong_shape(count: int, shape: tuple[int, ...]) -> ShapeError:
    return ShapeError(
        describe(
            "seq",
            f"one value per event: shape ({count},)",
            f"shape {shape}",
            problem="has the wrong shape.",
        )
    )


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
