"""The demo's model part: train a stateful forecaster, score its forecasts, stream faults.

Everything here goes through the public API: a :class:`~stateline.Forecaster`
trained by truncated BPTT over stateful lanes, a :class:`~stateline.StreamEngine`
with a :class:`~stateline.StreamDetector` that gets one step of every stream per
call, and the detectors and metrics of :mod:`stateline.anomaly`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..anomaly import DetectorConfig, FlagReport, ForecastDetector, flag_report
from ._demo_faults import inject_faults

SEASON = 24
LAG = SEASON - 1  # the second input: the reading 23 h before each step
LAG_COLUMN = "temp_23h_ago"
SEASONAL = "stateline LSTM, reading + reading 23 h back"
READINGS = "stateline LSTM, readings only"
REFERENCE = 336  # two weeks of the training part calibrate each stream's detector
WARMUP = 48


@dataclass
class ForecastScores:
    """One-hour-ahead MAE (deg F) on the clean held-back part, per forecaster."""

    mae: dict[str, float]
    hours: int


@dataclass
class StreamRun:
    """What streaming the held-back part produced, per stream."""

    values: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    labels: dict[str, NDArray[np.bool_]] = field(default_factory=dict)
    spans: dict[str, list[tuple[str, int, int]]] = field(default_factory=dict)
    scores: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    flags: dict[str, NDArray[np.bool_]] = field(default_factory=dict)
    levels: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    call_seconds: list[float] = field(default_factory=list)
    max_offline_difference: float = 0.0


def seasonal_input(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(steps, 1)``: beside each reading, the reading :data:`LAG` hours before it.

    The model reads it at step ``t`` to forecast ``t + 1``: it is the reading
    at the same hour the day before the forecast hour, the one the seasonal
    naive forecast copies. The first ``LAG`` steps have none (NaN); the
    model's inputs start after them.

    >>> seasonal_input(np.arange(25.0))[[22, 23, 24], 0].tolist()
    [nan, 0.0, 1.0]
    """
    lagged = np.full((len(values), 1), np.nan)
    lagged[LAG:, 0] = values[:-LAG]
    return lagged


def train(series: list[NDArray[np.float64]], *, epochs: int, seed: int, seasonal: bool) -> Any:
    """A forecaster of the next hour from each reading (and, ``seasonal``, the one 23 h back)."""
    from ..train import Forecaster, ForecasterConfig

    config = ForecasterConfig(
        hidden=64, chunk=96, epochs=epochs, learning_rate=5e-3, patience=8, seed=seed
    )
    if not seasonal:
        return Forecaster(config).fit(series)
    return Forecaster(config).fit(
        [s[LAG:] for s in series], covariates=[seasonal_input(s[:, 0])[LAG:] for s in series]
    )


def predict(forecaster: Any, values: NDArray[np.float64]) -> NDArray[np.float64]:
    """One stream's forecasts, made after each step for the next (NaN where none is made)."""
    if forecaster.covariate_scaler_ is None:
        forecasts: NDArray[np.float64] = forecaster.predict(values[:, None]).values[:, 0, 0]
        return forecasts
    made = forecaster.predict(values[LAG:, None], covariates=seasonal_input(values)[LAG:])
    forecasts = np.full(len(values), np.nan)
    forecasts[LAG:] = made.values[:, 0, 0]
    return forecasts


def save_model(forecaster: Any, folder: Path, names: list[str]) -> None:
    forecaster.save(folder)
    features = [] if forecaster.covariate_scaler_ is None else [LAG_COLUMN]
    document = {"target": ["temp"], "features": features, "time": "time", "group": "city"}
    (folder / "columns.json").write_text(json.dumps({**document, "streams": names}, indent=2))


def forecast_scores(
    forecasters: dict[str, Any], full: list[NDArray[np.float64]], cut: list[int]
) -> tuple[ForecastScores, dict[str, list[NDArray[np.float64]]]]:
    """MAE of each LSTM (carry from the start of each stream) and of the naive forecasts."""
    errors: dict[str, list[NDArray[np.float64]]] = {name: [] for name in forecasters}
    errors |= {"persistence (last hour)": [], "seasonal naive (same hour yesterday)": []}
    held: dict[str, list[NDArray[np.float64]]] = {name: [] for name in forecasters}
    for series, at in zip(full, cut, strict=True):
        values = series[:, 0]
        truth = values[at:]
        for name, forecaster in forecasters.items():
            predicted = predict(forecaster, values)  # made after step t, for t + 1
            held[name].append(predicted[at - 1 : -1])
            errors[name].append(np.abs(truth - held[name][-1]))
        errors["persistence (last hour)"].append(np.abs(truth - values[at - 1 : -1]))
        errors["seasonal naive (same hour yesterday)"].append(
            np.abs(truth - values[at - SEASON : -SEASON])
        )
    mae = {name: float(np.mean(np.concatenate(parts))) for name, parts in errors.items()}
    hours = sum(len(s) - at for s, at in zip(full, cut, strict=True))
    return ForecastScores(mae=mae, hours=hours), held


def stream_faults(
    forecaster: Any, names: list[str], full: list[NDArray[np.float64]], cut: list[int]
) -> StreamRun:
    """Calibrate on the last two training weeks, then stream the faulty held-back part."""
    from ..stream import StateStore, StreamDetector, StreamEngine

    model, scaler, lag_scaler = forecaster.model_, forecaster.scaler_, forecaster.covariate_scaler_
    engine = StreamEngine(model, StateStore(model))
    detector = StreamDetector(engine, detector_config(), targets=1)
    run = StreamRun()
    seasonal = lag_scaler is not None
    feeds, lags = [], []
    for name, series, at in zip(names, full, cut, strict=True):
        faulty, labels, spans = inject_faults(series[at:, 0])
        run.values[name], run.labels[name], run.spans[name] = faulty, labels, spans
        # what the sensor sent, as a live client keeps it: a fault comes back 23 h later
        sent = np.concatenate([series[:at, 0], faulty])
        feeds.append(sent[at - REFERENCE :])
        lags.append(seasonal_input(sent)[at - REFERENCE :, 0])
    feed, lag = np.stack(feeds, axis=1), np.stack(lags, axis=1)  # (steps, streams)
    parts = [scaler.transform(feed.reshape(-1, 1)).reshape(feed.shape)]
    if seasonal:
        parts.append(lag_scaler.transform(lag.reshape(-1, 1)).reshape(lag.shape))
    scaled = np.stack(parts, axis=2)  # (steps, streams, inputs)
    steps = len(feed)
    scores = np.full((steps, len(names)), np.nan)
    flags = np.zeros((steps, len(names)), dtype=bool)
    levels = np.full((steps, len(names)), np.nan)
    predictions = np.full((steps, len(names)), np.nan)
    level_column = detector.columns.level
    for t in range(steps):
        started = time.perf_counter()
        result = detector.step(names, scaled[t], seq=[t] * len(names))
        run.call_seconds.append(time.perf_counter() - started)
        assert result.scores is not None and result.flags is not None
        scores[t], flags[t] = result.scores, result.flags
        predictions[t] = result.predictions[:, 0]
        levels[t] = level_column[engine.store.lookup(names)]
    offline = [
        forecaster.predict(feed[:, [c]], covariates=lag[:, [c]] if seasonal else None).values[
            :, 0, 0
        ]
        for c in range(len(names))
    ]
    streamed = scaler.inverse_transform(predictions.reshape(-1, 1)).reshape(predictions.shape)
    run.max_offline_difference = float(
        max(np.max(np.abs(streamed[:, c] - offline[c])) for c in range(len(names)))
    )
    for column, name in enumerate(names):
        run.scores[name] = scores[REFERENCE:, column]
        run.flags[name] = flags[REFERENCE:, column]
        run.levels[name] = levels[REFERENCE:, column]
    return run


def detector_config(predictor: str = "lstm") -> DetectorConfig:
    return DetectorConfig(
        predictor=predictor,  # type: ignore[arg-type]
        window=6,
        reference=REFERENCE,
        warmup=WARMUP,
        threshold="quantile",
        quantile=0.99,
        margin=1.5,
        smoothing=0.3,
    )


def baseline_flags(
    run: StreamRun, full: list[NDArray[np.float64]], cut: list[int]
) -> dict[str, dict[str, NDArray[np.bool_]]]:
    """The moving-average detector (same scorer and threshold) on the same feeds."""
    detector = ForecastDetector(detector_config("moving_average"))
    detector.fit([series[at - REFERENCE : at] for series, at in zip(full, cut, strict=True)])
    flags = {}
    for (name, faulty), series, at in zip(run.values.items(), full, cut, strict=True):
        feed = np.concatenate([series[at - REFERENCE : at, 0], faulty])[:, None]
        flags[name] = detector.detect(feed).flags[REFERENCE:]
    return {"moving average (6 h)": flags}


def echoed_false_flags(run: StreamRun) -> tuple[int, int]:
    """(false flags, those 23 or 24 h after a faulty reading): where a fault comes back."""
    false = echoed = 0
    for name, labels in run.labels.items():
        wrong = run.flags[name] & ~labels
        after = np.zeros_like(labels)
        for shift in (LAG, LAG + 1):
            after[shift:] |= labels[:-shift]
        false += int(wrong.sum())
        echoed += int((wrong & after).sum())
    return false, echoed


def detector_scores(labels: dict[str, NDArray[np.bool_]], flags: dict[str, Any]) -> FlagReport:
    """The anomaly metrics of ``flags`` against ``labels``, both keyed by stream, pooled."""
    return flag_report([labels[n] for n in labels], [flags[n] for n in labels])
