"""Online learning after a regime change: a frozen model against the same model learning online.

Data: the bundled hourly temperatures of Seattle and San Francisco (vega_datasets,
NOAA). A Forecaster (LSTM) is trained on the first TRAIN_DAYS days of both
cities. The next STREAM_DAYS days are streamed one hour of both cities per
call through two StreamEngines that start with the same weights: one frozen,
one with an OnlineLearner. SHIFT_DAYS days into the stream every later value
is raised by LEVEL_SHIFT deg F (a documented splice, as after a sensor is
re-mounted or recalibrated). The one-hour-ahead absolute error of both models
is printed over windows after the shift, with the hours until each model's
24-hour mean error is back within RECOVERED x its error before the shift, and
plotted to bench-output/online.png. Updates run in the stream loop, synchronously,
so the run is repeatable; their time is reported.

Run: .venv/bin/python bench/online.py [--level 12] [--plot bench-output/online.png]
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

from stateline import Forecaster, ForecasterConfig
from stateline.data import hourly_temperatures
from stateline.online import OnlineConfig, OnlineLearner
from stateline.stream import StateStore, StreamEngine

TRAIN_DAYS, STREAM_DAYS, SHIFT_DAYS = 60, 35, 7
RECOVERED = 1.25
WINDOWS = [
    (-(SHIFT_DAYS * 24 - 1), 0, "week before the shift"),
    (0, 6, "hours 0-6 after"),
    (6, 24, "hours 6-24"),
    (24, 48, "day 2"),
    (48, 7 * 24, "days 3-7"),
    (7 * 24, 14 * 24, "days 8-14"),
    (14 * 24, 28 * 24, "days 15-28"),
]
ONLINE = OnlineConfig(
    buffer=72, update_every=24, lanes=2, chunk=24, epochs=3, learning_rate=3e-3, min_steps=48
)


def recovery_hours(errors: np.ndarray, shift: int, before: float) -> int | None:
    """Hours after the shift until the trailing 24-hour mean error is within RECOVERED x before."""
    trailing = np.convolve(errors, np.ones(24) / 24, mode="full")[: len(errors)]
    for hour in range(24, len(errors) - shift):
        if trailing[shift + hour] <= RECOVERED * before:
            return hour
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description="online learning after a level shift")
    parser.add_argument("--level", type=float, default=12.0, help="shift in deg F")
    parser.add_argument(
        "--plot", type=Path, default=Path(__file__).parents[1] / "bench-output" / "online.png"
    )
    args = parser.parse_args()
    console = Console(width=120)

    frame = hourly_temperatures()
    cities = sorted(frame["city"].unique())
    values = np.stack([frame[frame["city"] == c]["temp"].to_numpy() for c in cities])
    train, stream = TRAIN_DAYS * 24, STREAM_DAYS * 24
    shift = SHIFT_DAYS * 24
    streamed = values[:, train : train + stream].copy()
    streamed[:, shift:] += args.level

    started = time.perf_counter()
    forecaster = Forecaster(
        ForecasterConfig(hidden=32, chunk=96, epochs=40, learning_rate=5e-3, seed=0)
    ).fit([v[:train, None] for v in values])
    train_seconds = time.perf_counter() - started
    assert forecaster.model_ is not None and forecaster.scaler_ is not None
    scaler = forecaster.scaler_
    scale, mean = float(scaler.scale_[0]), float(scaler.mean_[0])

    frozen = copy.deepcopy(forecaster.model_).eval()
    learning = copy.deepcopy(forecaster.model_).eval()
    frozen_engine = StreamEngine(frozen, StateStore(frozen))
    learner = OnlineLearner(StreamEngine(learning, StateStore(learning)), ONLINE)

    # warm both up on the last week of the training part (carries and buffers fill)
    warm = (values[:, train - 7 * 24 : train] - mean) / scale
    for hour in range(warm.shape[1]):
        frozen_engine.step(cities, warm[:, hour, None])
        learner.step(cities, warm[:, hour, None])

    scaled = (streamed - mean) / scale
    errors = {"frozen": np.zeros((2, stream - 1)), "online": np.zeros((2, stream - 1))}
    update_seconds, loop_started = 0.0, time.perf_counter()
    for hour in track(range(stream - 1), description="streaming", transient=True):
        x = scaled[:, hour, None]
        predictions = {
            "frozen": frozen_engine.step(cities, x).predictions[:, 0],
            "online": learner.step(cities, x).predictions[:, 0],
        }
        for name, predicted in predictions.items():
            errors[name][:, hour] = np.abs(predicted * scale + mean - streamed[:, hour + 1])
        if learner.pending >= ONLINE.update_every:
            report = learner.update()
            update_seconds += report.seconds if report else 0.0
    loop_seconds = time.perf_counter() - loop_started

    # errors[:, h] is the error of the forecast for hour h + 1
    pooled = {name: e.mean(axis=0) for name, e in errors.items()}
    at = shift - 1  # the first forecast of a shifted hour
    table = Table(
        title=f"One-hour-ahead MAE (deg F), both cities, level shift +{args.level:g} F "
        f"at day {SHIFT_DAYS} of the stream"
    )
    for column in ("window", "frozen", "online", "frozen / online"):
        table.add_column(column, justify="left" if column == "window" else "right")
    for begin, end, label in WINDOWS:
        cells = [pooled[name][at + begin : at + end].mean() for name in ("frozen", "online")]
        table.add_row(label, f"{cells[0]:.2f}", f"{cells[1]:.2f}", f"{cells[0] / cells[1]:.2f}x")
    console.print(table)
    before = {name: pooled[name][:at].mean() for name in pooled}
    for name in ("frozen", "online"):
        hours = recovery_hours(pooled[name], at, before[name])
        console.print(
            f"{name}: back within {RECOVERED}x its pre-shift MAE ({before[name]:.2f} F) "
            + (f"after {hours} hours" if hours is not None else "never in the run")
        )
    each = update_seconds / max(learner.version, 1) * 1e3
    console.print(
        f"training {train_seconds:.1f} s; streaming {stream - 1} hours x 2 cities "
        f"{loop_seconds:.1f} s, of which {learner.version} updates {update_seconds:.1f} s "
        f"({update_seconds / loop_seconds:.0%}; {each:.0f} ms "
        f"per update of {ONLINE.lanes} lanes x {ONLINE.buffer} hours x {ONLINE.epochs} epochs)"
    )

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True)
    hours = np.arange(stream) - shift
    for index, city in enumerate(cities):
        top.plot(hours, streamed[index], lw=0.8, label=city)
    top.axvline(0, color="k", ls="--", lw=0.8)
    top.set_ylabel("temperature, deg F")
    top.set_title(f"streamed series, +{args.level:g} F from hour 0")
    top.legend(loc="upper left")
    for name, color in (("frozen", "#d63031"), ("online", "#0984e3")):
        trailing = np.convolve(pooled[name], np.ones(24) / 24, mode="full")[: stream - 1]
        bottom.plot(hours[1:], trailing, color=color, label=f"{name} model")
    bottom.axvline(0, color="k", ls="--", lw=0.8)
    bottom.set_ylabel("24 h mean abs error, deg F")
    bottom.set_xlabel("hours from the level shift")
    bottom.legend(loc="upper right")
    figure.tight_layout()
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.plot, dpi=110)
    console.print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
