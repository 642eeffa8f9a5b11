"""Input coercion shared by the scorers, baselines and detectors; errors name the argument."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._errors import ShapeError, describe

__all__ = ["as_row", "as_steps", "standardise"]


def as_row(values: ArrayLike, argument: str) -> NDArray[np.float64]:
    """One step's values ``(channels,)``; a scalar is one channel."""
    row = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if row.ndim != 1:
        raise ShapeError(
            describe(
                argument,
                "one value per channel (1-D)",
                f"shape {row.shape}",
                problem="has the wrong shape.",
            )
        )
    return row


def as_steps(values: ArrayLike, argument: str) -> NDArray[np.float64]:
    """Many steps' values ``(steps, channels)``; a 1-D array is one channel."""
    block = np.asarray(values, dtype=np.float64)
    block = block[:, None] if block.ndim == 1 else block
    if block.ndim != 2:
        raise ShapeError(
            describe(
                argument,
                "(steps, channels) or (steps,)",
                f"shape {block.shape}",
                problem="has the wrong shape.",
            )
        )
    return block


def standardise(series: NDArray[np.float64], reference: NDArray[np.float64]) -> NDArray[np.float64]:
    """Standardise by the reference part's mean and std (a constant channel keeps scale 1).

    >>> standardise(np.array([[1.0, 5.0], [3.0, 5.0]]), np.array([[1.0, 5.0], [3.0, 5.0]]))
    array([[-1.,  0.],
           [ 1.,  0.]])
    """
    mean, std = reference.mean(axis=0), reference.std(axis=0)
    std = np.where(std > 1e-6 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    result: NDArray[np.float64] = (series - mean) / std
    return result
