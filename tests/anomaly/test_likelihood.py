"""The anomaly likelihood: adapts to a new normal, survives wild values, refuses bad settings."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stateline.anomaly import DetectorConfig, ForecastDetector, LikelihoodConfig
from stateline.anomaly._likelihood import (
    LikelihoodState,
    likelihood_calibrate,
    likelihood_series,
    likelihood_step,
    log_tail_score,
)


def sine(steps: int = 3000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    return (np.sin(2 * np.pi * t / 50) + rng.normal(0, 0.1, steps))[:, None]


def average(reference: int = 500, **changes: object) -> ForecastDetector:
    config = DetectorConfig(
        predictor="moving_average",
        window=5,
        threshold="likelihood",
        reference=reference,
        **changes,  # type: ignore[arg-type]
    )
    return ForecastDetector(config).fit(sine()[:reference])


def test_a_new_level_is_anomalous_once_then_normal() -> None:
    series = sine()
    series[1500:] += 3.0
    detection = average().detect(series)
    assert np.flatnonzero(detection.flags).tolist() == [1500]
    assert detection.anomaly_scores[1700:].max() < 0.9


def test_a_noisier_normal_becomes_normal_only_with_adaptation() -> None:
    """The errors stay larger after the change: the long window learns them as the new normal."""
    series = sine()
    series[1500:] += np.random.default_rng(2).normal(0, 0.4, (1500, 1))
    adapted = average(range_tolerance=None).detect(series).anomaly_scores
    frozen = average(range_tolerance=None, long=0.0).detect(series).anomaly_scores
    assert adapted[2200:].max() < 0.9
    assert (frozen[2200:] >= 0.9).sum() >= 2  # alarm after alarm, one per quiet period


def test_quiet_period_silences_the_steps_after_an_alarm() -> None:
    series = sine()
    series[1500:1600] += 6.0 * np.random.default_rng(1).normal(size=(100, 1))
    quiet = average(quiet=0.2).detect(series)  # 100 steps of silence
    loud = average(quiet=0.0).detect(series)
    first = int(np.flatnonzero(quiet.flags)[0])
    assert (quiet.anomaly_scores[first + 1 : first + 101] == 0.0).all()
    assert loud.flags[first + 1 : first + 101].sum() > 1


def test_a_wild_value_does_not_blind_the_detector_for_good() -> None:
    """An error of 1e200 (or inf, or NaN from a broken predictor) is capped at ``cap``."""
    config = LikelihoodConfig(range_tolerance=None)
    rng = np.random.default_rng(0)
    surprise = np.abs(rng.normal(size=3000))
    for wild in (1e200, np.inf, np.nan):
        glitched = surprise.copy()
        glitched[1000] = wild
        glitched[2500] = 30.0  # a real anomaly much later
        scores = likelihood_series(config, glitched, None, 500, 50)
        assert np.isfinite(scores[500:]).all()
        assert scores[1000] >= 0.9 and scores[2500] >= 0.9


def test_errors_and_values_must_be_finite() -> None:
    detector = average()
    errors = np.zeros((600, 1))
    errors[550] = np.nan
    with pytest.raises(ValueError, match="errors holds NaN or inf"):
        detector.score_errors(errors)
    with pytest.raises(ValueError, match="values holds NaN or inf"):
        detector.score_errors(np.zeros((600, 1)), values=np.full((600, 1), np.inf))


def test_warmup_depends_on_the_series_own_reference() -> None:
    """``detect(reference=r)`` gives the same numbers whatever the config's own reference."""
    series = sine()
    first = average(reference=400).detect(series, reference=200)
    second = average(reference=700).detect(series, reference=200)
    np.testing.assert_array_equal(first.anomaly_scores, second.anomaly_scores)
    np.testing.assert_array_equal(
        average(reference=400).detect(series, reference=np.int64(200)).anomaly_scores,
        first.anomaly_scores,
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("alarm", "0.5"),
        ("alarm", 1.5),
        ("short", 0.0),
        ("long", -0.1),
        ("quiet", float("inf")),
        ("quiet", float("nan")),
        ("range_tolerance", 0.0),
        ("range_base", True),
        ("cap", 0.0),
        ("floor", float("inf")),
    ],
)
def test_bad_settings_are_refused_by_name(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"{field} is invalid"):
        LikelihoodConfig(**{field: value})  # type: ignore[arg-type]


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    streams=st.integers(1, 4),
    quiet=st.sampled_from([0, 3, 20]),
    tolerance=st.sampled_from([None, 0.05]),
)
def test_bulk_series_equal_the_step_by_step_form(
    seed: int, streams: int, quiet: int, tolerance: float | None
) -> None:
    """``likelihood_series`` (offline, in bulk) == ``likelihood_step`` over many streams."""
    config = LikelihoodConfig(range_tolerance=tolerance, alarm=0.6)
    rng = np.random.default_rng(seed)
    steps, reference, warmup = 200, 60, 10
    surprise = np.abs(rng.standard_t(3, size=(streams, steps)))
    values = rng.normal(size=(streams, steps, 2)).cumsum(axis=1)
    state = LikelihoodState.empty(streams, 2)
    for row in range(streams):
        one = LikelihoodState.empty(1, 2)
        likelihood_calibrate(one, config, surprise[row, :reference], warmup)
        for name in LikelihoodState.names():
            getattr(state, name)[row] = getattr(one, name)[0]
    state.low[...] = values[:, :reference].min(axis=1)
    state.high[...] = values[:, :reference].max(axis=1)
    stepped = np.zeros((streams, steps))
    for step in range(reference, steps):
        stepped[:, step] = likelihood_step(state, config, surprise[:, step], values[:, step], quiet)
    for row in range(streams):
        bulk = likelihood_series(
            LikelihoodConfig(range_tolerance=tolerance, alarm=0.6, quiet=quiet / reference),
            surprise[row],
            values[row],
            reference,
            warmup,
        )
        np.testing.assert_allclose(bulk[reference:], stepped[row, reference:], rtol=1e-12)


def test_log_tail_score_is_monotone_and_bounded() -> None:
    z = np.linspace(-10, 20, 2001)
    scores = log_tail_score(z)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert (np.diff(scores) >= -1e-12).all()


@pytest.mark.parametrize("streams, channels", [(1, 3), (1, 4), (4, 3), (2, 8)])
def test_a_range_takes_minus_zero_as_zero_whatever_the_loop(streams: int, channels: int) -> None:
    """NumPy's fmin returns its first argument on a tie of zeros in its scalar loop and its
    second in its SIMD one: the range must not keep a sign of zero that depends on how many
    streams and channels a call holds."""
    from stateline.anomaly._likelihood import track_range

    state = LikelihoodState.empty(streams, channels)
    track_range(state, np.zeros((streams, channels)))
    track_range(state, -np.zeros((streams, channels)))
    assert not np.signbit(state.low).any() and not np.signbit(state.high).any()
    fresh = LikelihoodState.empty(streams, channels)
    track_range(fresh, -np.zeros((streams, channels)))
    assert not np.signbit(fresh.low).any() and not np.signbit(fresh.high).any()
