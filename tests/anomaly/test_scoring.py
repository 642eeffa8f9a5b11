"""Scorer, thresholds and baselines: batch and online forms agree; errors are clear."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stateline import ConfigError, NotFittedError, ShapeError
from stateline.anomaly import (
    DetectorConfig,
    DynamicThreshold,
    ErrorScorer,
    ForecastDetector,
    GaussianThreshold,
    MovingAverage,
    QuantileThreshold,
    RunningMoments,
    WindowedGaussian,
)


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(2, 40),
    channels=st.integers(1, 4),
    split=st.integers(0, 40),
    seed=st.integers(0, 1000),
)
def test_running_moments_one_at_a_time_equal_bulk(
    rows: int, channels: int, split: int, seed: int
) -> None:
    data = np.random.default_rng(seed).normal(size=(rows, channels)) * 3 + 1
    one, bulk = RunningMoments(), RunningMoments()
    for row in data:
        one.learn_one(row)
    bulk.learn_many(data[:split])
    bulk.learn_many(data[split:])
    np.testing.assert_allclose(one.mean, data.mean(axis=0))
    np.testing.assert_allclose(one.std, data.std(axis=0))
    np.testing.assert_allclose(bulk.mean, one.mean)
    np.testing.assert_allclose(bulk.std, one.std)


def test_error_scorer_online_equals_batch_and_normalises_channels(rng: np.random.Generator) -> None:
    normal = rng.normal(size=(500, 3)) * np.array([1.0, 100.0, 0.01])
    stream = rng.normal(size=(50, 3)) * np.array([1.0, 100.0, 0.01])
    batch, online = ErrorScorer(smoothing=0.2), ErrorScorer(smoothing=0.2)
    batch.learn_many(normal)
    online.learn_many(normal)
    expected = batch.score_many(stream)
    got = [online.score_one(row) for row in stream]
    np.testing.assert_allclose(got, expected)
    # channels in very different units weigh alike: scores of normal data are ~1 on average
    fresh = ErrorScorer(smoothing=1.0)
    fresh.learn_many(normal)
    assert 0.8 < fresh.raw_many(normal).mean() < 1.2
    big = ErrorScorer(smoothing=1.0, combine="max")
    big.learn_many(normal)
    spike = np.zeros((1, 3))
    spike[0, 2] = 0.1  # 10 std in the tiny channel
    assert big.raw_many(spike)[0] > 50


def test_channels_are_smoothed_one_by_one_then_combined() -> None:
    """Each channel's squared z is smoothed on its own; trimmed drops the largest channel."""
    normal = np.array([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]] * 50)  # mean 0, std 1 per channel
    errors = np.array([[4.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    squared = errors**2
    by_hand = np.empty_like(squared)
    by_hand[0] = squared[0]
    for step in (1, 2):
        by_hand[step] = 0.5 * squared[step] + 0.5 * by_hand[step - 1]
    expected = {
        "mean": by_hand.mean(axis=1),
        "max": by_hand.max(axis=1),
        "trimmed": (by_hand.sum(axis=1) - by_hand.max(axis=1)) / 2,
    }
    for combine, scores in expected.items():
        scorer = ErrorScorer(smoothing=0.5, combine=combine)
        scorer.learn_many(normal)
        np.testing.assert_allclose(scorer.score_many(errors), scores)
        scorer.reset()
        np.testing.assert_allclose([scorer.score_one(row) for row in errors], scores)
    # one channel far off raises no trimmed score; two channels do
    trimmed = ErrorScorer(smoothing=1.0, combine="trimmed")
    trimmed.learn_many(normal)
    assert trimmed.raw_many([[10.0, 0.0, 0.0]])[0] == 0.0
    assert trimmed.raw_many([[10.0, 10.0, 0.0]])[0] == 50.0


def test_trimmed_needs_two_channels() -> None:
    scorer = ErrorScorer(combine="trimmed")
    scorer.learn_many([[1.0], [-1.0]])
    with pytest.raises(ShapeError, match="combine='mean'"):
        scorer.score_one([3.0])
    config = DetectorConfig(predictor="moving_average", combine="trimmed", reference=20, warmup=2)
    with pytest.raises(ShapeError, match="at least 2 channels"):
        ForecastDetector(config).fit(np.ones((30, 1)))


def test_error_scorer_errors() -> None:
    with pytest.raises(ConfigError, match="smoothing"):
        ErrorScorer(smoothing=0.0)
    with pytest.raises(ConfigError, match="combine"):
        ErrorScorer(combine="median")
    with pytest.raises(NotFittedError, match="learn_many"):
        ErrorScorer().score_one([1.0])
    scorer = ErrorScorer()
    scorer.learn_many(np.ones((5, 2)) + np.arange(5)[:, None])
    with pytest.raises(ShapeError, match="2 channels"):
        scorer.score_many(np.ones((3, 3)))


def test_thresholds_batch_and_online_agree(rng: np.random.Generator) -> None:
    scores = rng.gamma(2.0, size=300)
    for batch, online in (
        (
            QuantileThreshold(quantile=0.95, margin=1.2),
            QuantileThreshold(quantile=0.95, margin=1.2),
        ),
        (GaussianThreshold(k=2.5), GaussianThreshold(k=2.5)),
        (DynamicThreshold(window=300), DynamicThreshold(window=300)),
    ):
        batch.fit(scores)
        for score in scores:
            online.learn_one(float(score))
        assert online.level == pytest.approx(batch.level)
        probe = np.array([0.0, batch.level * 0.99, batch.level * 1.01, 1e9])
        assert batch.flag_many(probe).tolist() == [False, False, True, True]
        assert [online.flag_one(float(p)) for p in probe] == [False, False, True, True]


def test_quantile_threshold_keeps_a_bounded_window() -> None:
    threshold = QuantileThreshold(quantile=1.0, margin=1.0, window=3)
    for score in (100.0, 1.0, 2.0, 3.0):
        threshold.learn_one(score)
    assert threshold.level == 3.0  # 100 has left the window


def test_dynamic_threshold_flags_spikes_and_prunes_small_excursions(
    rng: np.random.Generator,
) -> None:
    scores = np.abs(rng.normal(size=1000)) * 0.1 + 1.0
    scores[300:305] = 8.0  # a clear anomaly
    scores[700] = 1.6  # a mild excursion that pruning should drop
    flags = DynamicThreshold(window=1000, step=1000).detect_many(scores)
    assert flags[300:305].all()
    assert not flags[700]
    assert flags.sum() == 5


def test_threshold_errors() -> None:
    with pytest.raises(ConfigError, match="quantile"):
        QuantileThreshold(quantile=1.5)
    with pytest.raises(ConfigError, match="k is invalid"):
        GaussianThreshold(k=0)
    with pytest.raises(ConfigError, match="z_range"):
        DynamicThreshold(z_range=(3.0, 2.0))
    with pytest.raises(NotFittedError, match="fit"):
        QuantileThreshold().flag_one(1.0)


def test_baselines_online_equal_batch(rng: np.random.Generator) -> None:
    series = rng.normal(size=(60, 2))
    average = MovingAverage(window=5)
    predictions = average.predict_many(series)
    gaussian = WindowedGaussian(window=7)
    scores = gaussian.score_many(series)
    for t, row in enumerate(series):
        if t:
            np.testing.assert_allclose(average.predict_one(), predictions[t])
        assert gaussian.score_one(row) == pytest.approx(scores[t], rel=1e-9, abs=1e-9)
        average.learn_one(row)
        gaussian.learn_one(row)
    assert np.isnan(predictions[0]).all()
    assert (MovingAverage(window=3).errors_many(series)[0] == 0).all()
