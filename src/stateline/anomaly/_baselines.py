"""Baselines in the same API as the LSTM detector: a moving average and a windowed Gaussian.

:class:`MovingAverage` predicts each step as the mean of the previous
``window`` steps, so its errors feed an :class:`ErrorScorer` exactly like the
LSTM's forecast errors. :class:`WindowedGaussian` scores each step directly by
its squared z-score against the previous ``window`` steps (per channel, then
averaged), the classic rolling control chart.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._errors import ShapeError, describe
from .._validate import require_positive_int
from ._arrays import as_row, as_steps

__all__ = ["MovingAverage", "WindowedGaussian"]


def _trailing_sums(
    array: NDArray[np.float64], window: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Sum over the previous ``window`` rows (excluding the row itself) and their count."""
    cumulative = np.vstack([np.zeros((1, array.shape[1])), np.cumsum(array, axis=0)])
    index = np.arange(len(array))
    start = np.maximum(index - window, 0)
    sums = cumulative[index] - cumulative[start]
    counts = (index - start).astype(np.float64)
    return sums, counts


class MovingAverage:
    """Predict the next step as the mean of the previous ``window`` steps.

    >>> MovingAverage(window=2).predict_many([1.0, 3.0, 5.0, 7.0]).ravel().tolist()
    [nan, 1.0, 2.0, 4.0]
    >>> average = MovingAverage(window=2)
    >>> for value in (1.0, 3.0):
    ...     average.learn_one([value])
    >>> average.predict_one().tolist()
    [2.0]
    """

    def __init__(self, *, window: int = 10) -> None:
        require_positive_int("window", window)
        self.window = window
        self._recent: deque[NDArray[np.float64]] = deque(maxlen=window)

    def predict_many(self, series: ArrayLike) -> NDArray[np.float64]:
        """Row t is the prediction of step t from steps t-window..t-1 (NaN for t = 0)."""
        array = as_steps(series, "series")
        sums, counts = _trailing_sums(array, self.window)
        with np.errstate(invalid="ignore", divide="ignore"):
            result: NDArray[np.float64] = sums / counts[:, None]
        return result

    def errors_many(self, series: ArrayLike) -> NDArray[np.float64]:
        """Observed minus predicted, ``(steps, channels)``; the first row is 0."""
        array = as_steps(series, "series")
        errors = array - self.predict_many(array)
        errors[0] = 0.0
        return errors

    def learn_one(self, row: ArrayLike) -> None:
        self._recent.append(as_row(row, "row"))

    def predict_one(self) -> NDArray[np.float64]:
        if not self._recent:
            raise ShapeError(
                describe("history", "at least one learned step", "none", problem="is empty.")
            )
        result: NDArray[np.float64] = np.mean(np.stack(self._recent), axis=0)
        return result


class WindowedGaussian:
    """Score each step by its mean squared z-score against the previous ``window`` steps.

    >>> scores = WindowedGaussian(window=4).score_many([1.0, -1.0, 1.0, -1.0, 5.0])
    >>> float(scores[-1])
    25.0
    """

    def __init__(self, *, window: int = 100, floor: float = 1e-6) -> None:
        require_positive_int("window", window)
        self.window, self.floor = window, floor
        self._recent: deque[NDArray[np.float64]] = deque(maxlen=window)

    def score_many(self, series: ArrayLike) -> NDArray[np.float64]:
        """Scores ``(steps,)``; 0 where fewer than two previous steps exist."""
        array = as_steps(series, "series")
        sums, counts = _trailing_sums(array, self.window)
        squares, _ = _trailing_sums(array**2, self.window)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = sums / counts[:, None]
            variance = np.maximum(squares / counts[:, None] - mean**2, 0.0)
        spread = np.maximum(np.sqrt(variance), self.floor)
        scores = (((array - mean) / spread) ** 2).mean(axis=1)
        scores[counts < 2] = 0.0
        result: NDArray[np.float64] = scores
        return result

    def score_one(self, row: ArrayLike) -> float:
        """Score one step against the learned window (0 before two steps)."""
        values = as_row(row, "row")
        if len(self._recent) < 2:
            return 0.0
        recent = np.stack(self._recent)
        spread = np.maximum(recent.std(axis=0), self.floor)
        return float((((values - recent.mean(axis=0)) / spread) ** 2).mean())

    def learn_one(self, row: ArrayLike) -> None:
        self._recent.append(as_row(row, "row"))
