"""Anomaly scores from prediction errors, and the running statistics behind them."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._errors import ConfigError, NotFittedError, ShapeError, StatelineError, describe
from ._arrays import as_row, as_steps

__all__ = [
    "ErrorScorer",
    "RunningMoments",
    "combine_channels",
    "ewma",
    "moments_std",
    "require_combinable",
    "squared_z",
    "surprise",
    "welford_step",
]

COMBINES = ("mean", "max", "trimmed")
DEFAULT_FLOOR = 1e-6
"""The smallest error spread a channel is normalised by (a constant channel would divide by 0)."""


def welford_step(count: Any, mean: Any, m2: Any, value: Any) -> tuple[Any, Any]:
    """One Welford update of ``(mean, m2)`` by ``value``, ``count`` already including it.

    Broadcasts, so one call updates the moments of many streams at once.

    >>> welford_step(2, 1.0, 0.0, 3.0)
    (2.0, 2.0)
    """
    delta = value - mean
    mean = mean + delta / count
    return mean, m2 + delta * (value - mean)


def moments_std(count: Any, m2: Any) -> Any:
    """Population standard deviation from ``count`` and ``m2`` (0 before two values)."""
    return np.sqrt(m2 / np.maximum(count, 1)) * (np.asarray(count) >= 2)


def squared_z(
    errors: NDArray[np.float64],
    mean: NDArray[np.float64],
    std: NDArray[np.float64],
    floor: float = DEFAULT_FLOOR,
) -> NDArray[np.float64]:
    """Per-channel squared z-scores of ``errors`` ``(..., channels)`` (spread floored)."""
    squared: NDArray[np.float64] = ((errors - mean) / np.maximum(std, floor)) ** 2
    return squared


def require_combinable(
    combine: str,
    channels: int,
    argument: str,
    *,
    error: type[StatelineError] = ShapeError,
    fix: str = "use combine='mean' for a single channel.",
) -> None:
    """Refuse ``combine='trimmed'`` (it drops the largest channel) with fewer than 2 channels.

    >>> require_combinable("trimmed", 1, "errors")
    Traceback (most recent call last):
    ...
    stateline._errors.ShapeError: ...
    """
    if combine == "trimmed" and channels < 2:
        raise error(
            describe(
                argument,
                "at least 2 channels for combine='trimmed' (it drops the largest)",
                f"{channels} channel",
                problem="has too few channels.",
            )
            + f"\n  Fix: {fix}"
        )


def combine_channels(values: NDArray[np.float64], combine: str) -> NDArray[np.float64]:
    """Combine per-channel scores ``(..., channels)`` into one per step ``(...)``.

    ``mean`` and ``max`` are what they say; ``trimmed`` is the mean without
    the largest channel, so that one channel alone cannot raise an alarm
    (it needs at least two channels).

    >>> combine_channels(np.array([[1.0, 2.0, 9.0]]), "trimmed").tolist()
    [1.5]
    """
    combined: NDArray[np.float64]
    if combine == "mean":
        combined = values.mean(axis=-1)
        return combined
    if combine == "max":
        combined = values.max(axis=-1)
        return combined
    require_combinable(combine, values.shape[-1], "errors")
    trimmed: NDArray[np.float64] = (values.sum(axis=-1) - values.max(axis=-1)) / (
        values.shape[-1] - 1
    )
    return trimmed


def surprise(squared: NDArray[np.float64], combine: str) -> NDArray[np.float64]:
    """Absolute z-scores from per-channel squared ones ``(..., channels)``, combined.

    >>> surprise(np.array([[4.0, 9.0]]), "mean").tolist()
    [2.5]
    """
    return combine_channels(np.sqrt(squared), combine)


def ewma(
    values: ArrayLike, smoothing: float, start: ArrayLike | None = None
) -> NDArray[np.float64]:
    """``s_t = smoothing * v_t + (1 - smoothing) * s_{t-1}`` along axis 0.

    ``values`` is ``(steps,)`` or ``(steps, channels)`` (each channel smoothed
    on its own); the smoother starts from ``start``, else from ``v_0``.

    >>> ewma([0.0, 10.0, 10.0], 0.5).tolist()
    [0.0, 5.0, 7.5]
    """
    array = np.asarray(values, dtype=np.float64)
    out = np.empty_like(array)
    if len(array) == 0:
        return out
    keep = 1.0 - smoothing
    smoothed = array[0] if start is None else np.asarray(start, dtype=np.float64)
    if array.ndim == 1:  # a Python loop over floats is several times faster than over 0-d arrays
        current = float(smoothed)
        for index, value in enumerate(array.tolist()):
            current = smoothing * value + keep * current
            out[index] = current
        return out
    for index in range(len(array)):
        smoothed = smoothing * array[index] + keep * smoothed
        out[index] = smoothed
    return out


class RunningMoments:
    """Mean and variance per channel, updated one row at a time (Welford) or in bulk.

    >>> moments = RunningMoments()
    >>> for value in ([1.0], [2.0], [3.0], [4.0]):
    ...     moments.learn_one(value)
    >>> moments.mean.tolist(), moments.std.round(4).tolist()
    ([2.5], [1.118])

    ``m2`` is the sum of squared deviations from the mean, per channel.
    """

    def __init__(self) -> None:
        self.count = 0
        self.mean = np.zeros(0)
        self.m2 = np.zeros(0)

    @property
    def std(self) -> NDArray[np.float64]:
        """Population standard deviation per channel (0 before two rows)."""
        result: NDArray[np.float64] = moments_std(self.count, self.m2)
        return result

    def learn_one(self, row: ArrayLike) -> None:
        values = as_row(row, "row")
        if self.count == 0:
            self.mean = np.zeros_like(values)
            self.m2 = np.zeros_like(values)
        self.count += 1
        self.mean, self.m2 = welford_step(self.count, self.mean, self.m2, values)

    def learn_many(self, rows: ArrayLike) -> None:
        """Merge a block of rows ``(steps, channels)`` (Chan et al. parallel update)."""
        block = as_steps(rows, "rows")
        if len(block) == 0:
            return
        count, mean = len(block), block.mean(axis=0)
        m2 = ((block - mean) ** 2).sum(axis=0)
        if self.count == 0:
            self.count, self.mean, self.m2 = count, mean, m2
            return
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * count / total
        self.m2 = self.m2 + m2 + delta**2 * self.count * count / total
        self.count = total


class ErrorScorer:
    """Score = per-channel normalised squared errors, smoothed by an EWMA, combined.

    Each channel's error is normalised by the mean and standard deviation of
    the errors it has learned (``learn_one`` / ``learn_many``, normally the
    errors on normal data), so that channels in different units weigh alike;
    each channel's squared z-score is smoothed,
    ``s_t = smoothing * z2_t + (1 - smoothing) * s_{t-1}`` (``smoothing=1``
    keeps raw scores), and the channels are combined by their ``mean``, their
    ``max``, or ``trimmed`` (the mean without the largest channel: an alarm
    then needs evidence in two channels, so one slow channel that stays off
    after a fault cannot keep raising it). ``score_one`` advances the
    smoother, so call it once per step, in order; ``reset()`` starts a new
    series.

    >>> scorer = ErrorScorer(smoothing=1.0)
    >>> scorer.learn_many([[0.0, 1.0], [0.0, -1.0], [0.0, 1.0], [0.0, -1.0]])
    >>> scorer.score_one([0.0, 3.0])
    4.5
    """

    def __init__(
        self, *, smoothing: float = 0.1, combine: str = "mean", floor: float = DEFAULT_FLOOR
    ) -> None:
        if not 0.0 < smoothing <= 1.0:
            raise ConfigError(
                describe("smoothing", "a weight in (0, 1]", repr(smoothing), problem="is invalid.")
            )
        if combine not in COMBINES:
            raise ConfigError(
                describe("combine", f"one of {COMBINES}", repr(combine), problem="is unknown.")
            )
        self.smoothing = smoothing
        self.combine = combine
        self.floor = floor
        self.moments = RunningMoments()
        self._smoothed: NDArray[np.float64] | None = None

    # ---------------------------------------------------------------- learning
    def learn_one(self, error: ArrayLike) -> None:
        """Learn the normal spread of one step's errors ``(channels,)``."""
        self.moments.learn_one(as_row(error, "error"))

    def learn_many(self, errors: ArrayLike) -> None:
        """Learn the normal spread of many steps' errors ``(steps, channels)``."""
        self.moments.learn_many(as_steps(errors, "errors"))

    # ----------------------------------------------------------------- scoring
    def squared_many(self, errors: ArrayLike) -> NDArray[np.float64]:
        """Unsmoothed per-channel squared z-scores ``(steps, channels)``; no state touched."""
        block = as_steps(errors, "errors")
        if self.moments.count < 2:
            raise NotFittedError(
                "ErrorScorer has not learned the spread of normal errors yet.\n"
                "  Fix: call learn_many() with errors on normal data first."
            )
        if block.shape[1] != len(self.moments.mean):
            raise ShapeError(
                describe(
                    "errors",
                    f"{len(self.moments.mean)} channels (as learned)",
                    f"{block.shape[1]} channels",
                    problem="has the wrong shape.",
                )
            )
        return squared_z(block, self.moments.mean, self.moments.std, self.floor)

    def surprise_many(self, errors: ArrayLike) -> NDArray[np.float64]:
        """Per-step surprise ``(steps,)``: absolute z-scores, channels combined; no state touched.

        What the anomaly likelihood averages (see
        :class:`~stateline.anomaly.LikelihoodConfig`).
        """
        return surprise(self.squared_many(errors), self.combine)

    def raw_many(self, errors: ArrayLike) -> NDArray[np.float64]:
        """Unsmoothed combined scores ``(steps,)``; does not touch the smoother."""
        return combine_channels(self.squared_many(errors), self.combine)

    def score_one(self, error: ArrayLike) -> float:
        """The smoothed score of the next step; advances the smoother."""
        return float(self.score_many(as_row(error, "error")[None])[0])

    def score_many(self, errors: ArrayLike) -> NDArray[np.float64]:
        """Smoothed scores of consecutive steps ``(steps,)``; advances the smoother."""
        smoothed = ewma(self.squared_many(errors), self.smoothing, self._smoothed)
        if len(smoothed):
            self._smoothed = smoothed[-1].copy()
        return combine_channels(smoothed, self.combine)

    @property
    def smoothed(self) -> NDArray[np.float64] | None:
        """Each channel's smoothed squared z-score after the last step (None before one)."""
        return self._smoothed

    def reset(self) -> None:
        """Forget the smoother's state (a new series starts); learned spreads stay."""
        self._smoothed = None
