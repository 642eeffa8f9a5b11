"""The anomaly likelihood's step for one stream, in Python floats.

:func:`likelihood_step_one` is :func:`~stateline.anomaly._likelihood.likelihood_step`
for one stream, the same operations in the same order on floats, so the numbers
are the same to the bit, NaN, infinities and the sign of zero included: the
float helpers below copy NumPy's choices (``np.maximum`` gives its second
argument on a tie, ``np.fmin`` its first; ``exp`` and ``log`` are NumPy's own,
which on CPUs with AVX-512 differ from ``math``'s in the last bit).
``tests/anomaly/test_likelihood_one.py`` checks both against the vectorised
forms. What the stream detector's one-event path uses (a few microseconds where
the vectorised step costs about a hundred on one stream).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._likelihood import TAIL_FLOOR, LikelihoodConfig, erfcc_polynomial

__all__ = [
    "LikelihoodRow",
    "clip",
    "fmax",
    "fmin",
    "likelihood_step_one",
    "log_tail_score_one",
    "maximum",
    "minimum",
    "squared_z_one",
]

_LOG_FLOOR = math.log(TAIL_FLOOR)
_SQRT2 = math.sqrt(2.0)


class LikelihoodRow(NamedTuple):
    """One stream's :class:`~stateline.anomaly._likelihood.LikelihoodState` row, as floats."""

    short: float
    mean: float
    var: float
    low: list[float]
    high: list[float]
    quiet: int


def maximum(a: float, b: float) -> float:
    """``np.maximum(a, b)``: NaN if either is; ``b`` on a tie (``-0.0`` vs ``0.0``).

    >>> maximum(1.0, 2.0), maximum(float("nan"), 2.0), str(maximum(0.0, -0.0))
    (2.0, nan, '-0.0')
    """
    if a != a:
        return a
    return a if a > b else b


def minimum(a: float, b: float) -> float:
    """``np.minimum(a, b)``: NaN if either is; ``b`` on a tie."""
    if a != a:
        return a
    return a if a < b else b


def fmin(a: float, b: float) -> float:
    """``np.fmin(a, b)``: the smaller, NaN only if both are; ``a`` on a tie."""
    if b != b:
        return a
    if a != a:
        return b
    return b if b < a else a


def fmax(a: float, b: float) -> float:
    """``np.fmax(a, b)``: the larger, NaN only if both are; ``a`` on a tie."""
    if b != b:
        return a
    if a != a:
        return b
    return b if b > a else a


def clip(value: float, low: float, high: float) -> float:
    """``np.clip(value, low, high)``: NaN stays NaN, ``-0.0`` stays ``-0.0`` at ``low=0.0``."""
    if value != value:
        return value
    return low if value < low else (high if value > high else value)


def sqrt(value: float) -> float:
    """``np.sqrt``: NaN for NaN and negative numbers (``math.sqrt`` raises on those)."""
    return math.sqrt(value) if value >= 0.0 else math.nan


def squared_z_one(error: float, mean: float, std: float, floor: float) -> float:
    """:func:`~stateline.anomaly._scorers.squared_z` of one channel."""
    z = (error - mean) / maximum(std, floor)
    return z * z


def log_tail_score_one(z: float) -> float:
    """:func:`~stateline.anomaly._likelihood.log_tail_score` of one z.

    >>> round(log_tail_score_one(4.3), 3)
    0.5
    """
    x = abs(z) / _SQRT2
    t = 1.0 / (1.0 + 0.5 * x)
    poly = erfcc_polynomial(t)
    erfc = t * float(np.exp(-x * x + poly))
    tail = 0.5 * (erfc if z >= 0 else 2.0 - erfc)
    return clip(float(np.log(tail + TAIL_FLOOR)) / _LOG_FLOOR, 0.0, 1.0)


def range_score_one(
    config: LikelihoodConfig, low: list[float], high: list[float], values: list[float]
) -> float:
    """:func:`~stateline.anomaly._likelihood.range_scores` of one stream."""
    assert config.range_tolerance is not None
    result = math.nan
    for index, (lo, hi, value) in enumerate(zip(low, high, values, strict=True)):
        span = hi - lo
        excess = maximum(value - hi, lo - value)
        share = excess / span if span > 0 else (math.inf if excess > 0 else 0.0)
        rising = (1.0 - config.range_base) * share / config.range_tolerance
        graded = minimum(1.0, config.range_base + rising) if share > 0 else 0.0
        result = graded if index == 0 else maximum(result, graded)  # .max(axis=1)
    return result


def likelihood_step_one(
    config: LikelihoodConfig,
    row: LikelihoodRow,
    surprise: float,
    values: list[float] | None,
    quiet_steps: int,
) -> tuple[float, LikelihoodRow]:
    """Advance one stream's likelihood by one step: ``(anomaly score, the row after)``.

    >>> config = LikelihoodConfig(range_tolerance=None)
    >>> score, row = likelihood_step_one(config, LikelihoodRow(1.0, 1.0, 0.01, [], [], 0), 9.0,
    ...     None, 5)
    >>> round(score, 2), row.quiet
    (1.0, 5)
    """
    surprise = fmin(surprise, config.cap)
    short = config.short * surprise + (1.0 - config.short) * row.short
    mean, var = row.mean, row.var
    z = (short - mean) / maximum(sqrt(var), config.floor)
    score = log_tail_score_one(z)
    low, high = row.low, row.high
    if values is not None and config.range_tolerance is not None:
        score = maximum(score, range_score_one(config, low, high, values))
        low = [fmin(a, b + 0.0) for a, b in zip(low, values, strict=True)]  # as track_range
        high = [fmax(a, b + 0.0) for a, b in zip(high, values, strict=True)]
    quiet = row.quiet
    if quiet > 0:
        score, quiet = 0.0, quiet - 1
    else:
        quiet = quiet_steps if score >= config.alarm else 0
    delta = short - mean
    mean = mean + config.long * delta
    var = (1.0 - config.long) * (var + config.long * (delta * delta))
    return score, LikelihoodRow(short, mean, var, low, high, quiet)
