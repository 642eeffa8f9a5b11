"""``stateline replay``: send a table into a running server as live streams, at a given rate.

Each stream's rows are its steps; row ``i`` of a stream is sent with ``seq=i``.
Before sending, the client asks the server for each stream's last applied
``seq`` and resumes after it, and it does the same after a lost connection: a
server that restarted from an older snapshot gets exactly the steps it lacks,
and no step is applied twice.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._errors import DataError, StatelineError, describe

_EPILOG = """examples:
  stateline replay temps.csv --url http://127.0.0.1:8000 --token s3cret --group city --rate 20
  stateline replay pump.csv --sep ';' --columns Pressure Current Voltage --stream pump-1 \\
      --rate 0   # as fast as the server answers
"""


def replay_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stateline replay",
        description="Send a CSV/Parquet table into a running stateline server as live streams, "
        "one time step of every stream per request, at --rate steps per second.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("path", help="a .csv or .parquet file")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="server address")
    parser.add_argument("--token", help="bearer token (default: $STATELINE_TOKEN)")
    parser.add_argument("--group", help="stream column: one stream per value")
    parser.add_argument("--stream", default="stream", help="stream id when there is no --group")
    parser.add_argument("--time", help="time column (rows are sent in its order)")
    parser.add_argument(
        "--columns",
        nargs="+",
        help="value columns, in the model's input order (default: the model's, from the server)",
    )
    parser.add_argument("--sep", default=",", help="CSV separator (default: ',')")
    parser.add_argument(
        "--rate", type=float, default=10.0, help="time steps per second, 0: no pause (default: 10)"
    )
    parser.add_argument("--start-row", type=int, default=0, help="first row of each stream")
    parser.add_argument("--limit", type=int, help="send at most this many steps per stream")
    parser.add_argument("--restart", action="store_true", help="start every stream afresh")
    parser.add_argument("--retries", type=int, default=30, help="reconnection attempts")
    return parser


def run_replay(argv: Sequence[str]) -> dict[str, int]:
    """Replay as the flags say; returns the number of steps applied per stream."""
    import httpx

    from ..data import load_table
    from ..serve._wire import STREAM_ID_RULE, valid_stream_id

    args = replay_parser().parse_args(list(argv))
    token = args.token or os.environ.get("STATELINE_TOKEN")
    if not token:
        raise StatelineError(
            describe("--token", "the server's bearer token", "nothing", problem="is missing.")
        )
    if args.rate < 0:
        raise StatelineError(
            describe("--rate", "steps per second >= 0", str(args.rate), problem="is invalid.")
        )
    client = httpx.Client(
        base_url=args.url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0
    )
    columns = args.columns or _server_columns(client)
    table = load_table(args.path, time=args.time, features=columns, group=args.group, sep=args.sep)
    names = [str(g) for g in table.groups] if args.group else [args.stream]
    bad = [name for name in names if not valid_stream_id(name)]
    if bad:  # refused before anything is sent: a refusal half way stopped every stream
        raise StatelineError(
            describe(
                "--group",
                f"stream ids the service takes: {STREAM_ID_RULE}",
                f"{len(bad)} of {len(names)} streams that are not: {bad[:5]!r}",
                problem="names streams the service refuses.",
                fix="Rename those keys in the table (or leave their rows out).",
            )
        )
    values = {name: v for name, v in zip(names, table.features, strict=True)}
    first = max(0, args.start_row)
    last = {
        name: len(v) if args.limit is None else min(len(v), first + args.limit)
        for name, v in values.items()
    }
    sender = _Sender(client, values, first, last, args.restart, args.retries)
    return sender.run(args.rate)


class _Sender:
    def __init__(
        self,
        client: Any,
        values: dict[str, np.ndarray],
        first: int,
        last: dict[str, int],
        restart: bool,
        retries: int,
    ) -> None:
        self.client, self.values, self.first, self.last = client, values, first, last
        self.restart, self.retries = restart, retries
        self.applied = dict.fromkeys(values, 0)
        self.resumed = False

    def run(self, rate: float) -> dict[str, int]:
        from rich.progress import Progress

        position = self._resume()
        total = sum(self.last[n] - self.first for n in self.values)
        with Progress() as progress:
            task = progress.add_task("replaying", total=total)
            progress.update(task, completed=sum(position[n] - self.first for n in self.values))
            pause = 0.0 if rate == 0 else 1.0 / rate
            failures = 0
            next_at = time.perf_counter()
            while any(position[n] < self.last[n] for n in self.values):
                events = [
                    self._event(name, position[name])
                    for name in self.values
                    if position[name] < self.last[name]
                ]
                try:
                    results = self._post(events)
                except (OSError, _ServerError) as error:
                    failures += 1
                    if failures > self.retries:
                        raise StatelineError(
                            f"lost the server after {self.retries} retries: {error}"
                        ) from error
                    time.sleep(min(2.0, 0.2 * failures))
                    position = self._resume()  # ask where each stream is, resend from there
                    continue
                failures = 0
                for event, result in zip(events, results, strict=True):
                    name = event["stream"]
                    if result["status"] in ("ok", "gap", "restarted"):
                        self.applied[name] += 1
                    elif result["status"] == "error":
                        raise DataError(
                            f"the server refused {name} seq {event['seq']}: {result['error']}"
                        )
                    position[name] += 1
                progress.advance(task, len(events))
                next_at += pause
                delay = next_at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
        return self.applied

    def _event(self, name: str, row: int) -> dict[str, Any]:
        event = {"stream": name, "values": self.values[name][row].tolist(), "seq": row}
        if self.restart and row == self.first:  # resent as is after a lost connection
            event["start"] = True
        return event

    def _post(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send the events as one batch of Arrow columns (``POST /v1/columns``)."""
        import httpx

        from ..serve._columns import ColumnBatch
        from ..serve._wire import ARROW, answer_from_arrow, batch_to_arrow

        batch = ColumnBatch.of(
            [event["stream"] for event in events],
            [event["values"] for event in events],
            seq=[event["seq"] for event in events],
            start=[bool(event.get("start", False)) for event in events],
        )
        try:
            response = self.client.post(
                "/v1/columns", content=batch_to_arrow(batch), headers={"Content-Type": ARROW}
            )
        except httpx.TransportError as error:
            raise OSError(str(error)) from error
        if response.status_code >= 500:
            raise _ServerError(f"{response.status_code}: {response.text[:200]}")
        if response.status_code != 200:
            raise StatelineError(f"the server answered {response.status_code}: {response.text}")
        answer = answer_from_arrow(response.content)
        statuses = answer.status_names.tolist()
        return [
            {"status": status, "error": answer.errors.get(row)}
            for row, status in enumerate(statuses)
        ]

    def _resume(self) -> dict[str, int]:
        """The next row of each stream: after the server's last applied seq (or first)."""
        import httpx

        position = {}
        first_call, self.resumed = not self.resumed, True
        for name in self.values:
            if self.restart and first_call:
                position[name] = self.first
                continue
            try:
                response = self.client.get(f"/v1/streams/{name}")
            except httpx.TransportError:
                position[name] = self.first
                continue
            seq = response.json().get("seq") if response.status_code == 200 else None
            position[name] = self.first if seq is None else max(self.first, int(seq) + 1)
        return position


class _ServerError(Exception):
    pass


def _server_columns(client: Any) -> list[str]:
    import httpx

    try:
        health = client.get("/healthz").json()
    except httpx.TransportError as error:
        raise StatelineError(
            f"cannot reach the server: {error}\n  Fix: start it with stateline serve, "
            "or pass the right --url."
        ) from error
    columns = health.get("columns")
    if not columns:
        raise StatelineError(
            describe(
                "--columns",
                "the value columns to send (the server's model has no column names)",
                "nothing",
                problem="is missing.",
            )
        )
    return list(columns)
