"""``stateline train`` and ``stateline predict``: a table in, a model directory out, and back."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import DataError, describe
from ._config_flags import add_config_flags, config_from_args

COLUMNS_FILE = "columns.json"

_TRAIN_EPILOG = """examples:
  stateline train temps.csv --time time --group city --target temp --output model
  stateline train pump.csv --sep ';' --target Pressure Current --features Voltage \\
      --hidden 32 --epochs 20 --chunk 50 --output pump-model
  stateline train temps.csv --time time --group city --target temp --lanes 64 --nproc 2
  stateline train sensors/ --group sensor --time t --target value --nproc 2

A folder of Parquet files (or a .parquet file with --group) is read series by series:
with --nproc, each process reads only the series in its block of lanes.

--nproc N trains in N processes on this machine (torch.distributed, gloo on the CPU):
each takes a block of the lanes. On several machines, start `torchrun --nnodes ...
-m stateline train ...` on each (see docs/training.md).
"""
_PREDICT_EPILOG = """example:
  stateline predict temps.csv --model model --output predictions.csv

Without --group and --time, the model's own (stateline train's, in columns.json) are used
when the file has those columns.
"""


def _table_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path", help="a .csv or .parquet file, or (train) a folder of Parquet files with --group"
    )
    parser.add_argument("--time", help="time column (must increase within each stream)")
    parser.add_argument("--group", help="stream column: one series per value")
    parser.add_argument("--sep", default=",", help="CSV separator (default: ',')")


def train_parser() -> argparse.ArgumentParser:
    from ..train import ForecasterConfig

    parser = argparse.ArgumentParser(
        prog="stateline train",
        description="Train a stateful LSTM/GRU forecaster on a table by truncated BPTT over "
        "stateful lanes, and save it to a model directory (for predict, serve, detect).",
        epilog=_TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _table_flags(parser)
    parser.add_argument("--target", nargs="+", required=True, help="column(s) to forecast")
    parser.add_argument("--features", nargs="+", default=[], help="covariate columns")
    parser.add_argument("--output", default="model", help="model directory (default: model)")
    parser.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="training processes on this machine, each with a block of the lanes (default: 1)",
    )
    add_config_flags(parser, ForecasterConfig)
    return parser


def predict_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stateline predict",
        description="Forecast every step of every stream of a table with a saved model "
        "(each stream from a zero state), and write them as CSV.",
        epilog=_PREDICT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _table_flags(parser)
    parser.add_argument("--model", required=True, help="model directory from stateline train")
    parser.add_argument("--output", default="predictions.csv", help="CSV to write")
    return parser


def run_train(argv: Sequence[str]) -> Path:
    from ..data import load_table
    from ..train import Forecaster, ForecasterConfig

    args = train_parser().parse_args(list(argv))
    if args.nproc < 1:
        raise DataError(
            describe("--nproc", "a positive integer", str(args.nproc), problem="is invalid.")
        )
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:  # launch the processes, then done
        return _launch(args.nproc, argv, Path(args.output))
    config = config_from_args(ForecasterConfig, args)
    parquet = _parquet_dataset(args.path, args.group)
    series: list[Any] = []
    covariates: list[Any] | None = None
    if parquet:
        # Read by each process, series by series: only those in its lanes (docs/training.md).
        forecaster = Forecaster(config).fit(
            args.path,
            target=list(args.target),
            features=list(args.features) or None,
            time=args.time,
            group=args.group,
        )
        streams, read = list(forecaster.streams_), "from the Parquet dataset"
    else:
        columns = list(args.target) + list(args.features)
        table = load_table(
            _source(args.path), time=args.time, features=columns, group=args.group, sep=args.sep
        )
        targets = len(args.target)
        series = [values[:, :targets] for values in table.features]
        covariates = [values[:, targets:] for values in table.features] if args.features else None
        named = args.group is not None  # the streams keep their names (Forecaster.load)
        forecaster = Forecaster(config).fit(
            dict(zip(table.groups, series, strict=True)) if named else series,
            covariates=covariates,
        )
        streams, read = list(table.groups), f"{sum(len(s) for s in series)} steps"
    if _rank() != 0:  # every rank holds the same weights: rank 0 writes them
        return Path(args.output)
    output = forecaster.save(args.output)
    document = {
        "target": list(args.target),
        "features": list(args.features),
        "time": args.time,
        "group": args.group,
        "sep": args.sep,
        "streams": [str(stream) for stream in streams],
    }
    (Path(args.output) / COLUMNS_FILE).write_text(json.dumps(document, indent=2))
    history = forecaster.history_
    assert history is not None
    print(
        f"saved {args.output}: {len(streams)} stream(s), {read}, "
        f"{len(history.epochs)} epochs, best loss {history.best_loss:.4f} "
        f"(epoch {history.best_epoch})"
    )
    if not parquet:  # a Parquet folder is not held in memory here: no second pass over it
        print(_against_persistence(forecaster, series, covariates))
    return output


def _against_persistence(forecaster: Any, series: list[Any], covariates: list[Any] | None) -> str:
    """One line: the model's one-step error on each stream's validation tail (not trained on)
    in the data's units, next to persistence's (the last value again): the loss printed
    above is a scaled one, and says nothing of whether the model beats the naive forecast."""
    share = forecaster.config.validation_share
    model_error = naive_error = 0.0
    count = 0
    for index, values in enumerate(series):
        cut = forecaster.config.training_steps(len(values))  # the split fit made
        if not 1 <= cut < len(values):
            continue
        extra = None if covariates is None else covariates[index]
        forecast = forecaster.predict(values, covariates=extra).values[:, 0]  # (steps, targets)
        truth = values[cut:]
        model_error += float(np.abs(forecast[cut - 1 : -1] - truth).sum())
        naive_error += float(np.abs(values[cut - 1 : -1] - truth).sum())
        count += truth.size
    if not count:
        return "no validation tail (--validation-share 0): the model is not compared"
    model, naive = model_error / count, naive_error / count
    verdict = (
        "better than persistence"
        if model < naive
        else "NOT better than persistence: more --epochs or --hidden, covariates, or "
        "check that the data has a pattern to learn"
    )
    return (
        f"validation tails (the last {share:.0%} of each stream, not trained on): mean absolute "
        f"error one step ahead {model:.4g} in the data's units, persistence {naive:.4g} "
        f"({model / naive if naive else float('inf'):.2f}x): {verdict}"
    )


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _launch(processes: int, argv: Sequence[str], output: Path) -> Path:
    """Run this command in ``processes`` processes through ``torch.distributed.run``."""
    import socket
    import subprocess
    import sys

    rest = list(argv)
    for position, item in enumerate(rest):  # drop --nproc N / --nproc=N
        if item == "--nproc":
            del rest[position : position + 2]
            break
        if item.startswith("--nproc="):
            del rest[position]
            break
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", **os.environ}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
        "--master_addr", "127.0.0.1", "--master_port", str(port),
        "-m", "stateline", "train", *rest,
    ]  # fmt: skip
    import signal

    child = subprocess.Popen(command, env=env)
    # A stop meant for this command (timeout, systemd, docker stop, Ctrl-C) reaches the launcher,
    # which stops its training processes: none may finish later and write --output.
    forward = {
        number: signal.signal(number, lambda number, frame: child.send_signal(number))
        for number in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        returncode = child.wait()
    finally:
        for number, handler in forward.items():
            signal.signal(number, handler)
    if returncode != 0:
        raise DataError(
            describe(
                "--nproc",
                f"{processes} training processes that finish",
                f"exit status {returncode}",
                problem="failed.",
                fix="Read the processes' errors above; try --nproc 1 to see one alone.",
            )
        )
    return output


def run_predict(argv: Sequence[str]) -> Path:
    import pandas as pd

    from ..data import load_table
    from ..train import Forecaster

    args = predict_parser().parse_args(list(argv))
    columns = model_columns(args.model)
    forecaster = Forecaster.load(args.model)
    target, features = columns["target"], columns["features"]
    source = _source(args.path)
    # Streams and order as the model was trained, when the flags are left out and the file
    # has those columns: read as one stream, a table of several interleaved streams gives
    # forecasts of nothing real.
    present = _header(source, args.sep)
    group = args.group or (columns.get("group") if columns.get("group") in present else None)
    time = args.time or (columns.get("time") if columns.get("time") in present else None)
    taken = [
        f"--{flag} {name}"
        for flag, name, given in (("group", group, args.group), ("time", time, args.time))
        if name and not given
    ]
    if taken:
        print(f"as the model was trained ({COLUMNS_FILE}): {' '.join(taken)}")
    table = load_table(source, time=time, features=target + features, group=group, sep=args.sep)
    frames = []
    horizon = forecaster.config.horizon
    all_times: list[Any] = list(table.times) if table.times else [None] * len(table.groups)
    for key, values, times in zip(table.groups, table.features, all_times, strict=True):
        forecast = forecaster.predict(
            values[:, : len(target)],
            covariates=values[:, len(target) :] if features else None,
        ).values
        frame: dict[str, Any] = {"step": np.arange(len(values))}
        if group:
            frame[group] = key
        if times is not None and time is not None:
            frame[time] = times
        for k in range(horizon):
            for index, name in enumerate(target):
                frame[f"{name}+{k + 1}"] = forecast[:, k, index]
        frames.append(pd.DataFrame(frame))
    result = pd.concat(frames, ignore_index=True)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(output, index=False)
    print(f"wrote {output}: {len(result)} rows, forecasts {horizon} step(s) ahead of {target}")
    return output


def model_columns(model: str | Path) -> dict[str, Any]:
    """The column names a model directory was trained on (``columns.json``)."""
    path = Path(model) / COLUMNS_FILE
    if not Path(model).is_dir():
        raise DataError(
            describe(
                "--model",
                "a model directory written by stateline train",
                str(model),
                problem="does not exist.",
            )
        )
    if not path.is_file():
        raise DataError(
            describe(
                "--model",
                f"a directory holding {COLUMNS_FILE} (written by stateline train)",
                str(model),
                problem="has no column names.",
                fix="Train it with stateline train, or pass the columns explicitly.",
            )
        )
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def _parquet_dataset(path: str, group: str | None) -> bool:
    """A folder (of Parquet files), or a Parquet file with --group: read series by series."""
    source = Path(path)
    if source.is_dir():
        if group is None:
            raise DataError(
                describe(
                    "--group",
                    "the column naming each series of the Parquet folder",
                    "no --group",
                    problem="is missing.",
                    fix="Pass --group COLUMN (a folder is read series by series).",
                )
            )
        return True
    return group is not None and source.suffix.lower() in (".parquet", ".pq") and source.is_file()


def _header(path: Path, sep: str) -> set[str]:
    """The column names of a CSV or Parquet file (none when it cannot be read: the table's
    own reader then says why)."""
    try:
        if path.suffix.lower() in (".parquet", ".pq"):  # as load_table reads them
            import pyarrow.parquet as pq

            return set(pq.read_schema(path).names)
        import pandas as pd

        return {str(name) for name in pd.read_csv(path, sep=sep, nrows=0).columns}
    except Exception:  # any unreadable file: load_table names the problem
        return set()


def _source(path: str) -> Path:
    source = Path(path)
    if source.is_dir():
        raise DataError(
            describe(
                "path",
                "a .csv or .parquet file",
                f"the folder {str(source)!r}",
                problem="is a folder.",
                fix="stateline train reads a folder of Parquet files with --group; "
                "predict reads one file.",
            )
        )
    if not source.is_file():
        raise DataError(
            describe(
                "path", "an existing .csv or .parquet file", str(source), problem="does not exist."
            )
        )
    return source
