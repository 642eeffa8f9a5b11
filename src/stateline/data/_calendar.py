"""Calendar covariates: where in the day (and week) each time stamp falls, as sines and cosines."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._errors import ConfigError, DataError, describe

__all__ = ["CALENDAR_PERIODS", "calendar_features", "calendar_periods"]

CALENDAR_PERIODS = {"day": 86_400, "week": 7 * 86_400}
"""The calendar cycles :func:`calendar_features` knows, in seconds."""


def calendar_features(times: ArrayLike, periods: Sequence[str] = ("day",)) -> NDArray[np.float64]:
    """``(steps, 2 * len(periods))``: sine and cosine of each time stamp's phase in each cycle.

    A model that reads these knows the time of day without being told the
    series' history: it can learn a daily shape from a few days of data, and
    a forecaster's error then shows a day that does not follow it. Time
    stamps are taken as given (UTC or local; repeats and steps back are fine).
    ``"week"`` needs more than a week of training data to mean anything.

    >>> times = np.array(["2024-01-01T00:00", "2024-01-01T06:00"], dtype="datetime64[m]")
    >>> calendar_features(times).round(6).tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    """
    stamps = np.asarray(times)
    if not np.issubdtype(stamps.dtype, np.datetime64):
        try:
            stamps = stamps.astype("datetime64[s]")
        except (TypeError, ValueError) as error:
            raise DataError(
                describe(
                    "times",
                    "time stamps (datetime64 or ISO 8601 strings)",
                    f"dtype {stamps.dtype}",
                    problem="are not time stamps.",
                )
            ) from error
    unknown = [name for name in periods if name not in CALENDAR_PERIODS]
    if unknown or not periods:
        raise ConfigError(
            describe(
                "periods",
                f"one or more of {sorted(CALENDAR_PERIODS)}",
                repr(list(periods)),
                problem="is invalid.",
            )
        )
    seconds = stamps.reshape(-1).astype("datetime64[s]").astype(np.int64)
    columns = []
    for name in periods:
        phase = 2.0 * np.pi * (seconds % CALENDAR_PERIODS[name]) / CALENDAR_PERIODS[name]
        columns += [np.sin(phase), np.cos(phase)]
    features: NDArray[np.float64] = np.stack(columns, axis=1)
    return features


def calendar_periods(times: ArrayLike, *, cycles: float = 2.0) -> tuple[str, ...]:
    """The calendar cycles that ``times`` (a model's training stamps) cover ``cycles`` times.

    A model learns a daily shape only from data that spans at least two days,
    and a weekly one from at least two weeks; fewer make the calendar inputs
    an extrapolation. Numbers (not time stamps) give ``()``.

    >>> days = np.arange(0, 3 * 86_400, 3_600).astype("datetime64[s]")
    >>> calendar_periods(days), calendar_periods(days[:30]), calendar_periods(np.arange(5.0))
    (('day',), (), ())
    """
    stamps = np.asarray(times).reshape(-1)
    if len(stamps) < 2 or not np.issubdtype(stamps.dtype, np.datetime64):
        return ()
    seconds = stamps.astype("datetime64[s]").astype(np.int64)
    span = float(seconds.max() - seconds.min())
    return tuple(name for name, length in CALENDAR_PERIODS.items() if span >= cycles * length)
