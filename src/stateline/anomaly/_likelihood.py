"""The anomaly likelihood: one score in [0, 1] per step that adapts to each stream's new normal.

Raw prediction errors are not comparable across streams, and on a drifting
stream they stay high long after the drift has become the new normal. The
likelihood turns them into one score that means the same thing everywhere
(after Ahmad et al. 2017, Numenta's anomaly likelihood):

1. *surprise*: each channel's error as an absolute z-score against the
   errors of the stream's reference part, the channels combined, capped at
   ``cap`` (10: a step counts at most as ten standard deviations, so one wild
   value, even an overflowing or NaN one, cannot blind the windows for long);
2. *short window*: an exponentially weighted average of the surprise
   (``short`` weight 0.2: about the last 9 steps);
3. *long window*: exponentially weighted mean and variance of the short
   average (``long`` weight 0.002: about the last 500 steps), started from the
   reference part and updated at every step, so a new level or a slow drift
   stops being unusual once it lasts;
4. *tail probability* of the short average under the long window's normal
   distribution, reported on a log scale,
   ``log(tail + 1e-10) / log(1e-10)``: 0.5 is a z of about 4.3, 1.0 a tail
   of 1e-10;
5. *range rule*: a value outside the range the stream has shown so far
   scores at least ``range_base`` (0.8) at the edge of that range, rising
   linearly to 1.0 at ``range_tolerance`` (5 %) of the range beyond it (any
   change of a channel that was constant so far scores 1.0);
6. *quiet period*: after an alarm (a score at or above ``alarm``) the next
   ``quiet`` x reference steps score 0, so one event raises one alarm.

:func:`likelihood_step` advances many streams by one step at once (the stream
detector runs it over the streams of each call); :func:`likelihood_series`
computes the same numbers for a whole series at once (the offline detector).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._validate import plain_numbers, require_number

__all__ = [
    "LikelihoodConfig",
    "LikelihoodState",
    "likelihood_calibrate",
    "likelihood_series",
    "likelihood_step",
    "log_tail_score",
]

TAIL_FLOOR = 1e-10
"""The smallest tail probability told apart: a score of 1.0."""


@dataclass(frozen=True, kw_only=True)
class LikelihoodConfig:
    """Settings of the anomaly likelihood; validated on creation.

    Set ``long=0`` to keep the long window as calibrated (no adaptation),
    ``range_tolerance=None`` to drop the range rule and ``quiet=0`` to drop
    the quiet period (the ablations of ``bench/anomaly.py``).

    >>> LikelihoodConfig(quiet=0.1).quiet_steps(600)
    60
    """

    short: float = 0.2
    long: float = 0.002
    range_tolerance: float | None = 0.05
    range_base: float = 0.8
    quiet: float = 0.2
    alarm: float = 0.9
    cap: float = 10.0
    floor: float = 1e-3

    def __post_init__(self) -> None:
        plain_numbers(self)
        require_number("short", self.short, "a weight in (0, 1]", 1e-12, 1.0)
        require_number("long", self.long, "a weight in [0, 1] (0: no adaptation)", 0.0, 1.0)
        require_number("alarm", self.alarm, "a score in (0, 1]", 1e-12, 1.0)
        require_number("range_base", self.range_base, "a score in [0, 1]", 0.0, 1.0)
        if self.range_tolerance is not None:
            require_number(
                "range_tolerance",
                self.range_tolerance,
                "a share > 0 of the range seen so far, or None (no range rule)",
                1e-12,
                math.inf,
            )
        require_number(
            "quiet", self.quiet, "a share in [0, 100] of the reference steps", 0.0, 100.0
        )
        require_number("cap", self.cap, "a surprise (absolute z) > 0", 1e-12, 1e300)
        require_number("floor", self.floor, "a finite spread > 0", 1e-300, 1e300)

    def quiet_steps(self, reference: int) -> int:
        """Steps of silence after an alarm for a stream with ``reference`` reference steps."""
        return round(self.quiet * reference)


@dataclass(eq=False)
class LikelihoodState:
    """The likelihood's state of ``n`` streams, one row each (arrays, changed in place)."""

    short: NDArray[np.float64]
    mean: NDArray[np.float64]
    var: NDArray[np.float64]
    low: NDArray[np.float64]
    """``(n, channels)`` smallest value seen so far per channel (NaN before any)."""
    high: NDArray[np.float64]
    quiet: NDArray[np.int64]
    """Steps of silence left."""

    @classmethod
    def empty(cls, streams: int, channels: int) -> LikelihoodState:
        return cls(
            short=np.zeros(streams),
            mean=np.zeros(streams),
            var=np.zeros(streams),
            low=np.full((streams, channels), np.nan),
            high=np.full((streams, channels), np.nan),
            quiet=np.zeros(streams, dtype=np.int64),
        )

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The field names, in order (the per-stream columns of a stream detector)."""
        return tuple(item.name for item in fields(cls))


def log_tail_score(z: ArrayLike) -> NDArray[np.float64]:
    """``log(Q(z) + 1e-10) / log(1e-10)`` clipped to [0, 1]: Q is the normal upper tail.

    >>> log_tail_score([0.0, 4.3, 7.0]).round(3).tolist()
    [0.03, 0.5, 1.0]
    """
    values = np.asarray(z, dtype=np.float64)
    score = np.log(_upper_tail(values) + TAIL_FLOOR) / math.log(TAIL_FLOOR)
    clipped: NDArray[np.float64] = np.clip(score, 0.0, 1.0)
    return clipped


def track_range(state: LikelihoodState, values: NDArray[np.float64]) -> None:
    """Widen each stream's range to include ``values`` ``(n, channels)`` (NaN: not seen).

    ``-0.0`` is taken as ``0.0`` (adding ``0.0`` makes it so): on a tie of zeros NumPy's
    ``fmin`` returns its first argument in its scalar loop and its second in its SIMD one,
    so a range's sign of zero would depend on how many channels and streams a call holds."""
    unsigned = values + 0.0
    state.low[...] = np.fmin(state.low, unsigned)
    state.high[...] = np.fmax(state.high, unsigned)


def range_scores(
    config: LikelihoodConfig,
    low: NDArray[np.float64],
    high: NDArray[np.float64],
    values: NDArray[np.float64],
) -> NDArray[np.float64]:
    """The range rule's score of ``values`` ``(n, channels)`` against ranges seen before (0 inside).

    >>> config = LikelihoodConfig()
    >>> low, high = np.array([[0.0]] * 3), np.array([[10.0]] * 3)
    >>> range_scores(config, low, high, np.array([[5.0], [10.25], [12.0]])).tolist()
    [0.0, 0.9, 1.0]
    >>> range_scores(config, low[:1], low[:1], np.array([[0.5]])).tolist()  # constant so far
    [1.0]
    """
    assert config.range_tolerance is not None
    span = high - low
    excess = np.maximum(values - high, low - values)
    with np.errstate(divide="ignore", invalid="ignore"):
        # A channel constant so far: any other value is beyond its (zero-width) range.
        share = np.where(span > 0, excess / span, np.where(excess > 0, np.inf, 0.0))
    rising = (1.0 - config.range_base) * share / config.range_tolerance
    graded = np.where(share > 0, np.minimum(1.0, config.range_base + rising), 0.0)
    result: NDArray[np.float64] = graded.max(axis=1)
    return result


def likelihood_calibrate(
    state: LikelihoodState, config: LikelihoodConfig, surprise: NDArray[np.float64], start: int
) -> None:
    """Start the windows of the state's rows from their reference surprise ``(rows, reference)``
    (or ``(reference,)`` for row 0 alone), all rows at once.

    The short average runs over every reference step; the long window starts
    as the mean and variance of the short averages from ``start`` on.
    """
    capped = np.fmin(np.atleast_2d(np.asarray(surprise, dtype=np.float64)), config.cap)
    rows = len(capped)
    shorts = np.empty_like(capped)
    short = capped[:, 0].copy()
    for index in range(capped.shape[1]):  # over reference steps, vectorised over rows
        short = config.short * capped[:, index] + (1.0 - config.short) * short
        shorts[:, index] = short
    state.short[:rows] = short
    state.mean[:rows] = shorts[:, start:].mean(axis=1)
    state.var[:rows] = shorts[:, start:].var(axis=1)
    state.quiet[:rows] = 0


def likelihood_step(
    state: LikelihoodState,
    config: LikelihoodConfig,
    surprise: NDArray[np.float64],
    values: NDArray[np.float64] | None,
    quiet_steps: int,
) -> NDArray[np.float64]:
    """Advance every stream of ``state`` by one step; returns their anomaly scores ``(n,)``.

    ``surprise`` is each stream's combined absolute error z-score ``(n,)``;
    ``values`` the observed values ``(n, channels)`` for the range rule (None:
    no range rule).

    >>> state = LikelihoodState.empty(2, 1)  # two streams, one channel
    >>> state.mean[:], state.var[:], state.short[:] = 1.0, 0.01, 1.0
    >>> config = LikelihoodConfig(range_tolerance=None)
    >>> likelihood_step(state, config, np.array([1.0, 9.0]), None, 5).round(2).tolist()
    [0.03, 1.0]
    >>> likelihood_step(state, config, np.array([1.0, 9.0]), None, 5).tolist()  # quiet
    [0.0, 0.0]
    """
    surprise = np.fmin(surprise, config.cap)
    state.short[...] = config.short * surprise + (1.0 - config.short) * state.short
    z = (state.short - state.mean) / np.maximum(np.sqrt(state.var), config.floor)
    scores = log_tail_score(z)
    if values is not None and config.range_tolerance is not None:
        scores = np.maximum(scores, range_scores(config, state.low, state.high, values))
        track_range(state, values)
    silent = state.quiet > 0
    scores = np.where(silent, 0.0, scores)
    state.quiet[...] = np.where(
        silent, state.quiet - 1, np.where(scores >= config.alarm, quiet_steps, 0)
    )
    delta = state.short - state.mean
    state.mean[...] = state.mean + config.long * delta
    state.var[...] = (1.0 - config.long) * (state.var + config.long * delta**2)
    return scores


def likelihood_series(
    config: LikelihoodConfig,
    surprise: NDArray[np.float64],
    values: NDArray[np.float64] | None,
    reference: int,
    warmup: int,
) -> NDArray[np.float64]:
    """One stream's anomaly likelihood over all its steps (NaN over the reference part).

    The numbers of :func:`likelihood_step` run
    step by step (as a stream detector does), computed in bulk: only the two
    exponential windows are a loop over floats, the rest is vectorised.
    """
    state = LikelihoodState.empty(1, 1 if values is None else values.shape[1])
    surprise = np.fmin(surprise, config.cap)
    likelihood_calibrate(state, config, surprise[:reference], warmup)
    steps = len(surprise)
    short = np.empty(steps)
    mean = np.empty(steps)
    var = np.empty(steps)
    level, m, v = float(state.short[0]), float(state.mean[0]), float(state.var[0])
    keep, weight = 1.0 - config.short, config.long
    for step, value in enumerate(surprise[reference:].tolist(), start=reference):
        level = config.short * value + keep * level
        short[step], mean[step], var[step] = level, m, v
        delta = level - m
        m = m + weight * delta
        v = (1.0 - weight) * (v + weight * delta**2)
    live = slice(reference, steps)
    z = (short[live] - mean[live]) / np.maximum(np.sqrt(var[live]), config.floor)
    scores = log_tail_score(z)
    if values is not None and config.range_tolerance is not None:
        unsigned = values + 0.0  # -0.0 as 0.0, as track_range takes it
        low = np.fmin.accumulate(unsigned, axis=0)[reference - 1 : steps - 1]
        high = np.fmax.accumulate(unsigned, axis=0)[reference - 1 : steps - 1]
        scores = np.maximum(scores, range_scores(config, low, high, values[live]))
    quiet = config.quiet_steps(reference)
    if quiet:
        free = 0
        for position in np.flatnonzero(scores >= config.alarm).tolist():
            if position < free:
                continue
            scores[position + 1 : position + 1 + quiet] = 0.0
            free = position + 1 + quiet
    anomaly = np.full(steps, np.nan)
    anomaly[live] = scores
    return anomaly


def erfcc_polynomial(t: Any) -> Any:
    """The exponent's polynomial in Numerical Recipes' ``erfcc``, at ``t = 1 / (1 + x / 2)``:
    the same operations on a float (the one-event path) or an array (the vectorised one).

    >>> import math
    >>> t = 1.0 / (1.0 + 0.5 * 1.0)  # erfc(1)
    >>> round(t * math.exp(-1.0 + erfcc_polynomial(t)), 6)
    0.157299
    """
    return -1.26551223 + t * (
        1.00002368
        + t
        * (
            0.37409196
            + t
            * (
                0.09678418
                + t
                * (
                    -0.18628806
                    + t
                    * (
                        0.27886807
                        + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))
                    )
                )
            )
        )
    )


def _upper_tail(z: NDArray[np.float64]) -> NDArray[np.float64]:
    """The standard normal's upper tail ``Q(z) = erfc(z / sqrt 2) / 2``, vectorised.

    Chebyshev fit of erfc (Numerical Recipes' ``erfcc``), relative error below
    1.2e-7 everywhere.
    """
    x = np.abs(z) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.5 * x)
    poly = erfcc_polynomial(t)
    erfc = t * np.exp(-x * x + poly)
    tail: NDArray[np.float64] = 0.5 * np.where(z >= 0, erfc, 2.0 - erfc)
    return tail
