"""Arguments of ``stateline detect`` (no heavy imports: ``--help`` stays instant)."""

from __future__ import annotations

import argparse
from typing import Any


def add_detect_parser(commands: Any) -> None:
    detect = commands.add_parser(
        "detect",
        help="score and flag anomalies in a table",
        description="Train an LSTM forecaster on the leading normal steps of every stream, "
        "score each step's forecast errors, flag the steps above a threshold calibrated on "
        "the normal part, and write scores.csv, detect.png and summary.md.",
        epilog="examples:\n"
        "  stateline detect pump.csv --sep ';' --time datetime --label anomaly \\\n"
        "      --ignore changepoint --reference 400\n"
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
        type=int,
        default=400,
        help="leading steps of each stream known to be normal (default: 400)",
    )
    detect.add_argument("--predictor", choices=("lstm", "moving_average"), default="lstm")
    detect.add_argument(
        "--threshold", choices=("quantile", "gaussian", "dynamic"), default="quantile"
    )
    detect.add_argument("--hidden", type=int, default=64, help="LSTM units (default: 64)")
    detect.add_argument("--epochs", type=int, default=60, help="training epochs (default: 60)")
    detect.add_argument("--seed", type=int, default=0)
    detect.add_argument("--output", default="detect-output", help="folder (default: %(default)s)")
