"""Load test of `stateline serve` on loopback: throughput, latency, and no step lost or doubled.

A small forecaster is trained on the bundled temperatures and served by a real
`stateline serve` process. Concurrent clients (each with its own connection
and its own streams) send steps with sequence numbers for a fixed time, in six
modes, each on fresh streams:

- one step of one stream per request (``POST /v1/streams/{id}/steps``), in
  two rows: a closed loop (each client sends its next request as soon as its
  answer is in: the machine at saturation, latency mostly queueing), then
  paced (``--single-rate`` requests/s per client on a fixed schedule, latency
  counted from each request's scheduled send, as wrk2 does, so a stall is not
  hidden by clients that slow down with it), on the standard library's
  ``http.client`` (httpx cost each client about 1 ms of CPU per request, taken
  from the cores the server shares);
- per-event JSON batches of ``--batch`` streams (``POST /v1/steps``);
- JSON columns of ``--columns-batch`` streams (``POST /v1/columns``);
- Arrow columns of the same size (``POST /v1/columns``, Arrow IPC both ways),
  and of ``--large-batch`` streams (what a gateway that gathers events sends);
- Arrow columns over one WebSocket per client (binary frames on ``/v1/ws``,
  without permessage-deflate: on loopback it only costs CPU).

Every client is a process of its own (``--client-threads``: threads of this
process, which share one GIL, as this bench ran them before; with threads the
4 Arrow clients of 1,024 rows got 140,000 steps/s from the server where
processes got 165,000, one run each).
About 5 % of requests are sent twice (a client retrying after a lost answer)
and must be answered ``duplicate`` row for row; first sends must be answered
``ok``; only first sends count as steps. Latency is what a Python client waits
per request: encoding, the round trip and decoding the answer. At the end
every stream's last applied seq is read back (``GET /v1/streams``, 1,000 rows
a page) and the server's counters are checked: every step applied exactly
once, every repeat answered as a duplicate.

The peers, measured in the same run on one service with the server stopped,
in interleaved slices so that their noise is comparable: the bare engine
(``StreamEngine.step``, already scaled values), the service's per-event API
(``StreamService.step``) and its columns (``StreamService.step_columns``),
``--columns-batch`` streams per call, with the compute threads the server had.
Their latency is per call (building the call's arguments and the call).

Run: .venv/bin/python bench/serve.py [--clients 4] [--seconds 5] [--threads N] [--modes ...]
[--single-rate R] [--client-threads] [--skip-peers]
The clients share the machine's cores with the server (2 here): the numbers
are a lower bound of what a server gets from remote clients. The single-step
goal (p99 < 5 ms) is judged on the paced row, at the load it names; the
closed-loop row's p99 is printed next to it.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import math
import multiprocessing
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table
from websockets.sync.client import connect

from stateline.anomaly import DetectorConfig
from stateline.cli import main
from stateline.cli._serve import limit_threads
from stateline.data import hourly_temperatures
from stateline.serve import ColumnBatch, ColumnClient, Event, ServeConfig, StreamService
from stateline.serve._wire import answer_from_arrow, batch_to_arrow
from stateline.stream._grouping import id_array

TOKEN = "bench-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SINGLE_HEADERS = {**AUTH, "Content-Type": "application/json"}
MAX_BODY = 4 * 1024 * 1024  # the server's --max-body-bytes: room for 1,024-stream JSON batches
REFERENCE, WARMUP = 50, 5  # the detector's settings, in the server and in-process
PACED = "single-paced"
"""The single mode's second row: clients on a fixed schedule (``--single-rate``)."""
FLOOR = "single-floor"
"""The paced row's clients against bench/bare_asgi.py (no model): the floor of the machine."""
SINGLE_ROWS = ("single", PACED, FLOOR)
SINGLE_RATE = 100.0
"""Requests/s per client of the paced row by default."""

# mode -> (stream name prefix, label); in the order of the table
NETWORK = {
    "events": ("b", "HTTP per-event JSON batches (/v1/steps)"),
    "json": ("j", "HTTP JSON columns (/v1/columns)"),
    "arrow": ("a", "HTTP Arrow columns (/v1/columns)"),
    "arrow-large": ("A", "HTTP Arrow columns, larger requests"),
    "ws": ("w", "WebSocket Arrow columns (/v1/ws)"),
    "single": ("s", "HTTP 1 step per request"),
}
LOCAL = {
    "engine": ("e", "in-process engine (StreamEngine.step)"),
    "service": ("v", "in-process service, per event (.step)"),
    "columns": ("c", "in-process service, columns (.step_columns)"),
}


def train_model(folder: Path) -> Path:
    frame = hourly_temperatures().groupby("city").head(2000)
    data = folder / "temps.csv"
    frame.to_csv(data, index=False)
    model = folder / "model"
    argv = ["train", str(data), "--time", "time", "--group", "city", "--target", "temp"]
    argv += ["--hidden", "64", "--epochs", "2", "--no-progress", "--output", str(model)]
    assert main(argv) == 0
    return model


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def expect(statuses: Sequence[str], wanted: str, count: int, errors: Any = None) -> None:
    """Every row answered ``wanted`` (else AssertionError saying what came back)."""
    names = np.asarray(statuses, dtype=object)
    if len(names) != count or not (names == wanted).all():
        seen = dict(Counter(names.tolist()))
        detail = "" if not errors else f"; first error: {str(next(iter(errors.values())))[:200]}"
        raise AssertionError(f"expected {count} x {wanted!r}, got {seen}{detail}")


class Client:
    """One client: its own connection and streams; steps all of them (or one) per request.

    Closed loop (``rate`` None): the next request goes as soon as the answer to
    the last one is in, so at saturation latency is mostly queueing. Paced
    (``rate`` requests/s): request ``i`` is due at ``start + i / rate`` and its
    latency counts from then, not from when it could be sent (as wrk2 measures:
    a stalled server does not slow the clients down and hide its own stall).
    A client runs in a thread (:meth:`run`) or in a process of its own
    (:func:`client_process`: no GIL shared with the other clients).
    """

    def __init__(
        self, url: str, mode: str, name: str, streams: int, until: float, rate: float | None = None
    ) -> None:
        self.url, self.mode, self.until, self.rate = url, mode, until, rate
        self.streams = [f"{name}-{i}" for i in range(streams)]
        self.next_seq = np.zeros(streams, dtype=np.int64)
        self.latencies: list[float] = []
        self.requests = self.steps = self.repeats = self.duplicates = 0
        self.failure: str | None = None
        self.rng = np.random.default_rng(abs(hash(name)) % 2**32)
        self.started = self.ended = 0.0

    def run(self) -> None:
        self.started = time.perf_counter()
        try:
            if self.mode == "ws":
                url = self.url.replace("http://", "ws://") + "/v1/ws"
                with connect(
                    url, additional_headers=AUTH, compression=None, max_size=2**26, open_timeout=30
                ) as ws:
                    self._loop(lambda batch: self._websocket(ws, batch))
            elif self.mode in ("json", "arrow", "arrow-large"):
                with ColumnClient(self.url, TOKEN, binary=self.mode != "json") as client:
                    self._loop(lambda batch: self._columns(client, batch))
            elif self.mode == "single":
                host, port = self.url.removeprefix("http://").split(":")
                connection = http.client.HTTPConnection(host, int(port), timeout=30)
                try:
                    self._loop(lambda request: self._single(connection, request))
                finally:
                    connection.close()
            else:
                with httpx.Client(base_url=self.url, headers=AUTH, timeout=30) as session:
                    self._loop(lambda request: self._events(session, request))
        except Exception as error:  # reported in the table; the run then exits non-zero
            self.failure = f"{type(error).__name__}: {str(error)[:300]}"
        self.ended = time.perf_counter()

    def _loop(self, send: Callable[[Any], tuple[Sequence[str], Any]]) -> None:
        turn = 0
        due = time.perf_counter()
        interval = None if self.rate is None else 1.0 / self.rate
        while time.perf_counter() < self.until:
            if self.mode == "single":
                rows = np.array([turn % len(self.streams)])
                turn += 1
            else:
                rows = np.arange(len(self.streams))
            request = self._request(rows)
            sends = 2 if self.rng.random() < 0.05 else 1
            for attempt in range(sends):
                if interval is not None:  # paced: wait for the request's slot
                    pause = due - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
                    started = due
                    due += interval
                else:
                    started = time.perf_counter()
                statuses, errors = send(request)
                self.latencies.append(time.perf_counter() - started)
                self.requests += 1
                if attempt == 0:
                    expect(statuses, "ok", len(rows), errors)
                    self.steps += len(rows)
                else:
                    expect(statuses, "duplicate", len(rows), errors)
                    self.repeats += len(rows)
                    self.duplicates += len(rows)
            self.next_seq[rows] += 1

    def _request(self, rows: np.ndarray) -> Any:
        values = 50 + 10 * self.rng.standard_normal((len(rows), 1))
        seq = self.next_seq[rows]
        if self.mode in ("json", "arrow", "arrow-large", "ws"):
            return ColumnBatch.of([self.streams[r] for r in rows], values, seq=seq)
        events = [
            {"stream": self.streams[r], "values": [float(v)], "seq": int(s)}
            for r, v, s in zip(rows.tolist(), values[:, 0].tolist(), seq.tolist(), strict=True)
        ]
        if self.mode == "single":
            event = events[0]
            body = {k: v for k, v in event.items() if k != "stream"}
            return f"/v1/streams/{event['stream']}/steps", body
        return "/v1/steps", {"events": events}

    def _events(self, session: httpx.Client, request: tuple[str, Any]) -> tuple[list[str], Any]:
        path, body = request
        response = session.post(path, json=body)
        response.raise_for_status()
        answers = response.json()["results"]
        errors = {i: a["error"] for i, a in enumerate(answers) if a.get("error")}
        return [a["status"] for a in answers], errors

    def _single(
        self, connection: http.client.HTTPConnection, request: tuple[str, Any]
    ) -> tuple[list[str], Any]:
        path, body = request
        connection.request("POST", path, json.dumps(body), SINGLE_HEADERS)
        response = connection.getresponse()
        text = response.read()
        if response.status != 200:
            raise RuntimeError(f"{path} answered {response.status}: {text[:300]!r}")
        answer = json.loads(text)
        return [answer["status"]], {0: answer["error"]} if answer.get("error") else {}

    def _columns(self, client: ColumnClient, batch: ColumnBatch) -> tuple[Any, Any]:
        answer = client.send(batch)
        return answer.status_names, answer.errors

    def _websocket(self, ws: Any, batch: ColumnBatch) -> tuple[Any, Any]:
        ws.send(batch_to_arrow(batch))
        reply = ws.recv(timeout=30)
        if isinstance(reply, str):
            raise RuntimeError(f"server answered a text frame: {reply[:300]}")
        answer = answer_from_arrow(reply)
        return answer.status_names, answer.errors


def held_seqs(url: str) -> dict[str, int]:
    """Every held stream's last applied seq (-1: none), read page by page from /v1/streams."""
    held: dict[str, int] = {}
    offset: int | None = 0
    with httpx.Client(base_url=url, headers=AUTH, timeout=30) as http:
        while offset is not None:
            response = http.get("/v1/streams", params={"limit": 1000, "offset": offset})
            response.raise_for_status()
            page = response.json()
            for row in page["streams"]:
                held[row["stream"]] = -1 if row["seq"] is None else int(row["seq"])
            offset = page["next"]
    return held


def count_back(held: dict[str, int], worker: Client) -> tuple[int, int]:
    """(lost, doubled) steps of one client's streams, from each stream's last applied seq."""
    lost = doubled = 0
    for stream, sent in zip(worker.streams, worker.next_seq.tolist(), strict=True):
        seq = held.get(stream, -1)
        lost += max(0, (sent - 1) - seq)
        doubled += max(0, seq - (sent - 1))
    return lost, doubled


def client_process(
    url: str, mode: str, name: str, streams: int, seconds: float, rate: float | None, go: Any,
    results: Any,
) -> None:  # fmt: skip
    """A client in a process of its own: waits for ``go``, runs, sends back what it saw."""
    go.wait()
    worker = Client(url, mode, name, streams, time.perf_counter() + seconds, rate)
    worker.run()
    results.put(
        {
            "name": name,
            "streams": worker.streams,
            "next_seq": worker.next_seq,
            "latencies": np.asarray(worker.latencies),
            "requests": worker.requests,
            "steps": worker.steps,
            "repeats": worker.repeats,
            "duplicates": worker.duplicates,
            "failure": worker.failure,
            "started": worker.started,
            "ended": worker.ended,
        }
    )


def run_clients(
    url: str, mode: str, prefix: str, clients: int, streams: int, seconds: float,
    rate: float | None, processes: bool,
) -> list[Client]:  # fmt: skip
    """Run the clients for ``seconds`` (threads of this process, or processes of their own)."""
    names = [f"{prefix}{i}" for i in range(clients)]
    # What this process holds (PyTorch, the trained model: ~200,000 objects, inherited by
    # forked clients) out of the cyclic collector's full passes, as the server does: one
    # such pass in a client stalled its requests by tens of ms, which the paced row counts.
    gc.collect()
    gc.freeze()
    try:
        return _run_clients(url, mode, names, streams, seconds, rate, processes)
    finally:
        gc.unfreeze()


def _run_clients(
    url: str, mode: str, names: list[str], streams: int, seconds: float, rate: float | None,
    processes: bool,
) -> list[Client]:  # fmt: skip
    if not processes:
        until = time.perf_counter() + seconds
        workers = [Client(url, mode, name, streams, until, rate) for name in names]
        threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return workers
    # fork: the children start at once (no re-import of PyTorch); they only use httpx
    context = multiprocessing.get_context("fork")
    go, results = context.Event(), context.Queue()
    children = [
        context.Process(
            target=client_process,
            args=(url, mode, name, streams, seconds, rate, go, results),
            daemon=True,
        )
        for name in names
    ]
    for child in children:
        child.start()
    time.sleep(0.5)  # every child waiting on go
    go.set()
    gathered = [results.get(timeout=seconds + 120) for _ in children]
    for child in children:
        child.join(timeout=30)
    workers = []
    for row in sorted(gathered, key=lambda row: row["name"]):
        worker = Client(url, mode, row["name"], streams, 0.0, rate)
        worker.next_seq = row["next_seq"]
        worker.latencies = row["latencies"].tolist()
        for key in ("requests", "steps", "repeats", "duplicates", "failure", "started", "ended"):
            setattr(worker, key, row[key])
        workers.append(worker)
    return workers


def load(
    url: str, mode: str, clients: int, streams: int, seconds: float, *,
    rate: float | None = None, processes: bool = False, prefix: str | None = None,
    read_back: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Run the clients of ``mode`` against ``url``; their row (and, with ``read_back``, every
    stream's last seq read back from the server: steps lost or applied twice)."""
    started = time.perf_counter()
    workers = run_clients(
        url, mode, prefix or NETWORK[mode][0], clients, streams, seconds, rate, processes
    )
    elapsed = time.perf_counter() - started
    if processes:  # the clients' own span, without starting the processes
        elapsed = max(w.ended for w in workers) - min(w.started for w in workers)
    latencies = np.concatenate([np.asarray(w.latencies, dtype=float) for w in workers]) * 1e3
    reading = time.perf_counter()
    held = held_seqs(url) if read_back else None
    counts = [count_back(held, worker) if held is not None else (0, 0) for worker in workers]
    read_back_s = time.perf_counter() - reading
    failures = [w.failure for w in workers if w.failure]
    return {
        "requests": sum(w.requests for w in workers),
        "steps": sum(w.steps for w in workers),
        "repeats": sum(w.repeats for w in workers),
        "duplicates": sum(w.duplicates for w in workers),
        "seconds": elapsed,
        "p50": float(np.percentile(latencies, 50)) if len(latencies) else float("nan"),
        "p99": float(np.percentile(latencies, 99)) if len(latencies) else float("nan"),
        "p999": float(np.percentile(latencies, 99.9)) if len(latencies) else float("nan"),
        "max": float(latencies.max()) if len(latencies) else float("nan"),
        "lost": sum(c[0] for c in counts),
        "doubled": sum(c[1] for c in counts),
        "failure": failures[0] if failures else None,
        "read_back": read_back_s,
        "rate": rate,
        "processes": processes,
    }


def in_process(model: Path, streams: int, seconds: float, slice_s: float = 0.25) -> dict[str, Any]:
    """The bare engine, the per-event API and the columns of one service, in interleaved slices.

    Each mode steps its own ``streams`` streams, all of them per call, with
    seq; the values come from a pool made beforehand (original units for the
    service, scaled for the engine). Rate and latency are over the calls.
    """
    config = ServeConfig(
        model=str(model),
        token=TOKEN,
        snapshot_dir=tempfile.mkdtemp(),
        detector=DetectorConfig(reference=REFERENCE, warmup=WARMUP),
    )
    service = StreamService(config)
    gc.collect()
    gc.freeze()  # as `stateline serve` does once loaded (full GC passes stalled calls)
    inputs = service.served.inputs
    rng = np.random.default_rng(0)
    pool = 50 + 10 * rng.standard_normal((16, streams, inputs))
    scaled = service.served.scale(pool).astype(np.float32)
    rows_of = {pool_index: pool[pool_index].tolist() for pool_index in range(len(pool))}

    def engine(names: np.ndarray, turn: int, seq: int) -> Callable[[], None]:
        result = service.engine.step(
            names, scaled[turn % len(pool)], seq=np.full(len(names), seq, dtype=np.int64)
        )
        return lambda: expect(result.status, "ok", len(names), result.errors)

    def per_event(names: np.ndarray, turn: int, seq: int) -> Callable[[], None]:
        rows = rows_of[turn % len(pool)]
        answers = service.step([Event(n, row, seq) for n, row in zip(names, rows, strict=True)])
        errors = {i: a["error"] for i, a in enumerate(answers) if a.get("error")}
        return lambda: expect([a["status"] for a in answers], "ok", len(names), errors)

    def columns(names: np.ndarray, turn: int, seq: int) -> Callable[[], None]:
        batch = ColumnBatch.of(names, pool[turn % len(pool)], seq=np.full(len(names), seq))
        answer = service.step_columns(batch)
        return lambda: expect(answer.status_names, "ok", len(names), answer.errors)

    calls = {"engine": engine, "service": per_event, "columns": columns}
    state = {
        mode: {
            "names": id_array([f"{LOCAL[mode][0]}-{i}" for i in range(streams)]),
            "seq": 0,
            "latencies": [],
            "spent": 0.0,
        }
        for mode in calls
    }
    while min(s["spent"] for s in state.values()) < seconds:
        for mode, call in calls.items():
            mine = state[mode]
            if mine["spent"] >= seconds:
                continue
            slice_end = time.perf_counter() + min(slice_s, seconds - mine["spent"])
            while time.perf_counter() < slice_end:
                started = time.perf_counter()
                check = call(mine["names"], mine["seq"], mine["seq"])
                took = time.perf_counter() - started
                check()  # outside the timing
                mine["latencies"].append(took)
                mine["spent"] += took
                mine["seq"] += 1
    rows = {}
    for mode, mine in state.items():
        latencies = np.asarray(mine["latencies"]) * 1e3
        rows[mode] = {
            "requests": len(latencies),
            "steps": len(latencies) * streams,
            "seconds": mine["spent"],
            "p50": float(np.percentile(latencies, 50)),
            "p99": float(np.percentile(latencies, 99)),
        }
    gc.unfreeze()
    return rows


def counter(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} ([\d.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def start_server(model: Path, folder: Path, threads: int | None) -> tuple[Any, str, Path]:
    """``stateline serve`` of ``model`` as a child process; the process, its URL and its log."""
    script = shutil.which("stateline", path=str(Path(sys.executable).parent))
    port = free_port()
    command = [
        str(script), "serve", "--model", str(model), "--port", str(port),
        "--snapshot-dir", str(folder / "state"), "--reference", str(REFERENCE),
        "--warmup", str(WARMUP), "--max-body-bytes", str(MAX_BODY),
        *(["--threads", str(threads)] if threads else []),
    ]  # fmt: skip
    return start(command, port, folder / "server.log")


def start_bare_server(folder: Path) -> tuple[Any, str, Path]:
    """bench/bare_asgi.py (the floor: HTTP and JSON on uvicorn, no model) as a child process."""
    port = free_port()
    command = [sys.executable, str(Path(__file__).with_name("bare_asgi.py")), str(port)]
    return start(command, port, folder / "bare.log", health="/v1/streams/warm/steps")


def start(
    command: list[str], port: int, log: Path, health: str = "/healthz"
) -> tuple[Any, str, Path]:
    """Start ``command`` (a server on ``port``) and wait until it answers ``health``."""
    server = subprocess.Popen(
        command, env={**os.environ, "STATELINE_TOKEN": TOKEN}, stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if health == "/healthz":
                httpx.get(url + health, timeout=2)
            else:
                httpx.post(url + health, json={"values": [0.0]}, timeout=2)
            return server, url, log
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.2)


def machine_jitter(seconds: float, rate: float = 400.0) -> dict[str, float]:
    """How long a fixed ~0.4 ms pure-Python loop takes, run ``rate`` times a second on a
    schedule in this process, with nothing else running: what the machine itself adds to
    short work (a 2-core VM here, whose slow moments no server can avoid)."""
    took = []
    start_at = time.perf_counter()
    for turn in range(int(seconds * rate)):
        pause = start_at + turn / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        began = time.perf_counter()
        total = 0
        for i in range(5000):
            total += i * i
        took.append(time.perf_counter() - began)
    ms = np.asarray(took) * 1e3
    return {
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "max": float(ms.max()),
    }


def single_label(row: dict[str, Any], clients: int) -> str:
    """The table's label of a single-step row: how its clients ran and at what load."""
    who = "processes" if row["processes"] else "threads"
    if row["rate"]:
        return (
            f"HTTP 1 step per request, paced: {clients} {who} x {row['rate']:g}/s "
            f"({clients * row['rate']:,.0f}/s offered)"
        )
    return f"HTTP 1 step per request, closed loop (saturation), {clients} {who}"


def main_bench() -> None:
    parser = argparse.ArgumentParser(description="load test of stateline serve on loopback")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=64, help="streams per per-event batch")
    parser.add_argument(
        "--columns-batch", type=int, default=1024, help="streams per columns request / call"
    )
    parser.add_argument(
        "--large-batch", type=int, default=4096, help="streams per request of arrow-large"
    )
    parser.add_argument("--threads", type=int, help="the server's --threads (default: its own)")
    parser.add_argument(
        "--modes",
        default=",".join(NETWORK),
        help=f"network modes to run, comma-separated (default: all: {','.join(NETWORK)})",
    )
    parser.add_argument(
        "--single-rate",
        type=float,
        default=SINGLE_RATE,
        help="single mode, second row: requests/s per client on a fixed schedule, latency "
        f"from the scheduled send (default {SINGLE_RATE:g}; 0: closed loop only)",
    )
    parser.add_argument(
        "--client-threads",
        action="store_true",
        help="clients as threads of this process (sharing its GIL), not processes",
    )
    parser.add_argument(
        "--skip-peers", action="store_true", help="skip the in-process rows (engine, service)"
    )
    parser.add_argument(
        "--model", type=Path, help="serve this model directory instead of training one"
    )
    args = parser.parse_args()
    modes = [mode for mode in args.modes.split(",") if mode]
    unknown = sorted(set(modes) - set(NETWORK))
    if unknown:
        parser.error(f"--modes: unknown {unknown}; expected some of {sorted(NETWORK)}")
    console = Console(width=180)
    folder = Path(tempfile.mkdtemp(prefix="stateline-bench-serve-"))
    clock = time.perf_counter()
    model = args.model or train_model(folder)
    phases = {"train": time.perf_counter() - clock}
    server, url, log = start_server(model, folder, args.threads)
    sizes = {"single": 8, "events": args.batch, "arrow-large": args.large_batch}
    network: dict[str, dict[str, Any]] = {}
    processes = not args.client_threads
    try:
        for mode in modes:
            streams = sizes.get(mode, args.columns_batch)
            single = mode == "single"
            network[mode] = load(
                url, mode, args.clients, streams, args.seconds, processes=processes
            )
            if single and args.single_rate > 0:
                network[PACED] = load(
                    url, mode, args.clients, streams, args.seconds, rate=args.single_rate,
                    processes=processes, prefix="p",
                )  # fmt: skip
            for row in network.values():
                phases["read-back"] = phases.get("read-back", 0.0) + row.pop("read_back", 0.0)
        metrics = httpx.get(url + "/metrics", headers=AUTH).text
    finally:
        server.terminate()
        server.wait(timeout=60)
    if PACED in network:  # the floor: the same paced clients, a server with no model
        bare, bare_url, _ = start_bare_server(folder)
        try:
            network[FLOOR] = load(
                bare_url, "single", args.clients, 8, args.seconds, rate=args.single_rate,
                processes=processes, prefix="f", read_back=False,
            )  # fmt: skip
        finally:
            bare.terminate()
            bare.wait(timeout=60)
    jitter = machine_jitter(min(args.seconds, 5.0))
    found = re.search(r"\((\d+) compute thread", log.read_text())
    server_threads = int(found.group(1)) if found else None
    # the peers get the compute threads the server had, with the server stopped
    local_threads = limit_threads(
        server_threads or ServeConfig(model=str(model), threads=args.threads).compute_threads
    )
    clock = time.perf_counter()
    local = {} if args.skip_peers else in_process(model, args.columns_batch, args.seconds)
    phases["in-process"] = time.perf_counter() - clock

    engine_rate = local["engine"]["steps"] / local["engine"]["seconds"] if local else math.nan
    table = Table(
        title=f"stateline serve on loopback, {args.clients} concurrent clients "
        f"({'processes' if processes else 'threads of one process'}), "
        f"{args.seconds:g} s per mode, {os.cpu_count()} cores"
    )
    for column in ("mode", "streams/req.", "requests/s", "steps/s", "p50 ms", "p99 ms",
                   "p99.9 ms", "steps sent", "repeats (dup. answers)", "lost", "applied twice",
                   "vs engine"):  # fmt: skip
        table.add_column(column, justify="left" if column == "mode" else "right")
    for mode, (_, label) in LOCAL.items():
        if mode not in local:
            continue
        row = local[mode]
        rate = row["steps"] / row["seconds"]
        table.add_row(
            label,
            f"{args.columns_batch:,}",
            f"{row['requests'] / row['seconds']:,.0f}",
            f"{rate:,.0f}",
            f"{row['p50']:.2f}",
            f"{row['p99']:.2f}",
            "",
            f"{row['steps']:,}",
            "",
            "",
            "",
            f"{rate / engine_rate:.3f}x",
        )
    shown = [m for mode in NETWORK for m in ((mode, PACED, FLOOR) if mode == "single" else (mode,))]
    for mode in shown:
        if mode not in network:
            continue
        row = network[mode]
        rate = row["steps"] / row["seconds"]
        name = single_label(row, args.clients) if mode in SINGLE_ROWS else NETWORK[mode][1]
        if mode == FLOOR:
            name = "floor: bench/bare_asgi.py (uvicorn, JSON, no model), " + name.split(", ", 1)[1]
        name += " [red](FAILED)[/red]" if row["failure"] else ""
        table.add_row(
            name,
            "1" if mode in SINGLE_ROWS else f"{sizes.get(mode, args.columns_batch):,}",
            f"{row['requests'] / row['seconds']:,.0f}",
            f"{rate:,.0f}",
            f"{row['p50']:.2f}",
            f"{row['p99']:.2f}",
            f"{row['p999']:.2f}",
            f"{row['steps']:,}",
            f"{row['repeats']:,} ({row['duplicates']:,})",
            str(row["lost"]) if mode != FLOOR else "",
            str(row["doubled"]) if mode != FLOOR else "",
            "" if math.isnan(engine_rate) else f"{rate / engine_rate:.3f}x",
        )
    console.print(table)
    given = f"--threads {args.threads}" if args.threads else "no --threads (its default)"
    console.print(
        f"server: `stateline serve` ran with {given}: {server_threads} compute thread(s); "
        f"in-process rows: {local_threads} compute thread(s), the server stopped"
    )
    console.print(
        "wall time: " + ", ".join(f"{name} {spent:.0f} s" for name, spent in phases.items())
    )
    failed = False
    for mode, row in network.items():
        if row["failure"]:
            failed = True
            console.print(f"[red]FAILED[/red] {mode}: {row['failure']}", markup=True)
        if row["lost"] or row["doubled"]:
            failed = True

    def verdict(met: bool) -> str:
        return "met" if met else "NOT met"

    if local:
        service_ratio = local["columns"]["steps"] / local["columns"]["seconds"] / engine_rate
        console.print(
            f"in-process service columns / engine: {service_ratio:.3f} (goal >= 0.5): "
            f"{verdict(service_ratio >= 0.5)}"
        )
    for mode in ("arrow", "arrow-large"):
        if mode in network:
            rate = network[mode]["steps"] / network[mode]["seconds"]
            console.print(
                f"HTTP Arrow columns, {sizes.get(mode, args.columns_batch):,} streams per request: "
                f"{rate:,.0f} steps/s (goal >= 200,000): {verdict(rate >= 200_000)}"
            )
    # The goal (p99 < 5 ms) is judged on the paced row, at the load it names; the closed loop
    # (every client sending as fast as answers come: the machine at 100 % CPU, latency mostly
    # queueing) is printed with the same bar, never left out.
    for mode, judged in ((PACED, "goal judged here"), ("single", "not the judged row")):
        if mode not in network:
            continue
        row = network[mode]
        achieved = row["requests"] / row["seconds"]
        load_text = (
            f"offered {args.clients} x {row['rate']:g} = {args.clients * row['rate']:,.0f} "
            f"requests/s on a fixed schedule, {achieved:,.0f}/s achieved, latency from each "
            "request's scheduled send"
            if row["rate"]
            else f"closed loop at saturation, {achieved:,.0f} requests/s achieved"
        )
        who = "processes" if row["processes"] else "threads of one process"
        console.print(
            f"1 step per request p99 ({load_text}; {args.clients} client {who}): "
            f"{row['p99']:.2f} ms (goal < 5 ms, {judged}): {verdict(row['p99'] < 5)}"
        )
    if FLOOR in network:
        floor = network[FLOOR]
        console.print(
            f"the floor, the paced clients against bench/bare_asgi.py (no model): p50 "
            f"{floor['p50']:.2f} ms, p99 {floor['p99']:.2f} ms, max {floor['max']:.2f} ms"
        )
    console.print(
        f"this machine alone: a ~0.4 ms Python loop, 400 times a second on a schedule, took "
        f"p50 {jitter['p50']:.2f} ms, p99 {jitter['p99']:.2f} ms, max {jitter['max']:.2f} ms"
    )
    applied = counter(metrics, "stateline_steps_total", '{status="ok"}')
    duplicates = counter(metrics, "stateline_steps_total", '{status="duplicate"}')
    served = [row for mode, row in network.items() if mode != FLOOR]
    sent = sum(row["steps"] for row in served)
    repeats = sum(row["repeats"] for row in served)
    once = applied == sent and duplicates == repeats
    console.print(
        f"server counters: {applied:,.0f} steps applied for {sent:,} sent, "
        f"{duplicates:,.0f} duplicates for {repeats:,} repeats -> "
        + ("exactly once" if once else "MISMATCH")
    )
    if failed or not once:
        sys.exit(1)


if __name__ == "__main__":
    main_bench()
