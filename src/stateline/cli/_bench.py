"""``stateline bench``: how fast the streaming engine steps streams on this machine."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np

_EPILOG = """examples:
  stateline bench
  stateline bench --model model --streams 1 256 4096 --seconds 2
"""


def bench_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stateline bench",
        description="Measure the streaming engine here: single-stream step latency and steps "
        "per second when N live streams each send one step per call. Use it to size a "
        "deployment; bench/*.py in the repository hold the comparisons with other tools.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", help="model directory (default: a fresh LSTM, --hidden)")
    parser.add_argument("--hidden", type=int, default=64, help="units of the fresh LSTM")
    parser.add_argument("--inputs", type=int, default=8, help="inputs of the fresh LSTM")
    parser.add_argument(
        "--streams", type=int, nargs="+", default=[1, 1024, 16384], help="live streams N"
    )
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    return parser


def run_bench(argv: Sequence[str]) -> list[tuple[int, float, float]]:
    """Returns ``(streams, steps per second, median microseconds per call)`` rows."""
    from rich.console import Console
    from rich.table import Table

    from .._errors import ConfigError, describe
    from ..nn import ModelConfig, SequenceModel
    from ..stream import StateStore, StreamEngine
    from ..train import Forecaster

    args = bench_parser().parse_args(list(argv))
    if any(n < 1 for n in args.streams) or args.seconds <= 0:
        raise ConfigError(
            describe(
                "--streams/--seconds",
                "positive numbers",
                f"{args.streams}/{args.seconds}",
                problem="are invalid.",
            )
        )
    if args.model:
        model = Forecaster.load(args.model).model_
        assert model is not None
    else:
        model = SequenceModel(ModelConfig(inputs=args.inputs, hidden=args.hidden, outputs=1))
    model.eval()
    inputs = model.config.inputs
    rows = []
    rng = np.random.default_rng(0)
    for streams in args.streams:
        engine = StreamEngine(model, StateStore(model, initial_slots=streams))
        ids = list(range(streams))
        x = rng.normal(size=(streams, inputs)).astype(np.float32)
        engine.step(ids, x)  # creates the streams
        times: list[float] = []
        deadline = time.perf_counter() + args.seconds
        while time.perf_counter() < deadline or len(times) < 3:
            started = time.perf_counter()
            engine.step(ids, x)
            times.append(time.perf_counter() - started)
        median = float(np.median(times))
        rows.append((streams, streams / median, median * 1e6))
    table = Table(
        title=f"streaming engine, {type(model).__name__} {inputs} inputs, "
        f"hidden {model.config.hidden}, one step per stream per call"
    )
    for column in ("live streams", "steps/s", "median us per call", "us per step"):
        table.add_column(column, justify="right")
    for streams, rate, micro in rows:
        table.add_row(f"{streams:,}", f"{rate:,.0f}", f"{micro:,.1f}", f"{micro / streams:,.2f}")
    Console().print(table)
    return rows
