"""Labels as ranges: the shared vocabulary of the evaluation metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._errors import ShapeError, describe

__all__ = ["as_flags", "ranges"]


def as_flags(values: ArrayLike, argument: str, length: int | None = None) -> NDArray[np.bool_]:
    """A 1-D boolean array from 0/1 or boolean values, checked for shape."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ShapeError(
            describe(
                argument,
                "a 1-D array of 0/1 flags",
                f"shape {array.shape}",
                problem="has the wrong shape.",
            )
        )
    if length is not None and len(array) != length:
        raise ShapeError(
            describe(
                argument,
                f"{length} flags (one per step)",
                f"{len(array)} flags",
                problem="has the wrong shape.",
            )
        )
    if array.dtype != np.bool_:
        if not np.isin(array, (0, 1)).all():
            raise ShapeError(
                describe(argument, "only 0/1 or True/False", "other values", problem="is invalid.")
            )
        array = array.astype(bool)
    flags: NDArray[np.bool_] = array
    return flags


def ranges(flags: ArrayLike) -> NDArray[np.int64]:
    """``(count, 2)`` half-open ``[start, end)`` index ranges of the runs of ones.

    >>> ranges([0, 1, 1, 0, 0, 1]).tolist()
    [[1, 3], [5, 6]]
    """
    array = as_flags(flags, "flags")
    edges = np.flatnonzero(np.diff(np.concatenate([[0], array.astype(np.int8), [0]])))
    result: NDArray[Any] = edges.reshape(-1, 2).astype(np.int64)
    return result
