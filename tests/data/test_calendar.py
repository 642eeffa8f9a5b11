"""Calendar covariates from time stamps of every common kind; missing stamps refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stateline.data import calendar_features, calendar_periods, calendar_times, time_disorder


def test_phase_of_the_day_and_week() -> None:
    stamps = pd.date_range("2024-01-01", periods=8, freq="3h").to_numpy()  # a Monday
    day = calendar_features(stamps)
    np.testing.assert_allclose(day[:, 0], np.sin(2 * np.pi * np.arange(8) / 8), atol=1e-12)
    both = calendar_features(stamps, ("day", "week"))
    assert both.shape == (8, 4)
    np.testing.assert_allclose(calendar_features(stamps, "day"), day)  # one name is fine


def test_time_zone_aware_and_mixed_offsets_keep_the_wall_clock() -> None:
    aware = pd.Series(pd.date_range("2024-01-01 06:00", periods=3, freq="h", tz="Europe/Berlin"))
    plain = pd.date_range("2024-01-01 06:00", periods=3, freq="h").to_numpy()
    np.testing.assert_allclose(calendar_features(aware.to_numpy()), calendar_features(plain))
    mixed = ["2024-01-01T06:00+01:00", "2024-06-01T06:00+02:00"]  # winter and summer time
    features = calendar_features(mixed)
    np.testing.assert_allclose(features[0], features[1], atol=1e-12)
    assert calendar_periods(aware.to_numpy()) == ()


def test_missing_stamps_and_numbers_are_refused() -> None:
    with pytest.raises(ValueError, match="NaT"):
        calendar_features(np.array(["2024-01-01", "NaT"], dtype="datetime64[s]"))
    with pytest.raises(ValueError, match="numbers"):
        calendar_times(np.array([1.5, 2.0]))
    with pytest.raises(ValueError, match="periods is invalid"):
        calendar_features(np.array(["2024-01-01"], dtype="datetime64[s]"), ("month",))
    assert calendar_periods(np.arange(10.0)) == ()


def test_periods_covered_twice() -> None:
    hours = pd.date_range("2024-01-01", periods=24 * 15, freq="h").to_numpy()
    assert calendar_periods(hours[:47]) == ()
    assert calendar_periods(hours[:49]) == ("day",)
    assert calendar_periods(hours) == ("day", "week")
    assert time_disorder(np.array([1, 2, 2, 1, 5])) == 2
