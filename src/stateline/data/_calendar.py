"""Calendar covariates: where in the day (and week) each time stamp falls, as sines and cosines."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._errors import ConfigError, DataError, describe

__all__ = ["CALENDAR_PERIODS", "calendar_features", "calendar_periods", "calendar_times"]

CALENDAR_PERIODS = {"day": 86_400, "week": 7 * 86_400}
"""The calendar cycles :func:`calendar_features` knows, in seconds."""


def calendar_times(times: ArrayLike, name: str = "times") -> NDArray[np.datetime64]:
    """Time stamps as ``datetime64[s]``: datetime64, ISO strings or (time-zone aware) timestamps.

    Time-zone aware stamps keep their local wall-clock time (the time of day
    people live by). Numbers and missing stamps (NaT) are refused.

    >>> calendar_times(["2024-01-01T06:00+01:00", "2024-01-01T07:00+01:00"]).tolist()
    [datetime.datetime(2024, 1, 1, 6, 0), datetime.datetime(2024, 1, 1, 7, 0)]
    """
    import pandas as pd

    raw = np.asarray(times)
    if raw.ndim != 1:
        raise DataError(
            describe(
                name,
                "a 1-D array of time stamps",
                f"shape {raw.shape}",
                problem="has the wrong shape.",
            )
        )
    if raw.dtype.kind in "biufc":
        raise DataError(
            describe(
                name,
                "time stamps (datetime64, ISO 8601 strings or pandas Timestamps)",
                f"numbers (dtype {raw.dtype})",
                problem="are not time stamps.",
            )
        )
    try:
        parsed = pd.DatetimeIndex(pd.to_datetime(pd.Series(raw, dtype=object), utc=False))
    except (TypeError, ValueError) as error:
        try:  # stamps with different UTC offsets: each at its own wall-clock time
            each = [pd.Timestamp(stamp) for stamp in raw.tolist()]
            parsed = pd.DatetimeIndex(
                [t.tz_localize(None) if t.tzinfo is not None else t for t in each]
            )
        except (TypeError, ValueError):
            raise DataError(
                describe(
                    name,
                    "time stamps (datetime64, ISO 8601 strings or pandas Timestamps)",
                    str(error).splitlines()[0],
                    problem="are not time stamps.",
                )
            ) from None
    if parsed.tz is not None:
        parsed = parsed.tz_localize(None)
    stamps: NDArray[np.datetime64] = parsed.to_numpy(dtype="datetime64[s]")
    missing = np.flatnonzero(np.isnat(stamps))
    if len(missing):
        raise DataError(
            describe(
                name,
                "a time stamp on every row",
                f"a missing time stamp (NaT) at row {int(missing[0])} ({len(missing)} in all)",
                problem="has gaps.",
                fix="Fill or drop the rows without a time stamp.",
            )
        )
    return stamps


def calendar_features(
    times: ArrayLike, periods: str | Sequence[str] = ("day",)
) -> NDArray[np.float64]:
    """``(steps, 2 * len(periods))``: sine and cosine of each time stamp's phase in each cycle.

    A model that reads these knows the time of day without being told the
    series' history: it can learn a daily shape from a few days of data, and
    a forecaster's error then shows a day that does not follow it. Time
    stamps are taken as given (see :func:`calendar_times`; repeats and steps
    back are fine). ``"week"`` needs more than a week of training data to mean
    anything (:func:`calendar_periods` tells).

    >>> times = np.array(["2024-01-01T00:00", "2024-01-01T06:00"], dtype="datetime64[m]")
    >>> calendar_features(times).round(6).tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    """
    chosen = (periods,) if isinstance(periods, str) else tuple(periods)
    unknown = [name for name in chosen if name not in CALENDAR_PERIODS]
    if unknown or not chosen:
        raise ConfigError(
            describe(
                "periods",
                f"one or more of {sorted(CALENDAR_PERIODS)}",
                repr(periods),
                problem="is invalid.",
            )
        )
    seconds = calendar_times(times).astype(np.int64)
    columns = []
    for name in chosen:
        phase = 2.0 * np.pi * (seconds % CALENDAR_PERIODS[name]) / CALENDAR_PERIODS[name]
        columns += [np.sin(phase), np.cos(phase)]
    features: NDArray[np.float64] = np.stack(columns, axis=1)
    return features


SAMPLES_PER_CYCLE = 4
"""Steps a calendar cycle needs at least, for its shape to be learnt (and not be a constant)."""


def calendar_periods(times: ArrayLike, *, cycles: float = 2.0) -> tuple[str, ...]:
    """The calendar cycles that ``times`` (a model's training stamps) cover ``cycles`` times.

    A model learns a daily shape only from data that spans at least two days,
    and a weekly one from at least two weeks; fewer make the calendar inputs
    an extrapolation. A cycle also needs :data:`SAMPLES_PER_CYCLE` steps or more
    (the typical step: the median one): daily or monthly readings have no time
    of day to learn (it is the same at every step), monthly ones no day of the
    week (noise). Numbers (not time stamps) give ``()``; missing stamps are
    refused (see :func:`calendar_times`).

    >>> days = np.arange(0, 3 * 86_400, 3_600).astype("datetime64[s]")
    >>> calendar_periods(days), calendar_periods(days[:30]), calendar_periods(np.arange(5.0))
    (('day',), (), ())
    >>> months = np.arange("2000-01", "2004-01", dtype="datetime64[M]").astype("datetime64[s]")
    >>> daily = np.arange("2000-01-01", "2000-03-01", dtype="datetime64[D]")
    >>> calendar_periods(months), calendar_periods(daily.astype("datetime64[s]"))
    ((), ('week',))
    """
    raw = np.asarray(times)
    if raw.ndim == 1 and raw.dtype.kind in "biufc":
        return ()
    seconds = calendar_times(raw).astype(np.int64)
    if len(seconds) < 2:
        return ()
    span = float(seconds.max() - seconds.min())
    steps = np.diff(np.sort(seconds))
    step = float(np.median(steps[steps > 0])) if (steps > 0).any() else 0.0
    return tuple(
        name
        for name, length in CALENDAR_PERIODS.items()
        if span >= cycles * length and step <= length / SAMPLES_PER_CYCLE
    )
