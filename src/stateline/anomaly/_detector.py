"""Detectors: a predictor's errors, scored, thresholded; offline and one step at a time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._errors import ConfigError, DataError, NotFittedError, ShapeError, describe
from .._validate import plain_numbers, require_positive_int, require_seed
from ._arrays import as_steps, standardise
from ._baselines import MovingAverage
from ._likelihood import LikelihoodConfig, likelihood_series
from ._scorers import ErrorScorer, require_combinable
from ._thresholds import DynamicThreshold, GaussianThreshold, QuantileThreshold, Threshold

__all__ = ["Detection", "DetectorConfig", "ForecastDetector", "OnlineDetector"]

THRESHOLDS = ("quantile", "gaussian", "dynamic", "likelihood")


@dataclass(frozen=True, kw_only=True)
class DetectorConfig:
    """Settings of :class:`ForecastDetector`; validated on creation.

    ``predictor`` is ``"lstm"`` (a stateline :class:`~stateline.Forecaster`
    with ``hidden``, ``layers``, ``chunk``, ``epochs``, ``patience`` (None:
    no early stopping), ``seed``) or
    ``"moving_average"`` (mean of the previous ``window`` steps). Every series
    is standardised by its own ``reference`` part (its leading normal steps),
    on which the scorer's error spread and the threshold are also calibrated,
    skipping the first ``warmup`` steps while the predictor's state settles.
    ``smoothing`` and ``combine`` are the :class:`ErrorScorer`'s (``"trimmed"``
    drops the largest channel, so one channel alone raises no alarm); the
    threshold is ``quantile`` x ``margin`` of the reference scores, or a
    Gaussian ``k`` standard deviations above their mean, or ``"dynamic"``, or
    ``"likelihood"``: flag where the anomaly likelihood reaches ``alarm``.

    Every step after the reference part also gets an ``anomaly_score`` in
    [0, 1], the anomaly likelihood (see :class:`LikelihoodConfig`: ``short``
    and ``long`` window weights, ``range_tolerance``, ``range_base``,
    ``quiet``, ``alarm``, ``cap``),
    which keeps adapting to the stream; it is what the ``"likelihood"``
    threshold flags.
    """

    predictor: Literal["lstm", "moving_average"] = "lstm"
    hidden: int = 64
    layers: int = 1
    chunk: int = 50
    epochs: int = 60
    seed: int = 0
    patience: int | None = 10
    window: int = 10
    smoothing: float = 0.1
    combine: Literal["mean", "max", "trimmed"] = "mean"
    threshold: Literal["quantile", "gaussian", "dynamic", "likelihood"] = "quantile"
    quantile: float = 0.99
    margin: float = 1.5
    k: float = 3.0
    reference: int = 400
    warmup: int = 50
    # The likelihood's settings, with LikelihoodConfig's defaults (one source for both).
    short: float = LikelihoodConfig.short
    long: float = LikelihoodConfig.long
    range_tolerance: float | None = LikelihoodConfig.range_tolerance
    range_base: float = LikelihoodConfig.range_base
    quiet: float = LikelihoodConfig.quiet
    alarm: float = LikelihoodConfig.alarm
    cap: float = LikelihoodConfig.cap
    progress: bool = False

    def __post_init__(self) -> None:
        plain_numbers(self)
        require_seed(self.seed)
        for name in ("hidden", "layers", "chunk", "epochs", "window", "reference"):
            require_positive_int(name, getattr(self, name))
        if self.predictor not in ("lstm", "moving_average"):
            raise ConfigError(
                describe(
                    "predictor",
                    "'lstm' or 'moving_average'",
                    repr(self.predictor),
                    problem="is unknown.",
                )
            )
        if self.threshold not in THRESHOLDS:
            raise ConfigError(
                describe(
                    "threshold",
                    "'quantile', 'gaussian', 'dynamic' or 'likelihood'",
                    repr(self.threshold),
                    problem="is unknown.",
                )
            )
        if not 0 <= self.warmup < self.reference - 1:
            raise ConfigError(
                describe(
                    "warmup",
                    f"0 <= warmup < reference - 1 ({self.reference - 1})",
                    repr(self.warmup),
                    problem="is invalid.",
                    fix=f"Lower warmup (--warmup; its default is 50), e.g. to "
                    f"{max(self.reference // 4, 0)}, or raise reference (--reference).",
                )
            )
        ErrorScorer(smoothing=self.smoothing, combine=self.combine)  # validates both
        object.__setattr__(self, "_likelihood", self._make_likelihood())  # validates, once
        if self.threshold != "likelihood":
            self.make_threshold()

    def likelihood(self) -> LikelihoodConfig:
        """The :class:`LikelihoodConfig` of these settings (made once: both are frozen)."""
        made: LikelihoodConfig = self.__dict__["_likelihood"]
        return made

    def _make_likelihood(self) -> LikelihoodConfig:
        return LikelihoodConfig(
            short=self.short,
            long=self.long,
            range_tolerance=self.range_tolerance,
            range_base=self.range_base,
            quiet=self.quiet,
            alarm=self.alarm,
            cap=self.cap,
        )

    def make_threshold(self) -> Threshold:
        """A fresh threshold object of the configured kind (not for ``"likelihood"``)."""
        if self.threshold == "likelihood":
            raise ConfigError(
                describe(
                    "threshold",
                    "a threshold on scores ('quantile', 'gaussian' or 'dynamic')",
                    "'likelihood'",
                    problem="has no threshold object.",
                    fix="flag with anomaly_score >= alarm instead.",
                )
            )
        if self.threshold == "gaussian":
            return GaussianThreshold(k=self.k)
        if self.threshold == "dynamic":
            return DynamicThreshold()
        return QuantileThreshold(quantile=self.quantile, margin=self.margin)


@dataclass(frozen=True, eq=False)
class Detection:
    """Per-step results of :meth:`ForecastDetector.detect` for one series.

    ``scores`` are the smoothed error scores (every step), ``anomaly_scores``
    the anomaly likelihood in [0, 1] (NaN over the reference part), ``flags``
    the configured threshold's verdicts and ``level`` its level (``alarm`` for
    the likelihood; NaN for the dynamic threshold).
    """

    scores: NDArray[np.float64]
    flags: NDArray[np.bool_]
    level: float
    errors: NDArray[np.float64] = field(repr=False)
    anomaly_scores: NDArray[np.float64] = field(repr=False, default_factory=lambda: np.zeros(0))


class ForecastDetector:
    """Flag steps whose prediction errors are unusual for the series' own normal part.

    ``fit(normal_parts)`` trains the predictor on normal data of one or more
    series (each standardised by itself); ``detect(series)`` standardises a
    series by its leading ``reference`` steps, computes one-step prediction
    errors, scores them with an :class:`ErrorScorer` calibrated on the
    reference part, and flags scores above a threshold fitted there.

    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(600.0)
    >>> normal = np.stack([np.sin(t / 5), np.cos(t / 5)], axis=1) + 0.05 * rng.normal(size=(600, 2))
    >>> series = normal.copy()
    >>> series[450:470] += 1.5
    >>> config = DetectorConfig(predictor="moving_average", window=3, reference=300)
    >>> detection = ForecastDetector(config).fit([normal[:300]]).detect(series)
    >>> bool(detection.flags[450:470].any()), int(detection.flags[:440].sum())
    (True, 0)
    """

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        self.forecaster_: object | None = None
        self.channels_ = 0
        self.covariates_ = 0

    def fit(
        self,
        normal: ArrayLike | Sequence[ArrayLike],
        *,
        covariates: ArrayLike | Sequence[ArrayLike] | None = None,
    ) -> ForecastDetector:
        """Train the predictor on normal data: one array ``(steps, channels)`` or a list.

        ``covariates`` (one array ``(steps, k)`` per normal part, such as
        :func:`~stateline.data.calendar_features` of the time stamps) are extra
        inputs of the LSTM that it does not forecast; the moving average
        ignores them. Pass the same kind to :meth:`detect`.
        """
        parts = _as_list(normal)
        self.channels_ = parts[0].shape[1]
        require_combinable(self.config.combine, self.channels_, "normal")
        for position, part in enumerate(parts):
            if part.shape[1] != self.channels_:
                raise ShapeError(
                    describe(
                        f"normal[{position}]",
                        f"{self.channels_} channels",
                        f"{part.shape[1]}",
                        problem="has the wrong shape.",
                    )
                )
        extra = None if covariates is None else _as_list(covariates, "covariates")
        if extra is not None:
            _require_aligned(parts, extra)
        self.covariates_ = 0 if extra is None else extra[0].shape[1]
        if self.config.predictor == "lstm":
            from ..train import Forecaster, ForecasterConfig

            config = self.config
            forecaster = Forecaster(
                ForecasterConfig(
                    hidden=config.hidden,
                    layers=config.layers,
                    chunk=config.chunk,
                    epochs=config.epochs,
                    patience=config.patience,
                    seed=config.seed,
                    progress=config.progress,
                )
            )
            self.forecaster_ = forecaster.fit(
                [standardise(part, part) for part in parts], covariates=extra
            )
        else:
            self.forecaster_ = MovingAverage(window=self.config.window)
        return self

    def errors(
        self,
        series: ArrayLike,
        *,
        covariates: ArrayLike | None = None,
        reference: int | None = None,
    ) -> NDArray[np.float64]:
        """One-step prediction errors ``(steps, channels)`` of a standardised series (row 0: 0).

        The series is standardised by its first ``reference`` steps (the
        configured number unless given).
        """
        reference = self._reference(reference)
        array = self._checked(series, reference)
        extra = self._covariates(covariates, len(array))
        return self._errors(standardise(array, array[:reference]), extra)

    def detect(
        self,
        series: ArrayLike,
        *,
        covariates: ArrayLike | None = None,
        reference: int | None = None,
    ) -> Detection:
        """Scores, anomaly scores and flags for every step of ``series`` ``(steps, channels)``.

        ``reference`` overrides the configured number of leading normal steps
        for this series (for example 15 % of its length, as NAB does); the
        warmup is then ``min(warmup, reference // 8)``, a function of this
        series' reference alone.
        """
        steps = self._reference(reference)
        array = self._checked(series, steps)
        extra = self._covariates(covariates, len(array))
        scaled = standardise(array, array[:steps])
        return self.score_errors(self._errors(scaled, extra), values=scaled, reference=reference)

    def score_errors(
        self,
        errors: ArrayLike,
        *,
        values: ArrayLike | None = None,
        reference: int | None = None,
    ) -> Detection:
        """Scores and flags from one series' prediction errors ``(steps, channels)``.

        The calibration and scoring of :meth:`detect`, for errors of any
        predictor (the first step's error is 0 by convention). ``values`` (the
        observed series, same shape) feed the likelihood's range rule; without
        them it has none.
        """
        config = self.config
        explicit = reference is not None
        reference = self._reference(reference)
        warmup = min(config.warmup, reference // 8) if explicit else config.warmup
        errors = as_steps(np.asarray(errors, dtype=np.float64), "errors")
        _require_finite(errors, "errors")
        if len(errors) < reference:
            raise DataError(
                describe(
                    "errors",
                    f"at least reference={reference} steps",
                    f"{len(errors)} steps",
                    problem="is too short.",
                )
            )
        observed = None if values is None else as_steps(np.asarray(values, np.float64), "values")
        if observed is not None:
            if observed.shape != errors.shape:
                raise ShapeError(
                    describe(
                        "values",
                        f"shape {errors.shape} (as errors)",
                        f"{observed.shape}",
                        problem="has the wrong shape.",
                    )
                )
            _require_finite(observed, "values")
        calibration = slice(warmup, reference)
        scorer = ErrorScorer(smoothing=config.smoothing, combine=config.combine)
        scorer.learn_many(errors[calibration])
        scores = scorer.score_many(errors)
        anomaly = likelihood_series(
            config.likelihood(), scorer.surprise_many(errors), observed, reference, warmup
        )
        if config.threshold == "likelihood":
            flags = anomaly >= config.alarm
            level = config.alarm
        else:
            threshold = config.make_threshold().fit(scores[calibration])
            if isinstance(threshold, DynamicThreshold):
                flags = threshold.detect_many(scores)
                level = float("nan")
            else:
                flags = threshold.flag_many(scores)
                level = threshold.level
        return Detection(
            scores=scores, flags=flags, level=level, errors=errors, anomaly_scores=anomaly
        )

    # --------------------------------------------------------------- internals
    def _reference(self, reference: int | None) -> int:
        if reference is None:
            return self.config.reference
        require_positive_int("reference", reference)
        if int(reference) < 2:
            raise ConfigError(
                describe("reference", "at least 2 steps", repr(reference), problem="is too small.")
            )
        return int(reference)

    def _checked(self, series: ArrayLike, reference: int) -> NDArray[np.float64]:
        if self.forecaster_ is None:
            raise NotFittedError(
                "This ForecastDetector is not fitted yet.\n  Fix: call fit() first."
            )
        array = _as_list([series])[0]
        if array.shape[1] != self.channels_:
            raise ShapeError(
                describe(
                    "series",
                    f"{self.channels_} channels (as fitted)",
                    f"{array.shape[1]}",
                    problem="has the wrong shape.",
                )
            )
        if len(array) <= reference:
            raise DataError(
                describe(
                    "series",
                    f"more than reference={reference} steps",
                    f"{len(array)} steps",
                    problem="is too short.",
                )
            )
        return array

    def _covariates(self, covariates: ArrayLike | None, steps: int) -> NDArray[np.float64] | None:
        if self.config.predictor != "lstm":
            return None
        if (covariates is None) != (self.covariates_ == 0):
            raise ShapeError(
                describe(
                    "covariates",
                    f"{self.covariates_} covariate columns (as fitted)",
                    "none" if covariates is None else "covariates",
                    problem="do not match the fitted detector.",
                    fix="pass covariates of the kind given to fit(), or none if fit had none.",
                )
            )
        if covariates is None:
            return None
        extra = _as_list([covariates], "covariates")[0]
        if extra.shape != (steps, self.covariates_):
            raise ShapeError(
                describe(
                    "covariates",
                    f"shape ({steps}, {self.covariates_})",
                    f"{extra.shape}",
                    problem="has the wrong shape.",
                )
            )
        return extra

    def _errors(
        self, scaled: NDArray[np.float64], covariates: NDArray[np.float64] | None = None
    ) -> NDArray[np.float64]:
        errors = np.zeros_like(scaled)
        if isinstance(self.forecaster_, MovingAverage):
            return self.forecaster_.errors_many(scaled)
        forecast = self.forecaster_.predict(scaled, covariates=covariates)  # type: ignore[attr-defined]
        predictions = forecast.values[:, 0, :]
        errors[1:] = scaled[1:] - predictions[:-1]
        return errors


def _require_finite(array: NDArray[np.float64], name: str) -> None:
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if len(bad):
        raise DataError(
            describe(
                name,
                "finite numbers",
                f"NaN or inf at step {int(bad[0])} ({len(bad)} steps in all)",
                problem="holds NaN or inf.",
            )
        )


class OnlineDetector:
    """Score and flag one step at a time; learn only from steps it did not flag.

    ``process_one(error)`` returns ``(score, flag)``. With ``learn=True`` the
    scorer's error spread and the threshold keep learning from the stream,
    skipping flagged steps unless ``learn_flagged`` (so an anomaly does not
    raise the bar for itself).

    >>> scorer = ErrorScorer(smoothing=1.0)
    >>> scorer.learn_many([[1.0], [-1.0]] * 50)
    >>> online = OnlineDetector(scorer, GaussianThreshold(k=3.0).fit([1.0] * 99 + [2.0]))
    >>> online.process_one([0.5]), online.process_one([4.0])
    ((0.25, False), (16.0, True))
    """

    def __init__(
        self,
        scorer: ErrorScorer,
        threshold: Threshold,
        *,
        learn: bool = True,
        learn_flagged: bool = False,
        on_flag: Callable[[float], None] | None = None,
    ) -> None:
        self.scorer, self.threshold = scorer, threshold
        self.learn, self.learn_flagged = learn, learn_flagged
        self.on_flag = on_flag
        self.steps = self.flagged = 0

    def process_one(self, error: ArrayLike) -> tuple[float, bool]:
        score = self.scorer.score_one(error)
        flag = self.threshold.flag_one(score)
        self.steps += 1
        if flag:
            self.flagged += 1
            if self.on_flag is not None:
                self.on_flag(score)
        if self.learn and (self.learn_flagged or not flag):
            self.scorer.learn_one(error)
            self.threshold.learn_one(score)
        return score, flag


def _require_aligned(
    parts: list[NDArray[np.float64]], covariates: list[NDArray[np.float64]]
) -> None:
    if len(covariates) != len(parts):
        raise ShapeError(
            describe(
                "covariates",
                f"one array per normal part ({len(parts)})",
                f"{len(covariates)}",
                problem="has the wrong shape.",
            )
        )
    for position, (part, extra) in enumerate(zip(parts, covariates, strict=True)):
        if len(extra) != len(part) or extra.shape[1] != covariates[0].shape[1]:
            raise ShapeError(
                describe(
                    f"covariates[{position}]",
                    f"({len(part)}, {covariates[0].shape[1]}) like its normal part",
                    f"shape {extra.shape}",
                    problem="has the wrong shape.",
                )
            )


def _as_list(
    data: ArrayLike | Sequence[ArrayLike], name: str = "series"
) -> list[NDArray[np.float64]]:
    items = list(data) if isinstance(data, (list, tuple)) else [data]
    arrays = []
    for position, item in enumerate(items):
        array = as_steps(np.asarray(item, dtype=np.float64), f"{name}[{position}]")
        if len(array) < 2:
            raise ShapeError(
                describe(
                    f"{name}[{position}]",
                    "(steps >= 2, channels)",
                    f"shape {array.shape}",
                    problem="has the wrong shape.",
                )
            )
        if not np.isfinite(array).all():
            raise DataError(
                describe(
                    f"{name}[{position}]",
                    "finite values",
                    "NaN or inf",
                    problem="holds NaN or inf.",
                )
            )
        arrays.append(array)
    if not arrays:
        raise ShapeError(describe(name, "at least one series", "none", problem="is empty."))
    return arrays
