"""The detector on real SKAB experiments (read from ../shared, never copied) and online."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stateline import ConfigError, DataError, NotFittedError
from stateline.anomaly import (
    DetectorConfig,
    ErrorScorer,
    ForecastDetector,
    GaussianThreshold,
    OnlineDetector,
    QuantileThreshold,
)
from stateline.anomaly._skab import evaluate_skab, load_skab

SKAB = Path(__file__).resolve().parents[3] / "shared" / "data" / "skab"
needs_skab = pytest.mark.skipif(not SKAB.is_dir(), reason="SKAB checkout not at ../shared")


@needs_skab
def test_lstm_detector_beats_the_moving_average_on_skab_experiments() -> None:
    """Every 3rd of the 34 SKAB experiments (SKAB protocol: learn from the first 400 steps)."""
    experiments = load_skab(SKAB)[::3]
    normal = [e.values[:400] for e in experiments]
    lstm = ForecastDetector(DetectorConfig(epochs=30)).fit(normal)
    average = ForecastDetector(DetectorConfig(predictor="moving_average")).fit(normal)
    ours = evaluate_skab(experiments, lambda e: lstm.detect(e.values).flags)
    baseline = evaluate_skab(experiments, lambda e: average.detect(e.values).flags)
    assert ours.experiments == 12
    assert ours.binary.f1 > 0.7
    assert ours.binary.f1 > baseline.binary.f1 + 0.3
    assert ours.binary.missed_alarm_rate < baseline.binary.missed_alarm_rate


def test_load_skab_names_the_folder_it_could_not_read(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="holds no SKAB experiments"):
        load_skab(tmp_path)


def test_detector_flags_a_level_shift_and_calibrates_on_the_reference(
    rng: np.random.Generator,
) -> None:
    t = np.arange(900.0)
    series = np.stack([np.sin(t / 7), np.cos(t / 11)], axis=1) + 0.05 * rng.normal(size=(900, 2))
    shifted = series.copy()
    shifted[600:700, 1] += 1.0
    config = DetectorConfig(hidden=16, epochs=15, reference=400, progress=False)
    detector = ForecastDetector(config).fit([series[:400]])
    detection = detector.detect(shifted)
    assert detection.flags[600:620].any()
    assert detection.flags[:590].mean() < 0.02
    assert detection.scores.shape == (900,)
    assert detection.level == pytest.approx(
        QuantileThreshold(quantile=0.99, margin=1.5).fit(detection.scores[50:400]).level
    )


def test_detector_errors() -> None:
    with pytest.raises(ConfigError, match="predictor"):
        DetectorConfig(predictor="arima")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="warmup"):
        DetectorConfig(reference=10, warmup=20)
    with pytest.raises(NotFittedError, match="fit"):
        ForecastDetector().detect(np.zeros((500, 2)))
    detector = ForecastDetector(DetectorConfig(predictor="moving_average", reference=50, warmup=5))
    detector.fit([np.random.default_rng(0).normal(size=(50, 2))])
    with pytest.raises(DataError, match="too short"):
        detector.detect(np.zeros((50, 2)))
    with pytest.raises(DataError, match="NaN"):
        detector.detect(np.full((60, 2), np.nan))


def test_online_detector_does_not_learn_from_what_it_flags() -> None:
    scorer = ErrorScorer(smoothing=1.0)
    scorer.learn_many([[1.0], [-1.0]] * 50)
    threshold = GaussianThreshold(k=3.0).fit([1.0] * 99 + [2.0])
    flagged: list[float] = []
    online = OnlineDetector(scorer, threshold, on_flag=flagged.append)
    before = (scorer.moments.count, threshold.count)
    score, flag = online.process_one([10.0])
    assert flag and flagged == [score]
    assert (scorer.moments.count, threshold.count) == before  # the anomaly was not learned
    online.process_one([0.1])
    assert (scorer.moments.count, threshold.count) == (before[0] + 1, before[1] + 1)
    learns_all = OnlineDetector(ErrorScorer(smoothing=1.0), GaussianThreshold(), learn_flagged=True)
    learns_all.scorer.learn_many([[1.0], [-1.0]])
    learns_all.threshold.fit([0.5, 1.5])
    learns_all.process_one([50.0])
    assert learns_all.scorer.moments.count == 3 and learns_all.flagged == 1
