"""Anomaly benchmark on SKAB: stateline's LSTM detector vs baselines and SKAB's published rows.

SKAB's protocol (its notebooks): every experiment's first 400 steps are normal
and are all a detector may learn from; flags over all steps of all 34
experiments are pooled into F1, false-alarm rate (FAR) and missed-alarm rate
(MAR). stateline's detector trains ONE LSTM forecaster on the 34 normal parts
(each standardised by itself), then scores each experiment's one-step forecast
errors: per-channel squared z-scores (normalised on its normal part), each
smoothed by an EWMA 0.1, combined by their trimmed mean (the largest channel
dropped: one channel alone raises no alarm), against a threshold of margin x
the 0.99 quantile of its normal part's scores. The margin is chosen from
MARGINS with labels, leave one folder out: experiments of valve1 take the
margin with the best pooled F1 on valve2 + other, and so on, so no experiment
is flagged with a margin chosen by its own labels. Two ablation rows show the
same errors with the margin 1.5 fixed before any of this, and with the plain
mean of the channels (the setting of earlier versions).
The moving-average baseline (mean of the previous 10 steps as the forecast)
goes through the same scorer and margin selection; the windowed Gaussian
(z-scores against the previous 100 steps, threshold 1.5 x the 0.99 quantile
of steps 100-400) keeps its own. "Flag every step" shows where flagging
everything lands (about a third of SKAB's steps are anomalous). The published
rows are copied from SKAB's README.
Changepoint NAB (standard profile, 60-step windows right of each changepoint,
from the switches of the flags) is printed for the detectors run here. A second
table scores the anomaly scores themselves with NAB as NAB does it: windows =
the labelled anomaly ranges, one threshold for all experiments swept over the
scores' quantiles and the best kept, for each of NAB's three profiles.

A third row per seed scores SKAB with the anomaly likelihood's own flags
(``threshold="likelihood"``, alarm 0.9, from the same errors), the detector
that NAB (below) measures.

After SKAB, the NAB benchmark (bench/nab.py) runs on the NAB development part.

Run: .venv/bin/python bench/anomaly.py [--skab ../shared/data/skab] [--seeds 3]
     [--nab ../shared/data/nab-dev] [--only skab|nab] [--plots DIR]
SKAB (GPL-3.0) and NAB (AGPL-3.0) are read from the given folders, never copied.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

import nab
from stateline.anomaly import (
    NAB_PROFILES,
    DetectorConfig,
    ForecastDetector,
    QuantileThreshold,
    WindowedGaussian,
    binary_scores,
    leave_one_group_out,
    nab_optimise,
    ranges,
    standardise,
)
from stateline.anomaly._scorers import ewma
from stateline.anomaly._skab import SKAB_PUBLISHED, SkabReport, evaluate_skab, load_skab

DEFAULT_SKAB = Path(__file__).resolve().parents[2] / "shared" / "data" / "skab"
REFERENCE = 400
WINDOW = 100
MARGINS = (1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8, 2.0, 2.5, 3.0)


def scored(errors: list[np.ndarray], margin: float, combine: str = "trimmed", **config) -> list:
    """Detections of every experiment's forecast errors at one margin."""
    scorer = ForecastDetector(DetectorConfig(margin=margin, combine=combine, **config))  # type: ignore[arg-type]
    return [scorer.score_errors(error) for error in errors]


def selected_row(
    experiments, errors: list[np.ndarray], name: str, started: float, **config
) -> tuple[str, SkabReport, float]:
    """The trimmed scores with the margin chosen leave-one-folder-out, as a table row."""
    labels = [e.anomaly for e in experiments]
    folders = [e.name.split("/")[0] for e in experiments]
    candidates = {m: [d.flags for d in scored(errors, m, **config)] for m in MARGINS}
    selection = leave_one_group_out(labels, candidates, folders)
    flags = dict(zip([e.name for e in experiments], selection.flags, strict=True))
    report = evaluate_skab(experiments, lambda e: flags[e.name])
    chosen = ", ".join(f"{folder} {margin}" for folder, margin in selection.chosen.items())
    return f"{name} (margins {chosen})", report, time.perf_counter() - started


def lstm_rows(
    experiments, seeds: int, scores: dict, ablation: dict[str, list[float]]
) -> list[tuple[str, SkabReport, float]]:
    """One row per seed; seed 0's scores go into ``scores``.

    ``ablation`` collects every seed's F1 for the fixed margin and for the
    channels' plain mean, computed from the same forecast errors.
    """
    rows = []
    labels = [e.anomaly for e in experiments]
    for seed in range(seeds):
        started = time.perf_counter()
        detector = ForecastDetector(DetectorConfig(seed=seed)).fit(
            [e.values[:REFERENCE] for e in experiments]
        )
        errors = [
            detector.errors(e.values)
            for e in track(experiments, description=f"LSTM seed {seed}", transient=True)
        ]
        rows.append(
            selected_row(experiments, errors, f"stateline LSTM detector, seed {seed}", started)
        )
        if seed == 0:
            scores["stateline LSTM detector (seed 0)"] = [d.scores for d in scored(errors, 1.5)]
        for combine in ("trimmed", "mean"):
            fixed = scored(errors, 1.5, combine)
            ablation.setdefault(combine, []).append(
                binary_scores(labels, [d.flags for d in fixed]).f1
            )
        likelihood = ForecastDetector(DetectorConfig(threshold="likelihood", combine="trimmed"))
        detections = [
            likelihood.score_errors(error, values=standardise(e.values, e.values[:REFERENCE]))
            for e, error in zip(experiments, errors, strict=True)
        ]
        flags = [d.flags for d in detections]
        ablation.setdefault("likelihood", []).append(binary_scores(labels, flags).f1)
        if seed == 0:
            name = "stateline LSTM detector, anomaly likelihood (seed 0)"
            scores[name] = [np.nan_to_num(d.anomaly_scores) for d in detections]
    return rows


def windowed_gaussian(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Windowed-Gaussian scores (standardised by the normal part), EWMA 0.1, same threshold."""
    raw = WindowedGaussian(window=WINDOW).score_many(standardise(values, values[:REFERENCE]))
    smoothed = ewma(raw, 0.1)
    threshold = QuantileThreshold(quantile=0.99, margin=1.5).fit(smoothed[WINDOW:REFERENCE])
    return threshold.flag_many(smoothed), smoothed


def nab_table(experiments, scores: dict[str, list[np.ndarray]]) -> Table:
    """NAB with its threshold optimised per detector and profile, on the anomaly ranges."""
    windows = [ranges(e.anomaly) for e in experiments]
    table = Table(title="NAB on SKAB's anomaly ranges, threshold optimised as NAB does")
    table.add_column("detector")
    for profile in NAB_PROFILES:
        table.add_column(profile, justify="right")
    for name, series_scores in scores.items():
        cells = []
        for profile in NAB_PROFILES:
            _, result = nab_optimise(
                series_scores, windows, profile=profile, probation=0.0, candidates=60
            )
            cells.append(f"{result.normalised:.1f}")
        table.add_row(name, *cells)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description="SKAB and NAB anomaly benchmarks")
    parser.add_argument("--skab", type=Path, default=DEFAULT_SKAB, help="SKAB checkout")
    parser.add_argument("--nab", type=Path, default=nab.DEFAULT_NAB, help="NAB part folder")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", choices=("skab", "nab"), help="run one benchmark only")
    parser.add_argument("--plots", type=Path, help="write NAB's nab.png here")
    args = parser.parse_args()
    console = Console(width=200)
    if args.only != "nab":
        skab(args.skab, args.seeds, console)
    if args.only != "skab":
        nab.report(args.nab, args.seeds, 2, args.plots, console)


def skab(folder: Path, seeds: int, console: Console) -> None:
    """The SKAB table and SKAB's NAB table."""
    experiments = load_skab(folder)

    scores: dict[str, list[np.ndarray]] = {}
    ablation: dict[str, list[float]] = {}
    rows = lstm_rows(experiments, seeds, scores, ablation)
    started = time.perf_counter()
    average = ForecastDetector(DetectorConfig(predictor="moving_average", window=10)).fit(
        [e.values[:REFERENCE] for e in experiments]
    )
    errors = [average.errors(e.values) for e in experiments]
    name = "moving-average baseline (window 10)"
    rows.append(selected_row(experiments, errors, name, started))
    scores[name] = [d.scores for d in scored(errors, 1.5)]
    everything = evaluate_skab(experiments, lambda e: np.ones(len(e.anomaly), dtype=bool))
    rows.append(("flag every step (reference point)", everything, 0.0))
    started = time.perf_counter()
    gaussian = {e.name: windowed_gaussian(e.values) for e in experiments}
    report = evaluate_skab(experiments, lambda e: gaussian[e.name][0])
    name = "windowed-Gaussian baseline (window 100)"
    rows.append((name, report, time.perf_counter() - started))
    scores[name] = [gaussian[e.name][1] for e in experiments]

    table = Table(title=f"SKAB outlier detection, {len(experiments)} experiments, all steps pooled")
    for column in (
        "detector",
        "F1",
        "FAR, %",
        "MAR, %",
        "F1 after step 400",
        "NAB (CP)",
        "seconds",
    ):
        table.add_column(column, justify="left" if column == "detector" else "right")
    for name, report, seconds in rows:
        table.add_row(
            name,
            f"{report.binary.f1:.3f}",
            f"{report.binary.false_alarm_rate:.2f}",
            f"{report.binary.missed_alarm_rate:.2f}",
            f"{report.after_reference.f1:.3f}",
            f"{report.nab.normalised:.2f}",
            f"{seconds:.1f}",
        )
    lstm = [r.binary.f1 for n, r, _ in rows if n.startswith("stateline")]
    table.add_row(
        f"stateline LSTM, mean +- sd of {len(lstm)} seeds",
        f"{np.mean(lstm):.3f} +- {np.std(lstm):.3f}",
        "",
        "",
        "",
        "",
        "",
    )
    for label, key in (
        ("same errors, margin 1.5 fixed beforehand", "trimmed"),
        ("same errors, channels' plain mean, margin 1.5", "mean"),
        ("same errors, anomaly likelihood's flags (alarm 0.9)", "likelihood"),
    ):
        table.add_row(
            f"  ablation: {label}",
            f"{np.mean(ablation[key]):.3f} +- {np.std(ablation[key]):.3f}",
            "",
            "",
            "",
            "",
            "",
        )
    for name, (f1, far, mar) in SKAB_PUBLISHED.items():
        table.add_row(f"published: {name}", f"{f1:.2f}", f"{far:.2f}", f"{mar:.2f}", "", "", "")
    console.print(table)
    best = max(f1 for f1, _, _ in SKAB_PUBLISHED.values())
    console.print(nab_table(experiments, scores))
    average_f1 = next(r.binary.f1 for n, r, _ in rows if n.startswith("moving-average"))
    console.print(
        f"Best published F1 {best:.2f}; stateline LSTM mean {np.mean(lstm):.3f} "
        f"({np.mean(lstm) / best:.3f}x), lowest seed {min(lstm):.3f}; "
        f"moving-average baseline {average_f1:.3f}."
    )


if __name__ == "__main__":
    main()
