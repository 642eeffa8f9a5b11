"""NAB benchmark: stateline's detector on the development part of the Numenta Anomaly Benchmark.

NAB's protocol: each file is one stream, processed in order with no
look-ahead; its first min(15 %, 750) rows (the probationary period) are all the
detector learns from, and are not scored. Every detector emits one anomaly
score per row; one threshold per detector and profile is chosen by NAB's
optimiser over all 24 files (``nab_sweep``: every distinct score tried), never
per file. The NAB part is AGPL-3.0 and is read from ../shared, never copied.

stateline's detector, per file from scratch with the same settings everywhere:
a 32-unit LSTM forecaster (40 epochs, no early stopping) with calendar inputs
(``calendar_features`` of the cycles the probationary rows cover twice:
the time of day, and the day of the week from two weeks on) trained on the
probationary rows (standardised by them), its one-step errors turned into the
anomaly likelihood (``DetectorConfig(threshold="likelihood")``: short vs long
window tail, graded range rule, quiet period, surprise capped at 10). One row per seed, then their
mean. The ablation rows take one part away each, from seed 0's forecast errors
(the "no calendar inputs" row trains a second LSTM without them). The
moving-average detector goes through the same likelihood. The windowed
Gaussian is stateline's baseline (z-score against the previous 6,400 values)
run here; the published rows are NAB's own
outputs scored here, at NAB's thresholds (its table) and swept on this part.

Run: .venv/bin/python bench/nab.py [--nab ../shared/data/nab-dev] [--seeds 3] [--plots DIR]
(bench/anomaly.py runs it after SKAB.)
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import track
from rich.table import Table

from stateline import Forecaster
from stateline.anomaly import (
    NAB_CATEGORIES_WITH_ANOMALIES,
    NAB_PROFILES,
    DetectorConfig,
    ForecastDetector,
    NabCorpusResult,
    NabSeries,
    WindowedGaussian,
    load_nab,
    nab_corpus_score,
    nab_sweep,
    read_nab_results,
    standardise,
)
from stateline.data import calendar_features, calendar_periods
from stateline.online import OnlineConfig, OnlineLearner
from stateline.stream import StateStore, StreamDetector, StreamEngine

DEFAULT_NAB = Path(__file__).resolve().parents[2] / "shared" / "data" / "nab-dev"
NAB_PROFILE_KEYS = {
    "standard": "standard",
    "reward_low_fp": "reward_low_FP_rate",
    "reward_low_fn": "reward_low_FN_rate",
}
DETECTOR = DetectorConfig(threshold="likelihood", hidden=32, epochs=40, chunk=50, patience=None)
ONLINE_EVERY = (100, 500)
ABLATIONS = {
    "no adaptation (long window frozen at the reference)": {"long": 0.0},
    "no range rule": {"range_tolerance": None},
    "no quiet period": {"quiet": 0.0},
    "no cap on the surprise": {"cap": 1e300},
}


def config_for(item: NabSeries, **changes: object) -> DetectorConfig:
    """The detector's settings for one file: its probationary rows are the reference."""
    reference = item.probation
    return dataclasses.replace(
        DETECTOR, reference=reference, warmup=min(DETECTOR.warmup, reference // 8), **changes
    )


def calendar_of(item: NabSeries) -> np.ndarray | None:
    """Calendar inputs of one file: the cycles its probationary rows cover twice, or None."""
    periods = calendar_periods(item.timestamps[: item.probation])
    return calendar_features(item.timestamps, periods) if periods else None


def forecast_errors(
    series: list[NabSeries],
    *,
    calendar: bool,
    predictor: str = "lstm",
    seed: int = 0,
    fitted: dict[str, ForecastDetector] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], float]:
    """Per file: one-step errors and standardised values; seconds spent fitting and predicting.

    ``fitted`` (when given) receives each file's fitted detector.
    """
    errors, values = {}, {}
    started = time.perf_counter()
    label = f"{predictor} seed {seed} calendar={calendar}"
    for item in track(series, description=label, transient=True):
        config = config_for(item, predictor=predictor, seed=seed)
        column = item.values[:, None]
        extra = calendar_of(item) if calendar else None
        reference = item.probation
        detector = ForecastDetector(config).fit(
            [column[:reference]], covariates=None if extra is None else [extra[:reference]]
        )
        errors[item.name] = detector.errors(column, covariates=extra)
        values[item.name] = standardise(column, column[:reference])
        if fitted is not None:
            fitted[item.name] = detector
    return errors, values, time.perf_counter() - started


def likelihood_scores(
    series: list[NabSeries],
    errors: dict[str, np.ndarray],
    values: dict[str, np.ndarray],
    **changes: object,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Anomaly scores and the detector's own flags per file, from the same errors."""
    scores, flags = {}, {}
    for item in series:
        config = config_for(item, **changes)
        detection = ForecastDetector(config).score_errors(
            errors[item.name], values=values[item.name], reference=item.probation
        )
        scores[item.name] = np.nan_to_num(detection.anomaly_scores)
        flags[item.name] = detection.flags
    return scores, flags


def live_scores(
    series: list[NabSeries],
    fitted: dict[str, ForecastDetector],
    online: OnlineConfig | None = None,
) -> tuple[dict[str, np.ndarray], float, int]:
    """Each file streamed one row per call through StreamDetector (and an OnlineLearner).

    Uses each file's fitted forecaster as a deployed model (a copy, so the
    offline detector is untouched); inputs scaled as the service scales them.
    Returns the anomaly scores, seconds, and the number of model updates.
    """
    scores, updates = {}, 0
    started = time.perf_counter()
    for item in track(series, description=f"live, online={online is not None}", transient=True):
        forecaster = fitted[item.name].forecaster_
        assert isinstance(forecaster, Forecaster) and forecaster.model_ is not None
        assert forecaster.scaler_ is not None
        model = copy.deepcopy(forecaster.model_)
        reference = item.probation
        column = item.values[:, None]
        inputs = [forecaster.scaler_.transform(standardise(column, column[:reference]))]
        extra = calendar_of(item)
        if extra is not None:
            assert forecaster.covariate_scaler_ is not None
            inputs.append(forecaster.covariate_scaler_.transform(extra))
        rows = np.concatenate(inputs, axis=1)
        engine = StreamEngine(model, StateStore(model))
        detector = StreamDetector(engine, config_for(item), targets=1)
        learner = None if online is None else OnlineLearner(engine, online, detector=detector)
        stepper: object = detector if learner is None else learner
        out = np.zeros(len(rows))
        for step, row in enumerate(rows):
            result = stepper.step([item.name], row[None], seq=[step])  # type: ignore[attr-defined]
            out[step] = np.nan_to_num(result.anomaly_scores[0])
            if learner is not None and learner.pending >= online.update_every:  # type: ignore[union-attr]
                updates += learner.update() is not None
        scores[item.name] = out
    return scores, time.perf_counter() - started, updates


def swept(series: list[NabSeries], scores: dict[str, np.ndarray]) -> dict[str, NabCorpusResult]:
    return {profile: nab_sweep(series, scores, profile=profile) for profile in NAB_PROFILES}


def own_flags(series: list[NabSeries], flags: dict[str, np.ndarray]) -> float:
    """NAB standard score of the detector's flags as they come out (no threshold chosen)."""
    result = nab_corpus_score(series, {k: v.astype(float) for k, v in flags.items()}, 0.5)
    return result.normalised


def windowed_gaussian(series: list[NabSeries]) -> tuple[dict[str, np.ndarray], float]:
    scores = {}
    started = time.perf_counter()
    for item in series:
        scores[item.name] = WindowedGaussian(window=6400).score_many(item.values[:, None])
    return scores, time.perf_counter() - started


def single_stream_speed(item: NabSeries) -> tuple[float, float, float]:
    """Steps/s on one stream: stateline's detector with its training on the probationary rows
    included, its detection alone (forecasts, likelihood, range rule, quiet period), and the
    windowed Gaussian."""
    started = time.perf_counter()
    column = item.values[:, None]
    extra = calendar_of(item)
    reference = item.probation
    detector = ForecastDetector(config_for(item)).fit(
        [column[:reference]], covariates=None if extra is None else [extra[:reference]]
    )
    fitted = time.perf_counter()
    detector.detect(column, covariates=extra, reference=reference)
    done = time.perf_counter()
    WindowedGaussian(window=6400).score_many(column)
    gaussian = time.perf_counter() - done
    rows = len(column)
    return rows / (done - started), rows / (done - fitted), rows / gaussian


def plot_files(
    series: list[NabSeries], scores: dict[str, np.ndarray], threshold: float, folder: Path
) -> None:
    """One PNG per chosen file: values, anomaly score, the swept threshold and NAB's windows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    chosen = [s for s in series if s.name.split("/")[1].split(".")[0] in PLOTTED]
    figure, axes = plt.subplots(2 * len(chosen), 1, figsize=(12, 3.2 * len(chosen)), squeeze=False)
    for row, item in enumerate(chosen):
        top, bottom = axes[2 * row, 0], axes[2 * row + 1, 0]
        top.plot(item.values, linewidth=0.6, color="tab:blue")
        top.set_title(f"{item.name}: values; grey: probationary rows, orange: NAB's windows")
        bottom.plot(scores[item.name], linewidth=0.6, color="black", label="anomaly score")
        bottom.axhline(threshold, color="red", linestyle="--", linewidth=0.8, label="threshold")
        detected = np.flatnonzero(scores[item.name] >= threshold)
        bottom.plot(detected, scores[item.name][detected], "rv", markersize=5, label="detection")
        bottom.set_ylim(-0.02, 1.05)
        for axis in (top, bottom):
            axis.axvspan(0, item.probation, color="grey", alpha=0.15)
            for start, end in item.windows.tolist():
                axis.axvspan(start, end, color="tab:orange", alpha=0.25)
        bottom.legend(loc="upper left", fontsize=7)
    figure.tight_layout()
    figure.savefig(folder / "nab.png", dpi=90)
    plt.close(figure)


PLOTTED = (
    "machine_temperature_system_failure",
    "nyc_taxi",
    "art_daily_jumpsdown",
    "exchange-4_cpc_results",
)


def main() -> None:
    parser = argparse.ArgumentParser(description="NAB benchmark on the development part")
    parser.add_argument("--nab", type=Path, default=DEFAULT_NAB, help="NAB part folder")
    parser.add_argument("--seeds", type=int, default=3, help="LSTM seeds (default: 3)")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch threads")
    parser.add_argument("--plots", type=Path, help="write nab.png with a few files here")
    args = parser.parse_args()
    report(args.nab, args.seeds, args.threads, args.plots, Console(width=200))


def report(nab: Path, seeds: int, threads: int, plots: Path | None, console: Console) -> None:
    """Run every detector on the NAB part and print the table (bench/anomaly.py calls this)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _report(nab, seeds, plots, console)
    finally:
        torch.set_num_threads(previous)


def _report(nab: Path, seeds: int, plots: Path | None, console: Console) -> None:
    series = load_nab(nab)
    rows: list[tuple[str, dict[str, NabCorpusResult], str, float]] = []
    standard = []
    fitted: dict[str, ForecastDetector] = {}
    for seed in range(seeds):
        errors_seed, values_seed, seconds = forecast_errors(
            series, calendar=True, seed=seed, fitted=fitted if seed == 0 else None
        )
        scores_seed, flags = likelihood_scores(series, errors_seed, values_seed)
        results = swept(series, scores_seed)
        standard.append([results[p].normalised for p in NAB_PROFILES])
        name = f"stateline LSTM detector, seed {seed}"
        rows.append((name, results, f"{own_flags(series, flags):.1f}", seconds))
        if seed == 0:
            errors, values, scores = errors_seed, values_seed, scores_seed
            if plots is not None:
                plot_files(series, scores, results["standard"].threshold, plots)
    means, spreads = np.mean(standard, axis=0), np.std(standard, axis=0)
    streamed, seconds, _ = live_scores(series, fitted)
    gap = max(float(np.max(np.abs(streamed[k] - scores[k]))) for k in scores)
    rows.append(
        (
            f"  seed 0 streamed live, one row per call (max |streamed - offline| {gap:.1e})",
            swept(series, streamed),
            "",
            seconds,
        )
    )
    for every in ONLINE_EVERY:
        online = OnlineConfig(update_every=every, buffer=256, chunk=64, lanes=1, seed=0)
        learned, seconds, updates = live_scores(series, fitted, online)
        name = f"  seed 0 live + OnlineLearner (update every {every} steps; {updates} updates)"
        rows.append((name, swept(series, learned), "", seconds))
    summary = [f"{m:.2f} +- {s:.2f}" for m, s in zip(means, spreads, strict=True)]
    for label, changes in ABLATIONS.items():
        ablated, _ = likelihood_scores(series, errors, values, **changes)
        rows.append((f"  ablation: {label}", swept(series, ablated), "", 0.0))
    raw = {}
    for item in series:
        detection = ForecastDetector(config_for(item)).score_errors(
            errors[item.name], reference=item.probation
        )
        raw[item.name] = np.where(np.arange(len(item.values)) < item.probation, 0, detection.scores)
    rows.append(
        ("  ablation: no likelihood (smoothed squared error score)", swept(series, raw), "", 0.0)
    )
    hundman = {}
    for item in series:
        detection = ForecastDetector(config_for(item, threshold="dynamic")).score_errors(
            errors[item.name], reference=item.probation
        )
        hundman[item.name] = detection.flags.astype(float)
    name = "  ablation: no likelihood, Hundman's dynamic threshold on that score (its flags)"
    rows.append((name, swept(series, hundman), f"{own_flags(series, hundman):.1f}", 0.0))
    plain, plain_values, seconds = forecast_errors(series, calendar=False)
    plain_scores, _ = likelihood_scores(series, plain, plain_values)
    rows.append(("  ablation: no calendar inputs", swept(series, plain_scores), "", seconds))
    average, average_values, seconds = forecast_errors(
        series, calendar=False, predictor="moving_average"
    )
    average_scores, average_flags = likelihood_scores(series, average, average_values)
    rows.append(
        (
            "stateline moving-average detector (same likelihood)",
            swept(series, average_scores),
            f"{own_flags(series, average_flags):.1f}",
            seconds,
        )
    )
    gaussian, seconds = windowed_gaussian(series)
    rows.append(
        (
            "windowed Gaussian (stateline baseline, window 6400)",
            swept(series, gaussian),
            "",
            seconds,
        )
    )
    thresholds = json.loads((nab / "config" / "thresholds.json").read_text())
    for detector, label in (("numenta", "Numenta HTM"), ("windowedGaussian", "windowed Gaussian")):
        published = read_nab_results(nab, detector)
        at_nab = {
            profile: nab_corpus_score(
                series, published, thresholds[detector][key]["threshold"], profile=profile
            )
            for profile, key in NAB_PROFILE_KEYS.items()
        }
        rows.append((f"published {label}, NAB's thresholds", at_nab, "", 0.0))
        rows.append((f"published {label}, swept on this part", swept(series, published), "", 0.0))

    table = Table(title=f"NAB, development part ({len(series)} files), one threshold per profile")
    for column in ("detector", "standard", "low FP", "low FN"):
        table.add_column(column, justify="left" if column == "detector" else "right")
    for category in NAB_CATEGORIES_WITH_ANOMALIES:
        table.add_column(f"{category} (std)", justify="right")
    for column in ("false rows, no-anomaly files", "own flags (std)", "seconds"):
        table.add_column(column, justify="right")
    for name, results, flagged, seconds in rows:
        standard = results["standard"]
        false_rows = sum(
            r.false_positives
            for file, r in standard.files.items()
            if file.startswith("artificialNoAnomaly")
        )
        table.add_row(
            name,
            *(f"{results[p].normalised:.2f}" for p in NAB_PROFILES),
            *(f"{standard.category(c):.1f}" for c in NAB_CATEGORIES_WITH_ANOMALIES),
            str(false_rows),
            flagged,
            f"{seconds:.1f}" if seconds else "",
        )
    console.print(table)
    console.print(
        f"stateline LSTM detector over {seeds} seeds (standard, low FP, low FN): "
        + ", ".join(summary)
    )
    longest = max(series, key=lambda s: len(s.values))
    total, detection, gaussian_speed = single_stream_speed(longest)
    console.print(
        f"One stream ({longest.name}, {len(longest.values)} rows): stateline detector "
        f"{total:,.0f} steps/s with its training on the {longest.probation} probationary rows, "
        f"{detection:,.0f} steps/s detecting (forecasts and likelihood); windowed Gaussian "
        f"{gaussian_speed:,.0f} steps/s. Streamed live one row per call: see the seconds column."
    )


if __name__ == "__main__":
    main()
