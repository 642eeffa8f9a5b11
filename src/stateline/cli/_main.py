"""Argument parsing and dispatch for the ``stateline`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .._errors import StatelineError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2

_EPILOG = """examples:
  stateline demo --output demo-output
  stateline train temps.csv --time time --group city --target temp --output model
  stateline predict temps.csv --model model --output predictions.csv
  stateline serve --model model --token s3cret
  stateline replay temps.csv --group city --token s3cret --rate 20
  stateline detect pump.csv --sep ';' --time datetime --label anomaly --reference 400
  stateline lanes data.csv --time timestamp --group sensor --lanes 32 --chunk 64
  stateline bench --streams 1 1024 16384

Run 'stateline COMMAND --help' for a command's flags. Exit codes: 0 done, 1 error
(the message says what and how to fix it), 2 bad usage.
"""

# Commands whose full flags come from config dataclasses: their parsers are built only
# when the command runs, so that `stateline --help` imports nothing heavy.
_DELEGATED = {
    "train": "train a stateful forecaster on a table, save a model directory",
    "predict": "forecast every step of a table with a saved model",
    "serve": "serve a model: HTTP/WebSocket API, live dashboard, metrics, snapshots",
    "replay": "send a table into a running server as live streams",
    "worker": "step events from a Kafka topic, answers to another; scale out in a group",
    "bench": "measure the streaming engine's throughput and latency here",
}


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (imports nothing heavy)."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="stateline",
        description="Stateful LSTM/GRU models for time series.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"stateline {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="run the end-to-end demo on bundled real data",
        description="On the bundled hourly temperatures of Seattle and San Francisco: shape "
        "windows and stateful lanes, train a stateful LSTM forecaster and score it against "
        "naive forecasts, splice documented sensor faults into the held-back part, stream it "
        "through the engine with anomaly detection, score the flags against the "
        "moving-average detector, and write a report with plots and the saved model.",
        epilog="example:\n  stateline demo --output demo-output",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--output", default="demo-output", help="report folder (default: %(default)s)"
    )
    demo.add_argument("--steps", type=int, default=48, help="window length in hours (default: 48)")
    demo.add_argument("--lanes", type=int, default=16, help="stateful lanes (default: 16)")
    demo.add_argument("--epochs", type=int, default=60, help="most training epochs (default: 60)")
    demo.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")

    lanes = commands.add_parser(
        "lanes",
        help="show how a table packs into stateful lanes",
        description="Load a CSV/Parquet table, one sequence per group, and report the lane "
        "layout: chunks, padding and efficiency.",
        epilog="example:\n  stateline lanes data.csv --time t --group sensor --lanes 32 --chunk 64",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lanes.add_argument("path", help="a .csv or .parquet file")
    lanes.add_argument("--time", help="time column (must increase within each group)")
    lanes.add_argument("--group", help="stream/group column: one sequence per value")
    lanes.add_argument("--features", nargs="+", help="feature columns (default: all numeric)")
    lanes.add_argument("--targets", nargs="+", help="target columns")
    lanes.add_argument("--sep", default=",", help="CSV separator (default: ',')")
    lanes.add_argument("--lanes", type=int, required=True, help="lanes (batch rows)")
    lanes.add_argument("--chunk", type=int, required=True, help="time steps per chunk")
    lanes.add_argument("--split", action="store_true", help="split long sequences over lanes")

    from ._detect_args import add_detect_parser

    add_detect_parser(commands)
    for name, summary in _DELEGATED.items():
        delegated = commands.add_parser(
            name, help=summary, add_help=False, description=f"{summary} (see --help)"
        )
        delegated.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 error, 2 usage)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] in _DELEGATED:
        return _run_delegated(arguments[0], arguments[1:])
    parser = build_parser()
    args = parser.parse_args(arguments)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        if args.command == "demo":
            from ._demo import run_demo

            run_demo(
                output=args.output,
                steps=args.steps,
                lanes=args.lanes,
                epochs=args.epochs,
                seed=args.seed,
            )
        elif args.command == "lanes":
            from ._lanes import run_lanes

            run_lanes(args)
        elif args.command == "detect":
            from ._detect import run_detect

            run_detect(args)
    except StatelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _run_delegated(command: str, rest: list[str]) -> int:
    try:
        _delegate(command, rest)
    except StatelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _delegate(command: str, rest: list[str]) -> None:
    if command == "train":
        from ._train import run_train

        run_train(rest)
    elif command == "predict":
        from ._train import run_predict

        run_predict(rest)
    elif command == "serve":
        from ._serve import run_serve

        run_serve(rest)
    elif command == "replay":
        from ._replay import run_replay

        run_replay(rest)
    elif command == "worker":
        from ._worker import run_worker

        run_worker(rest)
    elif command == "bench":
        from ._bench import run_bench

        run_bench(rest)
