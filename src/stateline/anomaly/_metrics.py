"""Point, range and delay metrics for anomaly flags against labels.

- :func:`binary_scores`: point-wise F1, false-alarm rate and missed-alarm rate
  pooled over series, as SKAB's leaderboard computes them.
- :func:`point_adjusted_f1`: a labelled range counts as found in full once any
  of its points is flagged (Xu et al. 2018), then point-wise F1.
- :func:`range_precision_recall`: range-based precision and recall of Tatbul et
  al. (NeurIPS 2018) with existence reward, cardinality factor ``1/x`` and a
  positional bias (flat, front, back or middle).
- :func:`detection_delays`: steps from the start of each labelled range to its
  first flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._errors import ConfigError, ShapeError, describe
from ._ranges import as_flags, ranges

__all__ = [
    "BinaryScores",
    "binary_scores",
    "detection_delays",
    "point_adjusted_f1",
    "range_precision_recall",
]


@dataclass(frozen=True)
class BinaryScores:
    """Pooled confusion counts and SKAB's F1, FAR (%) and MAR (%)."""

    true_positives: int
    true_negatives: int
    false_positives: int
    false_negatives: int

    @property
    def f1(self) -> float:
        """``TP / (TP + (FN + FP) / 2)``; 0 when there is nothing to find or flag."""
        denominator = self.true_positives + (self.false_negatives + self.false_positives) / 2
        return self.true_positives / denominator if denominator else 0.0

    @property
    def false_alarm_rate(self) -> float:
        """Percent of normal points flagged: ``100 FP / (FP + TN)``."""
        normal = self.false_positives + self.true_negatives
        return 100.0 * self.false_positives / normal if normal else 0.0

    @property
    def missed_alarm_rate(self) -> float:
        """Percent of anomalous points not flagged: ``100 FN / (FN + TP)``."""
        anomalous = self.false_negatives + self.true_positives
        return 100.0 * self.false_negatives / anomalous if anomalous else 0.0


def binary_scores(
    labels: ArrayLike | Sequence[ArrayLike], flags: ArrayLike | Sequence[ArrayLike]
) -> BinaryScores:
    """Point-wise scores of one series or pooled over a list of series.

    >>> scores = binary_scores([0, 0, 1, 1, 0], [0, 1, 1, 0, 0])
    >>> round(scores.f1, 3), scores.false_alarm_rate, scores.missed_alarm_rate
    (0.5, 33.33333333333333, 50.0)
    """
    pairs = _pairs(labels, flags)
    tp = tn = fp = fn = 0
    for truth, flagged in pairs:
        tp += int(np.sum(truth & flagged))
        tn += int(np.sum(~truth & ~flagged))
        fp += int(np.sum(~truth & flagged))
        fn += int(np.sum(truth & ~flagged))
    return BinaryScores(tp, tn, fp, fn)


def point_adjusted_f1(
    labels: ArrayLike | Sequence[ArrayLike], flags: ArrayLike | Sequence[ArrayLike]
) -> float:
    """F1 after marking every labelled range with at least one flag as fully flagged.

    >>> point_adjusted_f1([0, 1, 1, 1, 0, 0], [0, 0, 1, 0, 0, 1])
    0.8571428571428571
    """
    adjusted_labels, adjusted_flags = [], []
    for truth, flagged in _pairs(labels, flags):
        adjusted = flagged.copy()
        for start, end in ranges(truth).tolist():
            if flagged[start:end].any():
                adjusted[start:end] = True
        adjusted_labels.append(truth)
        adjusted_flags.append(adjusted)
    scores = binary_scores(adjusted_labels, adjusted_flags)
    found = scores.true_positives
    flagged_total = found + scores.false_positives
    real_total = found + scores.false_negatives
    if not found:
        return 0.0
    precision, recall = found / flagged_total, found / real_total
    return 2 * precision * recall / (precision + recall)


def range_precision_recall(
    labels: ArrayLike,
    flags: ArrayLike,
    *,
    alpha: float = 0.0,
    bias: str = "flat",
) -> tuple[float, float]:
    """Range-based ``(precision, recall)`` of Tatbul et al. (2018) for one series.

    ``alpha`` weighs the existence reward in recall (0: overlap only); ``bias``
    weighs positions inside a range: ``flat``, ``front`` (early points count
    more), ``back`` or ``middle``. Precision is 0 when nothing is flagged, recall
    0 when nothing is labelled.

    One labelled range of 4 steps, half of it flagged by one flagged range that
    also spills 2 steps outside:

    >>> range_precision_recall([0, 1, 1, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1, 1])
    (0.5, 0.5)
    >>> range_precision_recall([0, 1, 1, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1, 1], bias="front")
    (0.7, 0.3)
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(
            describe("alpha", "a weight in [0, 1]", repr(alpha), problem="is invalid.")
        )
    if bias not in _BIASES:
        raise ConfigError(
            describe("bias", f"one of {sorted(_BIASES)}", repr(bias), problem="is unknown.")
        )
    ((truth, flagged),) = _pairs(labels, flags)
    real, predicted = ranges(truth).tolist(), ranges(flagged).tolist()
    recall = (
        float(np.mean([_range_reward(r, predicted, alpha, bias) for r in real])) if real else 0.0
    )
    precision = (
        float(np.mean([_range_reward(p, real, 0.0, bias) for p in predicted])) if predicted else 0.0
    )
    return precision, recall


def detection_delays(labels: ArrayLike, flags: ArrayLike) -> list[int | None]:
    """For each labelled range, steps from its start to its first flag (None if missed).

    >>> detection_delays([0, 1, 1, 1, 0, 1, 1], [0, 0, 0, 1, 0, 0, 0])
    [2, None]
    """
    ((truth, flagged),) = _pairs(labels, flags)
    delays: list[int | None] = []
    for start, end in ranges(truth).tolist():
        hits = np.flatnonzero(flagged[start:end])
        delays.append(int(hits[0]) if len(hits) else None)
    return delays


# --------------------------------------------------------------------- helpers
def _pairs(
    labels: ArrayLike | Sequence[ArrayLike], flags: ArrayLike | Sequence[ArrayLike]
) -> list[tuple[NDArray[np.bool_], NDArray[np.bool_]]]:
    many = isinstance(labels, (list, tuple)) and len(labels) > 0 and np.ndim(labels[0]) == 1
    label_list = list(labels) if many else [labels]  # type: ignore[arg-type]
    flag_list = list(flags) if many else [flags]  # type: ignore[arg-type]
    if len(label_list) != len(flag_list):
        raise ShapeError(
            describe(
                "flags",
                f"one array per series ({len(label_list)})",
                f"{len(flag_list)} arrays",
                problem="has the wrong shape.",
            )
        )
    pairs = []
    for position, (truth, flagged) in enumerate(zip(label_list, flag_list, strict=True)):
        name = f"labels[{position}]" if many else "labels"
        truth_array = as_flags(np.asarray(truth), name)
        flag_name = f"flags[{position}]" if many else "flags"
        pairs.append((truth_array, as_flags(np.asarray(flagged), flag_name, len(truth_array))))
    return pairs


def _delta(bias: str, position: int, length: int) -> float:
    """Positional weight of the 1-based ``position`` in a range of ``length``."""
    if bias == "front":
        return float(length - position + 1)
    if bias == "back":
        return float(position)
    if bias == "middle":
        return float(position if position <= length / 2 else length - position + 1)
    return 1.0


_BIASES = ("back", "flat", "front", "middle")


def _range_reward(target: list[int], others: list[list[int]], alpha: float, bias: str) -> float:
    start, end = target
    length = end - start
    weights = np.array([_delta(bias, p, length) for p in range(1, length + 1)])
    covered = np.zeros(length, dtype=bool)
    overlapping = 0
    for other_start, other_end in others:
        low, high = max(start, other_start), min(end, other_end)
        if low < high:
            overlapping += 1
            covered[low - start : high - start] = True
    existence = 1.0 if overlapping else 0.0
    cardinality = 1.0 if overlapping <= 1 else 1.0 / overlapping
    overlap = cardinality * float(weights[covered].sum() / weights.sum())
    return alpha * existence + (1.0 - alpha) * overlap
