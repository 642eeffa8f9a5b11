"""One event of one held stream through a :class:`StreamDetector`, in Python floats.

A live single step through the vectorised detector costs about 150 small
NumPy calls (each a few microseconds on tiny arrays); this path does the same
arithmetic on Python floats, in the same order, so its numbers are the same
to the bit (``tests/stream/test_detector_one.py`` checks it against the
vectorised path on random streams). It covers the two common outcomes of a
single step of a known stream: applied with status ``ok``, and a ``duplicate``
of the last applied seq. Everything else (new, evicted or ending streams,
``start``, gaps, stale or refused events, a model the NumPy kernel does not
cover) returns None, and the caller takes the general path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..anomaly._likelihood_one import (
    LikelihoodRow,
    fmax,
    fmin,
    likelihood_step_one,
    sqrt,
    squared_z_one,
)
from ..anomaly._scorers import DEFAULT_FLOOR, combine_channels
from ._engine import DUPLICATE, OK
from ._store import StreamId

if TYPE_CHECKING:
    from ._detector import StreamDetector

__all__ = ["OneStep", "detector_step_one"]

_MAX_SEQ = 2**63 - 1


@dataclass(frozen=True, slots=True)
class OneStep:
    """What the vectorised path gives for one single-step event, as plain values."""

    prediction: NDArray[np.float32]
    """``(outputs,)``: the forecast after the step (for a duplicate: the one made then)."""
    code: int
    """``OK`` or ``DUPLICATE`` (see :data:`~stateline.stream._engine.STATUS_NAMES`)."""
    score: float
    flag: bool
    anomaly: float
    slot: int


def detector_step_one(
    detector: StreamDetector,
    stream_id: StreamId,
    row: NDArray[np.float64],
    seq: int | None,
    now: float | None,
) -> OneStep | None:
    """Step one held stream by one row ``(1, inputs)`` of scaled values, or None (nothing
    changed) where the general path must decide; see the module docstring."""
    engine = detector.engine
    store = engine.store
    slot = store._slot_of.get(stream_id)
    if slot is None or (seq is not None and not 0 <= seq <= _MAX_SEQ):
        return None
    if row.shape != (1, engine.inputs):
        return None
    columns = detector.columns
    if seq is not None and seq == int(store.last_seq[slot]):  # the last one applied, again
        with np.errstate(over="ignore"):  # the general path refuses values past float32 first
            finite = bool(np.isfinite(row.astype(np.float32)).all())
        if not store.outputs or not finite:
            return None
        flag = bool(columns.last_flag[slot])
        engine.calls += 1
        engine.events += 1
        detector.flagged += int(flag)
        return OneStep(
            prediction=store.last_output[slot].copy(),
            code=DUPLICATE,
            score=float(columns.last_score[slot]),
            flag=flag,
            anomaly=float(columns.last_anomaly[slot]),
            slot=slot,
        )
    width = detector.targets
    previous: list[float] = store.last_output[slot, :width].tolist()  # before the step
    prediction = engine._step_row(slot, row, seq, now)
    if prediction is None:
        return None
    seen = int(columns.seen[slot])
    observed: list[float] = row[0, :width].tolist()
    if seen > 0:
        error = [value - made for value, made in zip(observed, previous, strict=True)]
    else:
        error = [0.0] * width
    if seen < detector.config.reference:
        score, flag, anomaly = _calibrating(detector, slot, seen, error, observed)
    else:
        score, flag, anomaly = _live(detector, slot, error, observed)
    columns.seen[slot] = seen + 1
    columns.last_score[slot] = score
    columns.last_flag[slot] = flag
    columns.last_anomaly[slot] = anomaly
    detector.flagged += int(flag)
    return OneStep(prediction[0], OK, score, flag, anomaly, slot)


def _calibrating(
    detector: StreamDetector, slot: int, seen: int, error: list[float], observed: list[float]
) -> tuple[float, bool, float]:
    """A reference step: its error kept, the range widened; the last one calibrates."""
    columns = detector.columns
    columns.errors[slot, seen] = error
    likelihood = columns.likelihood
    low: list[float] = likelihood.low[slot].tolist()
    high: list[float] = likelihood.high[slot].tolist()
    likelihood.low[slot] = [fmin(a, b + 0.0) for a, b in zip(low, observed, strict=True)]
    likelihood.high[slot] = [fmax(a, b + 0.0) for a, b in zip(high, observed, strict=True)]
    if seen != detector.config.reference - 1:
        return math.nan, False, math.nan
    scores, flags = detector._calibrate(np.array([slot], dtype=np.int64))
    return float(scores[0]), bool(flags[0]), math.nan


def _live(
    detector: StreamDetector, slot: int, error: list[float], observed: list[float]
) -> tuple[float, bool, float]:
    """``StreamDetector._score_live`` (and ``_learn``) for one stream."""
    config = detector.config
    columns = detector.columns
    count = int(columns.count[slot])
    mean: list[float] = columns.mean[slot].tolist()
    m2: list[float] = columns.m2[slot].tolist()
    std = [_moments_std(count, value) for value in m2]
    squared = [
        squared_z_one(e, m, s, DEFAULT_FLOOR) for e, m, s in zip(error, mean, std, strict=True)
    ]
    keep = 1.0 - config.smoothing
    before: list[float] = columns.smoothed[slot].tolist()
    smoothed = [config.smoothing * z2 + keep * s for z2, s in zip(squared, before, strict=True)]
    columns.smoothed[slot] = smoothed
    score = _combine(smoothed, config.combine)
    if detector.learn and config.threshold != "likelihood":
        centre: list[float] = columns.calibrated_mean[slot].tolist()
        spread: list[float] = columns.calibrated_std[slot].tolist()
        calibrated = [
            squared_z_one(e, m, s, DEFAULT_FLOOR)
            for e, m, s in zip(error, centre, spread, strict=True)
        ]
    else:
        calibrated = squared
    surprise = _combine([sqrt(z2) for z2 in calibrated], config.combine)
    likelihood = detector._likelihood
    state = columns.likelihood
    row = LikelihoodRow(
        float(state.short[slot]),
        float(state.mean[slot]),
        float(state.var[slot]),
        state.low[slot].tolist(),
        state.high[slot].tolist(),
        int(state.quiet[slot]),
    )
    anomaly, row = likelihood_step_one(
        likelihood, row, surprise, observed, likelihood.quiet_steps(config.reference)
    )
    state.short[slot], state.mean[slot], state.var[slot] = row.short, row.mean, row.var
    state.low[slot], state.high[slot], state.quiet[slot] = row.low, row.high, row.quiet
    if config.threshold == "likelihood":
        return score, anomaly >= config.alarm, anomaly
    flag = score > float(columns.level[slot])
    if detector.learn and (detector.learn_flagged or not flag):
        _learn(detector, slot, count, mean, m2, error, score)
    return score, flag, anomaly


def _learn(
    detector: StreamDetector,
    slot: int,
    count: int,
    mean: list[float],
    m2: list[float],
    error: list[float],
    score: float,
) -> None:
    """``StreamDetector._learn`` for one stream: Welford updates of the error moments (and
    of a Gaussian threshold's score moments and level)."""
    columns = detector.columns
    count += 1
    moved = [_welford(count, m, s, e) for m, s, e in zip(mean, m2, error, strict=True)]
    columns.mean[slot] = [m for m, _ in moved]
    columns.m2[slot] = [s for _, s in moved]
    columns.count[slot] = count
    if detector.config.threshold != "gaussian":
        return
    scores = int(columns.score_count[slot]) + 1
    score_mean, score_m2 = _welford(
        scores, float(columns.score_mean[slot]), float(columns.score_m2[slot]), score
    )
    columns.score_count[slot] = scores
    columns.score_mean[slot], columns.score_m2[slot] = score_mean, score_m2
    columns.level[slot] = score_mean + detector.config.k * _moments_std(scores, score_m2)


def _welford(count: int, mean: float, m2: float, value: float) -> tuple[float, float]:
    """:func:`~stateline.anomaly._scorers.welford_step` on floats."""
    delta = value - mean
    mean = mean + delta / count
    return mean, m2 + delta * (value - mean)


def _moments_std(count: int, m2: float) -> float:
    """:func:`~stateline.anomaly._scorers.moments_std` on floats."""
    return sqrt(m2 / max(count, 1)) * (count >= 2)


def _combine(values: list[float], combine: str) -> float:
    """:func:`~stateline.anomaly._scorers.combine_channels` of one step (one channel: itself,
    as its mean and its max are; more: the NumPy reduction itself, for the same rounding)."""
    if len(values) == 1 and combine != "trimmed":
        return values[0]
    combined: Any = combine_channels(np.array(values), combine)
    return float(combined)
