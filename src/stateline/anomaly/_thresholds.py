"""Thresholds that turn anomaly scores into flags, kept apart from the scores.

Every threshold has a batch form (``fit(scores)`` then ``flag_many(scores)``)
and an online form (``learn_one(score)``, ``flag_one(score)``), so the same
object serves offline evaluation and a live stream. Online, a detector
usually learns only from scores it did not flag, so that an anomaly does not
raise the bar for itself.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._errors import ConfigError, NotFittedError, describe
from .._validate import require_positive_int
from ._scorers import RunningMoments

__all__ = ["DynamicThreshold", "GaussianThreshold", "QuantileThreshold", "Threshold"]


class Threshold(Protocol):
    """What every threshold offers."""

    @property
    def level(self) -> float: ...

    def fit(self, scores: ArrayLike) -> Threshold: ...

    def learn_one(self, score: float) -> None: ...

    def flag_one(self, score: float) -> bool: ...

    def flag_many(self, scores: ArrayLike) -> NDArray[np.bool_]: ...


def _scores(scores: ArrayLike) -> NDArray[np.float64]:
    array = np.asarray(scores, dtype=np.float64).reshape(-1)
    return array[np.isfinite(array)]


class _LevelThreshold:
    """Flags the scores above ``level``, which each subclass defines."""

    @property
    def level(self) -> float:
        raise NotImplementedError

    def flag_one(self, score: float) -> bool:
        return bool(score > self.level)

    def flag_many(self, scores: ArrayLike) -> NDArray[np.bool_]:
        return np.asarray(scores, dtype=np.float64) > self.level


class _WindowedThreshold(_LevelThreshold):
    """Keeps the last ``window`` learned scores; the level is computed from them when asked."""

    def __init__(self, window: int) -> None:
        require_positive_int("window", window)
        self.window = window
        self._recent: deque[float] = deque(maxlen=window)
        self._level: float | None = None

    @property
    def level(self) -> float:
        if self._level is None:
            if not self._recent:
                raise NotFittedError(
                    f"{type(self).__name__} has no scores yet.\n"
                    "  Fix: call fit() or learn_one() first."
                )
            self._level = self._window_level(np.array(self._recent))
        return self._level

    def fit(self, scores: ArrayLike) -> Self:
        self._recent.clear()
        self._recent.extend(_scores(scores)[-self.window :].tolist())
        self._level = None
        return self

    def learn_one(self, score: float) -> None:
        if np.isfinite(score):
            self._recent.append(float(score))
            self._level = None

    def _window_level(self, window: NDArray[np.float64]) -> float:
        raise NotImplementedError


class QuantileThreshold(_WindowedThreshold):
    """Static: flag scores above ``margin`` times the ``quantile`` of the learned scores.

    Online it keeps the last ``window`` learned scores (bounded memory).

    >>> threshold = QuantileThreshold(quantile=0.5, margin=2.0).fit([1.0, 2.0, 3.0])
    >>> threshold.level, threshold.flag_many([3.9, 4.1]).tolist()
    (4.0, [False, True])
    """

    def __init__(
        self, *, quantile: float = 0.99, margin: float = 1.5, window: int = 10_000
    ) -> None:
        if not 0.0 < quantile <= 1.0:
            raise ConfigError(
                describe("quantile", "a share in (0, 1]", repr(quantile), problem="is invalid.")
            )
        if margin <= 0:
            raise ConfigError(
                describe("margin", "a factor > 0", repr(margin), problem="is invalid.")
            )
        super().__init__(window)
        self.quantile, self.margin = quantile, margin

    def _window_level(self, window: NDArray[np.float64]) -> float:
        return float(np.quantile(window, self.quantile) * self.margin)


class GaussianThreshold(_LevelThreshold):
    """Running Gaussian: flag scores above ``mean + k * std`` of the learned scores.

    >>> threshold = GaussianThreshold(k=2.0).fit([1.0, 3.0])
    >>> threshold.level
    4.0
    """

    def __init__(self, *, k: float = 3.0) -> None:
        if k <= 0:
            raise ConfigError(describe("k", "a number of std > 0", repr(k), problem="is invalid."))
        self.k = k
        self.moments = RunningMoments()

    @property
    def count(self) -> int:
        """How many scores were learned."""
        return self.moments.count

    @property
    def level(self) -> float:
        if self.count == 0:
            raise NotFittedError(
                "GaussianThreshold has no scores yet.\n  Fix: call fit() or learn_one() first."
            )
        return float(self.moments.mean[0] + self.k * self.moments.std[0])

    def fit(self, scores: ArrayLike) -> GaussianThreshold:
        self.moments = RunningMoments()
        self.moments.learn_many(_scores(scores))
        return self

    def learn_one(self, score: float) -> None:
        if np.isfinite(score):
            self.moments.learn_one(score)


class DynamicThreshold(_WindowedThreshold):
    """The nonparametric dynamic threshold with pruning of Hundman et al. (KDD 2018).

    Over a window of the latest ``window`` scores it picks ``eps = mean + z *
    std`` (``z`` in ``z_range``) maximising ``(d_mean / mean + d_std / std) /
    (above + sequences**2)``, where ``d_mean`` and ``d_std`` are the drops of
    mean and std when the scores above ``eps`` are removed, ``above`` is how many
    there are and ``sequences`` how many runs they form. Pruning: the maxima of
    the runs, sorted, with the largest score below ``eps`` appended; runs whose
    maximum is less than ``min_decrease`` (13 %) above the next one, and every
    smaller run, are set back to normal. :meth:`detect_many` is Hundman's
    offline procedure: it walks a series in blocks of ``step``, each judged
    within the window that ends with it, and needs no fitting. ``flag_one`` and
    ``flag_many`` compare scores with the level of the latest learned window
    (``fit`` or ``learn_one``), as the other thresholds do.

    >>> scores = [1.0, 1.2, 0.9, 1.1] * 20 + [9.0, 9.5] + [1.0, 1.1] * 10
    >>> flags = DynamicThreshold(window=200, step=200).detect_many(scores)
    >>> np.flatnonzero(flags).tolist()
    [80, 81]
    """

    def __init__(
        self,
        *,
        window: int = 2000,
        step: int = 100,
        z_range: tuple[float, float] = (2.0, 10.0),
        min_decrease: float = 0.13,
    ) -> None:
        super().__init__(window)
        require_positive_int("step", step)
        if not 0 < z_range[0] <= z_range[1]:
            raise ConfigError(
                describe(
                    "z_range",
                    "(low, high) with 0 < low <= high",
                    repr(z_range),
                    problem="is invalid.",
                )
            )
        if not 0.0 <= min_decrease < 1.0:
            raise ConfigError(
                describe(
                    "min_decrease", "a share in [0, 1)", repr(min_decrease), problem="is invalid."
                )
            )
        self.step = step
        self.z_values = np.arange(z_range[0], z_range[1] + 1e-9, 0.5)
        self.min_decrease = min_decrease

    def detect_many(self, scores: ArrayLike) -> NDArray[np.bool_]:
        """Hundman's windowed procedure over a whole series (no fitting needed)."""
        values = np.asarray(scores, dtype=np.float64).reshape(-1)
        flags = np.zeros(len(values), dtype=bool)
        for end in range(self.step, len(values) + self.step, self.step):
            end = min(end, len(values))
            begin = max(0, end - self.window)
            window = values[begin:end]
            flagged = self._window_flags(window)
            block = max(0, end - self.step) - begin
            flags[begin + block : end] = flagged[block:]
        return flags

    # --------------------------------------------------------------- internals
    def _epsilon(self, window: NDArray[np.float64]) -> float:
        mean, std = float(window.mean()), float(window.std())
        best_eps, best = mean + self.z_values[-1] * std, -np.inf
        if std == 0 or mean == 0:
            return float(window.max())
        for z in self.z_values:
            eps = mean + z * std
            below = window[window < eps]
            above = window > eps
            count = int(above.sum())
            if count == 0 or len(below) == 0:
                continue
            runs = int(np.sum(np.diff(np.concatenate([[0], above.astype(np.int8)])) == 1))
            value = ((mean - below.mean()) / mean + (std - below.std()) / std) / (count + runs**2)
            if value > best:
                best, best_eps = float(value), float(eps)
        return float(best_eps)

    def _window_flags(self, window: NDArray[np.float64]) -> NDArray[np.bool_]:
        finite = np.where(np.isfinite(window), window, -np.inf)
        eps = self._epsilon(window[np.isfinite(window)]) if np.isfinite(window).any() else np.inf
        above = finite > eps
        if not above.any():
            return above
        edges = np.flatnonzero(np.diff(np.concatenate([[0], above.astype(np.int8), [0]])))
        runs = edges.reshape(-1, 2)
        maxima = np.array([finite[a:b].max() for a, b in runs])
        order = np.argsort(-maxima)
        below = finite[~above]
        sorted_maxima = np.append(maxima[order], below.max() if len(below) else 0.0)
        decrease = (sorted_maxima[:-1] - sorted_maxima[1:]) / np.where(
            sorted_maxima[:-1] == 0, 1.0, sorted_maxima[:-1]
        )
        significant = np.flatnonzero(decrease >= self.min_decrease)
        keep = order[: significant[-1] + 1] if len(significant) else order[:0]
        flags = np.zeros(len(window), dtype=bool)
        for run in keep.tolist():
            start, end = runs[run]
            flags[start:end] = True
        return flags

    def _window_level(self, window: NDArray[np.float64]) -> float:
        flags = self._window_flags(window)
        if not flags.any():
            return float(max(self._epsilon(window), window.max()))
        return float(window[flags].min() - 1e-12)
