"""Each metric on small cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stateline import ShapeError
from stateline.anomaly import (
    binary_scores,
    detection_delays,
    nab_optimise,
    nab_score,
    nab_windows,
    point_adjusted_f1,
    range_precision_recall,
    ranges,
)
from stateline.anomaly._nab import scaled_sigmoid


def test_binary_scores_pool_series_as_skab_does() -> None:
    # series 1: TP 2, FP 1, FN 1, TN 2; series 2: TP 0, FP 0, FN 2, TN 2
    scores = binary_scores(
        [np.array([1, 1, 1, 0, 0, 0]), np.array([1, 1, 0, 0])],
        [np.array([1, 1, 0, 1, 0, 0]), np.array([0, 0, 0, 0])],
    )
    assert (scores.true_positives, scores.false_positives) == (2, 1)
    assert (scores.false_negatives, scores.true_negatives) == (3, 4)
    assert scores.f1 == pytest.approx(2 / (2 + (3 + 1) / 2))
    assert scores.false_alarm_rate == pytest.approx(100 * 1 / 5)
    assert scores.missed_alarm_rate == pytest.approx(100 * 3 / 5)


def test_binary_scores_refuse_mismatched_lengths() -> None:
    with pytest.raises(ShapeError, match="flags"):
        binary_scores([0, 1, 1], [0, 1])


def test_point_adjusted_f1_credits_whole_ranges() -> None:
    labels = [0, 1, 1, 1, 1, 0, 0, 1, 1, 0]
    flags = [0, 0, 0, 1, 0, 0, 1, 0, 0, 0]
    # range 1 (4 points) is found in full, range 2 (2 points) missed; one false positive.
    precision, recall = 4 / 5, 4 / 6
    assert point_adjusted_f1(labels, flags) == pytest.approx(
        2 * precision * recall / (precision + recall)
    )
    assert point_adjusted_f1(labels, [0] * 10) == 0.0


def test_range_precision_recall_with_cardinality_and_existence() -> None:
    labels = [0, 1, 1, 1, 1, 1, 1, 0, 0, 0]  # one range of 6
    flags = [0, 1, 1, 0, 0, 1, 0, 0, 1, 1]  # three predicted ranges: 2 in, 1 in, 2 out
    precision, recall = range_precision_recall(labels, flags)
    # recall: 3 of 6 points covered, by 2 predicted ranges -> cardinality 1/2
    assert recall == pytest.approx(0.5 * 3 / 6)
    # precision: ranges [1,3) and [5,6) fully inside (1 each), [8,10) outside (0)
    assert precision == pytest.approx((1 + 1 + 0) / 3)
    _, with_existence = range_precision_recall(labels, flags, alpha=0.5)
    assert with_existence == pytest.approx(0.5 * 1 + 0.5 * 0.25)
    _, back = range_precision_recall(labels, [0, 0, 0, 0, 0, 1, 1, 0, 0, 0], bias="back")
    assert back == pytest.approx((5 + 6) / 21)
    assert range_precision_recall([0, 0], [0, 0]) == (0.0, 0.0)


def test_detection_delays_and_ranges() -> None:
    assert ranges([1, 1, 0, 1]).tolist() == [[0, 2], [3, 4]]
    assert detection_delays([0, 1, 1, 1, 0, 0, 1, 1], [0, 0, 1, 1, 0, 0, 0, 1]) == [1, 1]


def test_nab_score_by_hand() -> None:
    """One window [40, 50) in 100 steps; detections at 45 (inside), 60 and 95 (after)."""
    flags = np.zeros(100, dtype=int)
    flags[[45, 46, 60, 95]] = 1
    result = nab_score(flags, [[40, 50]], probation=0.0)
    tp = scaled_sigmoid(-(50 - 45) / 10) / scaled_sigmoid(-1.0)
    fp_60 = 0.11 * scaled_sigmoid((60 - 49) / 9)
    fp_95 = 0.11 * -1.0  # more than 3 window lengths past: full penalty
    assert (result.true_positives, result.false_positives, result.false_negatives) == (1, 2, 0)
    assert result.raw == pytest.approx(tp + fp_60 + fp_95)
    assert result.null == -1.0 and result.perfect == 1.0
    assert result.normalised == pytest.approx(100 * (result.raw + 1) / 2)
    low_fn = nab_score(np.zeros(100), [[40, 50]], profile="reward_low_fn", probation=0.0)
    assert low_fn.raw == -2.0 and low_fn.normalised == 0.0


def test_nab_probation_and_windows() -> None:
    flags = np.zeros(100, dtype=int)
    flags[5] = 1  # inside the probationary 15 %: not scored
    assert nab_score(flags, [[40, 50]]).false_positives == 0
    assert nab_windows([0] * 50 + [1] + [0] * 49, share=0.1).tolist() == [[45, 55]]
    with pytest.raises(ShapeError, match="windows"):
        nab_score(flags, [[50, 40]])


def test_nab_optimise_finds_the_separating_threshold() -> None:
    scores = [np.r_[np.zeros(40), 5.0, np.zeros(59)], np.r_[np.zeros(70), 3.0, np.zeros(29)]]
    windows = [[[40, 50]], [[70, 80]]]
    level, result = nab_optimise(scores, windows, probation=0.0)
    assert 0.0 < level <= 3.0
    assert result.normalised == pytest.approx(100.0)
    assert math.isclose(result.perfect, 2.0)


def test_flag_report_pools_series_and_counts_onsets_once() -> None:
    from stateline.anomaly import flag_report

    labels = [[0, 1, 1, 0, 0, 0], [0, 0, 0, 0, 1, 1]]
    flags = [[0, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0]]
    report = flag_report(labels, flags)
    assert report.binary.true_positives == 2 and report.binary.false_positives == 2
    assert report.delays == [0, None] and report.found == 1
    assert report.nab.false_positives == 2  # every flagged step outside a window
    assert flag_report(labels, flags, nab_on="onsets").nab.false_positives == 0
    with pytest.raises(ShapeError, match="one array per labelled series"):
        flag_report(labels, flags[:1])
