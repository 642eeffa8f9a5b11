"""The Numenta Anomaly Benchmark (NAB) score (Lavin and Ahmad, 2015).

Each labelled anomaly owns a *window* of steps. Inside a window only the
first detection counts, rewarded by a scaled sigmoid of its position: ``A_tp``
at the window's first step, falling towards 0 at its last. A detection outside
every window is a false positive, penalised by ``A_fp`` times the sigmoid of
its distance past the previous window (the full ``A_fp`` before the first
window and far after one). A window without detection costs ``A_fn``. Steps of
the probationary period (the first 15 % of a series, at most 750 steps) are
not scored. The raw score is normalised so that the null detector (never
detects) scores 0 and the perfect one (detects at the first step of every
window) scores 100; over several series the raw, null and perfect scores are
summed before normalising, as NAB does. :func:`nab_optimise` picks the
threshold on anomaly scores that maximises the normalised score, as NAB's
optimiser does for each profile.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._errors import ConfigError, ShapeError, describe
from ._ranges import as_flags

__all__ = ["NAB_PROFILES", "NabProfile", "NabResult", "nab_optimise", "nab_score", "nab_windows"]


@dataclass(frozen=True)
class NabProfile:
    """Weights of one NAB application profile."""

    true_positive: float
    false_positive: float
    false_negative: float


NAB_PROFILES = {
    "standard": NabProfile(1.0, 0.11, 1.0),
    "reward_low_fp": NabProfile(1.0, 0.22, 1.0),
    "reward_low_fn": NabProfile(1.0, 0.11, 2.0),
}


@dataclass(frozen=True)
class NabResult:
    """Raw, null and perfect NAB scores of one or more series, and the counts behind them."""

    raw: float
    null: float
    perfect: float
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def normalised(self) -> float:
        """``100 (raw - null) / (perfect - null)``: 0 for the null detector, 100 for the perfect."""
        span = self.perfect - self.null
        return 100.0 * (self.raw - self.null) / span if span else 0.0

    def __add__(self, other: NabResult) -> NabResult:
        return NabResult(
            self.raw + other.raw,
            self.null + other.null,
            self.perfect + other.perfect,
            self.true_positives + other.true_positives,
            self.false_positives + other.false_positives,
            self.false_negatives + other.false_negatives,
        )


def scaled_sigmoid(position: float) -> float:
    """NAB's ``2 / (1 + exp(5 x)) - 1``, and -1 past ``x = 3``."""
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def nab_windows(labels: ArrayLike, *, share: float = 0.1) -> NDArray[np.int64]:
    """NAB windows ``[start, end)`` centred on each labelled anomaly point.

    Each window is ``share`` of the series long divided by the number of
    anomalies (NAB's rule); overlapping windows are merged.

    >>> nab_windows([0] * 15 + [1] + [0] * 24).tolist()
    [[13, 17]]
    """
    flags = as_flags(labels, "labels")
    points = np.flatnonzero(flags)
    if len(points) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    width = max(1, int(share * len(flags) / len(points)))
    merged: list[list[int]] = []
    for point in points.tolist():
        start = max(0, point - width // 2)
        end = min(len(flags), start + width)
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return np.array(merged, dtype=np.int64)


def nab_score(
    flags: ArrayLike,
    windows: ArrayLike,
    *,
    profile: str = "standard",
    probation: float = 0.15,
) -> NabResult:
    """NAB score of one series' detections against its anomaly windows.

    ``flags`` holds one 0/1 per step; ``windows`` is ``(count, 2)`` half-open
    ``[start, end)`` step ranges, sorted and not overlapping (see
    :func:`nab_windows` and :func:`~stateline.anomaly.ranges`).

    A detection at the start of the only window of a 100-step series:

    >>> flags = [0] * 100
    >>> flags[40] = 1
    >>> round(nab_score(flags, [[40, 50]]).normalised, 2)
    100.0
    >>> flags[40], flags[10] = 0, 1  # now only a false positive before the window
    >>> result = nab_score(flags, [[40, 50]], probation=0.0)
    >>> result.raw, result.false_positives, result.false_negatives
    (-1.11, 1, 1)
    """
    weights = _profile(profile)
    detections = as_flags(flags, "flags")
    spans = _windows(windows, len(detections))
    if not 0.0 <= probation < 1.0:
        raise ConfigError(
            describe("probation", "a share in [0, 1)", repr(probation), problem="is invalid.")
        )
    scored_from = min(math.floor(probation * len(detections)), math.floor(probation * 5000))
    raw = 0.0
    true_positives = false_positives = false_negatives = 0
    detected = set()
    for index in np.flatnonzero(detections).tolist():
        if index < scored_from:
            continue
        window, value = detection_value(spans, index, weights)
        if window is not None:
            if window in detected:
                continue  # only the first detection in a window counts
            detected.add(window)
            raw += value
            true_positives += 1
            continue
        raw += value
        false_positives += 1
    scored = [w for w in range(len(spans)) if spans[w][1] > scored_from]
    false_negatives = sum(1 for w in scored if w not in detected)
    raw -= weights.false_negative * false_negatives
    return NabResult(
        raw=round(raw, 12),
        null=-weights.false_negative * len(scored),
        perfect=weights.true_positive * len(scored),
        true_positives=true_positives,
        false_positives=false_positives,
        false_negatives=false_negatives,
    )


def nab_optimise(
    scores: Sequence[ArrayLike],
    windows: Sequence[ArrayLike],
    *,
    profile: str = "standard",
    probation: float = 0.15,
    candidates: int = 200,
) -> tuple[float, NabResult]:
    """The threshold on anomaly scores that maximises NAB over all series, and its result.

    ``candidates`` quantiles of all scores are tried (NAB sweeps its threshold
    over the scores in the same way); a step is a detection when its score is
    at or above the threshold.
    """
    if len(scores) != len(windows):
        raise ShapeError(
            describe(
                "windows",
                f"one array per series ({len(scores)})",
                f"{len(windows)} arrays",
                problem="has the wrong shape.",
            )
        )
    arrays = [np.asarray(s, dtype=np.float64) for s in scores]
    pooled = np.concatenate(arrays) if arrays else np.zeros(0)
    pooled = pooled[np.isfinite(pooled)]
    if len(pooled) == 0:
        raise ShapeError(describe("scores", "finite anomaly scores", "none", problem="is empty."))
    levels = np.unique(np.quantile(pooled, np.linspace(0.0, 1.0, candidates)))
    best: tuple[float, NabResult] | None = None
    for level in levels[::-1]:
        total = None
        for array, spans in zip(arrays, windows, strict=True):
            result = nab_score(array >= level, spans, profile=profile, probation=probation)
            total = result if total is None else total + result
        assert total is not None
        if best is None or total.normalised > best[1].normalised:
            best = (float(level), total)
    assert best is not None
    return best


def detection_value(
    spans: list[tuple[int, int]], index: int, weights: NabProfile
) -> tuple[int | None, float]:
    """What a detection at row ``index`` is worth, and the window it falls in (None: outside).

    Inside a window: ``A_tp`` times the scaled sigmoid of its position, 1 at
    the window's first row; outside: ``A_fp`` times the sigmoid of its distance
    past the previous window (``-A_fp`` before any window). NAB's sweeper
    gives every row this value.
    """
    window = _window_of(spans, index)
    if window is not None:
        start, end = spans[window]
        position = -(end - index) / (end - start)
        return window, weights.true_positive * scaled_sigmoid(position) / scaled_sigmoid(-1.0)
    previous = _previous_window(spans, index)
    if previous is None:
        return None, -weights.false_positive
    start, end = spans[previous]
    return None, weights.false_positive * scaled_sigmoid(
        (index - (end - 1)) / max(end - start - 1, 1)
    )


def _profile(name: str) -> NabProfile:
    if name not in NAB_PROFILES:
        raise ConfigError(
            describe("profile", f"one of {sorted(NAB_PROFILES)}", repr(name), problem="is unknown.")
        )
    return NAB_PROFILES[name]


def _windows(windows: ArrayLike, length: int) -> list[tuple[int, int]]:
    array = (
        np.asarray(windows, dtype=np.int64).reshape(-1, 2)
        if np.size(windows)
        else np.zeros((0, 2), dtype=np.int64)
    )
    spans = [(int(a), int(b)) for a, b in array.tolist()]
    for position, (start, end) in enumerate(spans):
        if not 0 <= start < end <= length or (position and start < spans[position - 1][1]):
            raise ShapeError(
                describe(
                    f"windows[{position}]",
                    f"sorted, non-overlapping [start, end) ranges within 0..{length}",
                    f"[{start}, {end})",
                    problem="is invalid.",
                )
            )
    return spans


def _window_of(spans: list[tuple[int, int]], index: int) -> int | None:
    for position, (start, end) in enumerate(spans):
        if start <= index < end:
            return position
    return None


def _previous_window(spans: list[tuple[int, int]], index: int) -> int | None:
    previous = None
    for position, (_, end) in enumerate(spans):
        if end <= index:
            previous = position
    return previous
