"""The demo's model plots and report sections (matplotlib PNGs and markdown)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rich.console import Console
from rich.table import Table

from ..anomaly import FlagReport
from ._demo_model import READINGS, SEASONAL, ForecastScores, StreamRun


def print_model_tables(
    console: Console, forecasts: ForecastScores, detectors: dict[str, FlagReport]
) -> None:
    table = Table(title=f"Held-back part, {forecasts.hours:,} hours: one-hour-ahead MAE (deg F)")
    table.add_column("forecaster")
    table.add_column("MAE", justify="right")
    for name, mae in forecasts.mae.items():
        table.add_row(name, f"{mae:.3f}")
    console.print(table)
    table = Table(title="Faults spliced into the held-back part: detection, both streams pooled")
    for column in (
        "detector",
        "F1",
        "FAR %",
        "MAR %",
        "point-adj. F1",
        "range P",
        "range R",
        "NAB",
        "faults found",
    ):
        table.add_column(column, justify="left" if column == "detector" else "right")
    for name, scores in detectors.items():
        table.add_row(
            name,
            f"{scores.binary.f1:.3f}",
            f"{scores.binary.false_alarm_rate:.2f}",
            f"{scores.binary.missed_alarm_rate:.2f}",
            f"{scores.point_adjusted_f1:.3f}",
            f"{scores.range_precision:.3f}",
            f"{scores.range_recall:.3f}",
            f"{scores.nab.normalised:.1f}",
            f"{scores.found}/{len(scores.delays)}",
        )
    console.print(table)


def model_report(
    forecasts: ForecastScores,
    detectors: dict[str, FlagReport],
    run: StreamRun,
    *,
    epochs: int,
    best_loss: float,
    seconds: dict[str, float],
    echoes: tuple[int, int],
) -> list[str]:
    false, echoed = echoes
    calls = np.array(run.call_seconds) * 1e6
    lines = [
        "## Stateful LSTM forecasters",
        "",
        "Two `Forecaster`s (LSTM, 64 units), trained by truncated BPTT over stateful lanes on "
        f"the training parts ({seconds['train']:.1f} s for both). `{SEASONAL}` reads, beside "
        "each reading, the reading 23 h before it: the same hour yesterday of the hour it "
        "forecasts, the one the seasonal naive copies (a seasonal input; it learns what to add "
        f"to it; {epochs} epochs with early stopping, best validation loss {best_loss:.4f}). "
        f"`{READINGS}` reads the readings alone. Forecasts run from the start of each stream.",
        "",
        "| forecaster (one hour ahead, clean held-back part) | MAE, deg F |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {mae:.3f} |" for name, mae in forecasts.mae.items()]
    lines += [
        "",
        "![forecasts](forecast.png)",
        "",
        "## Streaming the held-back part, with faults",
        "",
        "Five documented sensor faults were spliced into each stream's held-back part "
        "(`stateline/cli/_demo_faults.py`: a burst of spikes, a stuck sensor, a level shift, "
        "a drift, a noisy amplifier); they are the labels below. The engine held both "
        "streams; each stream's detector calibrated on the last two weeks of its training "
        "part, then every held-back hour of both streams went through one "
        f"`StreamDetector.step` call ({len(calls):,} calls, median {np.median(calls):.0f} us, "
        f"p99 {np.percentile(calls, 99):.0f} us per call of 2 streams). Streamed forecasts "
        f"equal the offline ones to {run.max_offline_difference:.1e} deg F.",
        "",
        "| detector | F1 | FAR % | MAR % | point-adjusted F1 | range precision | "
        "range recall | NAB (standard) | faults found | delays (h) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, scores in detectors.items():
        delays = ", ".join("missed" if d is None else str(d) for d in scores.delays)
        binary = scores.binary
        lines.append(
            f"| {name} | {binary.f1:.3f} | {binary.false_alarm_rate:.2f} | "
            f"{binary.missed_alarm_rate:.2f} | {scores.point_adjusted_f1:.3f} | "
            f"{scores.range_precision:.3f} | {scores.range_recall:.3f} | "
            f"{scores.nab.normalised:.1f} | {scores.found}/{len(scores.delays)} | {delays} |"
        )
    lines += [
        "",
        "A one-step forecaster follows a stuck or slowly drifting sensor once it has seen a "
        "few of its readings, so those faults are found late or not at all; spikes, shifts "
        "and noise are found at once.",
        "",
        f"The detector behind the saved model (`model/`) uses `{READINGS}`. `{SEASONAL}` "
        "forecasts better and finds more faults sooner, but it raises more false alarms "
        f"(its row above): {echoed:,} of its {false:,} false flags fall 23 or 24 h after a "
        "faulty reading, which it reads a second time as the input beside a normal one, "
        "and the rest come from its errors on clean data being so small that the threshold "
        "calibrated on them is tight.",
        "",
        "![anomalies](anomalies.png)",
        "",
    ]
    return lines


def plot_forecasts(
    path: Path,
    names: list[str],
    full: list[NDArray[np.float64]],
    cut: list[int],
    lstm: list[NDArray[np.float64]],
) -> None:
    plt = _pyplot()
    week = 24 * 7
    figure, axes = plt.subplots(len(names), 1, figsize=(11, 2.6 * len(names)), sharex=True)
    for index, (axis, name, series, at) in enumerate(
        zip(np.atleast_1d(axes), names, full, cut, strict=True)
    ):
        hours = np.arange(week)
        truth = series[at : at + week, 0]
        axis.plot(hours, truth, color="black", lw=1.2, label="observed")
        axis.plot(hours, lstm[index][:week], color="tab:orange", lw=1, label="LSTM")
        axis.plot(
            hours, series[at - 1 : at - 1 + week, 0], color="tab:gray", lw=0.8, ls="--",
            label="persistence",
        )  # fmt: skip
        axis.set_title(f"{name}: first week held back, one hour ahead", loc="left", fontsize=9)
        axis.set_ylabel("deg F")
        axis.legend(loc="upper right", fontsize=8)
    np.atleast_1d(axes)[-1].set_xlabel("hour")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_anomalies(path: Path, run: StreamRun) -> None:
    plt = _pyplot()
    names = list(run.values)
    figure, axes = plt.subplots(
        2 * len(names), 1, figsize=(11, 2.4 * 2 * len(names)), sharex=True,
        gridspec_kw={"height_ratios": [2, 1] * len(names)},
    )  # fmt: skip
    for index, name in enumerate(names):
        top, bottom = axes[2 * index], axes[2 * index + 1]
        values, flags = run.values[name], run.flags[name]
        hours = np.arange(len(values))
        top.plot(hours, values, color="tab:blue", lw=0.6, label="streamed (with faults)")
        for fault, start, end in run.spans[name]:
            top.axvspan(start, end, color="tab:red", alpha=0.15)
            top.text(start, np.nanmax(values), fault, fontsize=7, va="top")
        top.scatter(hours[flags], values[flags], color="tab:red", s=6, label="flagged", zorder=3)
        top.set_title(f"{name}: held-back part, faults shaded", loc="left", fontsize=9)
        top.set_ylabel("deg F")
        top.legend(loc="lower left", fontsize=8)
        bottom.plot(hours, run.scores[name], color="tab:purple", lw=0.7, label="score")
        bottom.plot(hours, run.levels[name], color="black", lw=0.8, ls="--", label="threshold")
        bottom.set_yscale("log")
        bottom.legend(loc="upper left", fontsize=8)
    axes[-1].set_xlabel("hour of the held-back part")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_training(path: Path, history: Any) -> None:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 3))
    epochs = np.arange(1, len(history.epochs) + 1)
    axis.plot(epochs, history.train_loss, label="training loss")
    validation = [np.nan if v is None else v for v in history.validation_loss]
    axis.plot(epochs, validation, label="validation loss")
    axis.set_yscale("log")
    axis.set_xlabel("epoch")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
