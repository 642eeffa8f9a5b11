"""Arguments of ``stateline detect`` (no heavy imports: ``--help`` stays instant)."""

from __future__ import annotations

import argparse
from typing import Any


def add_detect_parser(commands: Any) -> None:
    detect = commands.add_parser(
        "detect",
        help="score and flag anomalies in a table",
        description="Train an LSTM forecaster on the leading normal steps of every stream, "
        "score each step's forecast errors, turn them into an anomaly score in [0, 1] that "
        "keeps adapting to each stream (the anomaly likelihood), flag the steps whose score "
        "reaches --alarm (or above another threshold calibrated on the normal part), and "
        "write scores.csv, detect.png and summary.md. Rows are taken in file order; repeated "
        "or backward time stamps are counted and reported, not refused.",
        epilog="examples:\n"
        "  stateline detect machine_temperature.csv --time timestamp --reference 15% \\\n"
        "      --max-reference 750                # NAB's protocol\n"
        "  stateline detect pump.csv --sep ';' --time datetime --label anomaly \\\n"
        "      --ignore changepoint --reference 400 --threshold quantile\n"
        "  stateline detect sensors.parquet --group sensor --predictor moving_average",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    detect.add_argument("path", help="a .csv or .parquet file")
    detect.add_argument("--time", help="time column")
    detect.add_argument("--group", help="stream column: one series per value")
    detect.add_argument("--features", nargs="+", help="sensor columns (default: all numeric)")
    detect.add_argument("--label", help="0/1 anomaly label column, for metrics in the summary")
    detect.add_argument("--ignore", nargs="+", default=[], help="columns to leave out")
    detect.add_argument("--sep", default=",", help="CSV separator (default: ',')")
    detect.add_argument(
        "--reference",
        default="400",
        help="leading steps of each stream known to be normal: a number, or a share of each "
        "stream such as 15%% (default: 400)",
    )
    detect.add_argument(
        "--max-reference",
        type=int,
        help="at most this many reference steps per stream (NAB: 750)",
    )
    detect.add_argument("--predictor", choices=("lstm", "moving_average"), default="lstm")
    detect.add_argument(
        "--threshold",
        choices=("likelihood", "quantile", "gaussian", "dynamic"),
        default="likelihood",
        help="likelihood: flag where anomaly_score >= --alarm (default); the others flag the "
        "smoothed error score above a level fitted on the reference part",
    )
    detect.add_argument(
        "--alarm",
        type=float,
        default=0.9,
        help="anomaly score that raises a flag with --threshold likelihood (default: 0.9)",
    )
    detect.add_argument(
        "--calendar",
        choices=("auto", "none", "day", "day+week"),
        default="auto",
        help="calendar inputs of the LSTM from the --time column; auto (default): the time "
        "of day when every stream's reference part spans two days or more, and the day of the "
        "week when it spans two weeks; each only for readings at least 4 per cycle (no time of "
        "day for daily data, neither for monthly)",
    )
    detect.add_argument("--hidden", type=int, default=32, help="LSTM units (default: 32)")
    detect.add_argument("--epochs", type=int, default=40, help="training epochs (default: 40)")
    detect.add_argument(
        "--patience",
        type=int,
        help="stop training after this many epochs without improvement (default: train all "
        "epochs; the reference part is short)",
    )
    detect.add_argument("--seed", type=int, default=0)
    detect.add_argument("--output", default="detect-output", help="folder (default: %(default)s)")
