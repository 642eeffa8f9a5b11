"""Load test of `stateline serve` on loopback: throughput, latency, and no step lost or doubled.

A small forecaster is trained on the bundled temperatures and served by a real
`stateline serve` process. Concurrent clients (threads, each with its own HTTP
connection and its own streams) send steps with sequence numbers for a fixed
time, in two modes: one step of one stream per request, and batches of many
streams per request. About 5 % of requests are sent twice (a client retrying
after a lost answer). At the end every stream's last applied seq is read back
and the server's counters are checked: every step applied exactly once, every
repeat answered as a duplicate. The peer measured in the same run is the same
service called in-process (no HTTP), which bounds what HTTP can reach.

Run: .venv/bin/python bench/serve.py [--clients 4] [--seconds 5]
The clients share the machine's cores with the server (2 here): the numbers
are a lower bound of what a server gets from remote clients.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from stateline.cli import main
from stateline.data import hourly_temperatures
from stateline.serve import Event, ServeConfig, StreamService

TOKEN = "bench-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


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


class Client(threading.Thread):
    def __init__(self, url: str, name: str, streams: int, batch: bool, until: float) -> None:
        super().__init__(daemon=True)
        self.url, self.batch, self.until = url, batch, until
        self.streams = [f"{name}-{i}" for i in range(streams)]
        self.next_seq = dict.fromkeys(self.streams, 0)
        self.latencies: list[float] = []
        self.requests = self.steps = self.repeats = self.duplicates = 0
        self.rng = np.random.default_rng(abs(hash(name)) % 2**32)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, headers=AUTH, timeout=30) as http:
            turn = 0
            while time.perf_counter() < self.until:
                if self.batch:
                    events = [self._event(s) for s in self.streams]
                    path, body = "/v1/steps", {"events": events}
                else:
                    stream = self.streams[turn % len(self.streams)]
                    turn += 1
                    event = self._event(stream)
                    path = f"/v1/streams/{stream}/steps"
                    body = {k: v for k, v in event.items() if k != "stream"}
                    events = [event]
                sends = 2 if self.rng.random() < 0.05 else 1
                for attempt in range(sends):
                    started = time.perf_counter()
                    response = http.post(path, json=body)
                    self.latencies.append(time.perf_counter() - started)
                    response.raise_for_status()
                    self.requests += 1
                    answers = response.json()["results"] if self.batch else [response.json()]
                    statuses = [a["status"] for a in answers]
                    if attempt == 0:
                        assert statuses == ["ok"] * len(events), statuses
                        self.steps += len(events)
                    else:
                        assert statuses == ["duplicate"] * len(events), statuses
                        self.repeats += len(events)
                        self.duplicates += len(events)
                for event in events:
                    self.next_seq[event["stream"]] += 1

    def _event(self, stream: str) -> dict[str, object]:
        value = float(50 + 10 * self.rng.standard_normal())
        return {"stream": stream, "values": [value], "seq": self.next_seq[stream]}


def load(url: str, clients: int, streams: int, batch: bool, seconds: float) -> dict[str, float]:
    until = time.perf_counter() + seconds
    workers = [
        Client(url, f"{'b' if batch else 's'}{i}", streams, batch, until) for i in range(clients)
    ]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    latencies = np.concatenate([w.latencies for w in workers]) * 1e3
    lost = doubled = 0
    for worker in workers:
        for stream, sent in worker.next_seq.items():
            held = httpx.get(f"{url}/v1/streams/{stream}", headers=AUTH).json()["seq"]
            lost += max(0, (sent - 1) - held)
            doubled += max(0, held - (sent - 1))
    return {
        "requests": sum(w.requests for w in workers),
        "steps": sum(w.steps for w in workers),
        "repeats": sum(w.repeats for w in workers),
        "duplicates": sum(w.duplicates for w in workers),
        "seconds": elapsed,
        "p50": float(np.percentile(latencies, 50)),
        "p99": float(np.percentile(latencies, 99)),
        "lost": lost,
        "doubled": doubled,
    }


def in_process(model: Path, streams: int, seconds: float) -> float:
    """Steps per second of StreamService.step called directly with batches of ``streams``."""
    config = ServeConfig(model=str(model), token=TOKEN, snapshot_dir=tempfile.mkdtemp())
    service = StreamService(config)
    names = [f"p{i}" for i in range(streams)]
    rng = np.random.default_rng(0)
    seq, steps = 0, 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        events = [Event(n, [float(50 + 10 * rng.standard_normal())], seq) for n in names]
        service.step(events)
        seq += 1
        steps += len(events)
    return steps / (time.perf_counter() - started)


def counter(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} ([\d.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def main_bench() -> None:
    parser = argparse.ArgumentParser(description="load test of stateline serve on loopback")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=64, help="streams per batch request")
    parser.add_argument("--threads", type=int, help="the server's --threads (default: its own)")
    args = parser.parse_args()
    console = Console(width=140)
    folder = Path(tempfile.mkdtemp(prefix="stateline-bench-serve-"))
    model = train_model(folder)
    port = free_port()
    script = shutil.which("stateline", path=str(Path(sys.executable).parent))
    server = subprocess.Popen(
        [str(script), "serve", "--model", str(model), "--port", str(port),
         "--snapshot-dir", str(folder / "state"), "--reference", "50", "--warmup", "5",
         *(["--threads", str(args.threads)] if args.threads else [])],
        env={**os.environ, "STATELINE_TOKEN": TOKEN},
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                httpx.get(url + "/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        single = load(url, args.clients, 8, False, args.seconds)
        batched = load(url, args.clients, args.batch, True, args.seconds)
        metrics = httpx.get(url + "/metrics", headers=AUTH).text
    finally:
        server.terminate()
        server.wait(timeout=60)
    peer = in_process(model, args.batch * args.clients, args.seconds)

    table = Table(title=f"stateline serve on loopback, {args.clients} concurrent clients, "
                  f"{args.seconds:.0f} s per mode")  # fmt: skip
    for column in ("mode", "requests/s", "steps/s", "p50 ms", "p99 ms", "steps sent",
                   "repeats (dup. answers)", "lost", "applied twice", "vs in-process"):  # fmt: skip
        table.add_column(column, justify="left" if column == "mode" else "right")
    for name, row in (
        ("1 step per request", single),
        (f"{args.batch} streams per request", batched),
    ):
        rate = row["steps"] / row["seconds"]
        table.add_row(
            name,
            f"{row['requests'] / row['seconds']:,.0f}",
            f"{rate:,.0f}",
            f"{row['p50']:.2f}",
            f"{row['p99']:.2f}",
            f"{row['steps']:,}",
            f"{row['repeats']:,} ({row['duplicates']:,})",
            str(row["lost"]),
            str(row["doubled"]),
            f"{rate / peer:.3f}x",
        )
    table.add_row(
        "peer: StreamService.step in-process", "", f"{peer:,.0f}", "", "", "", "", "", "", "1x"
    )
    console.print(table)
    applied = counter(metrics, "stateline_steps_total", '{status="ok"}')
    duplicates = counter(metrics, "stateline_steps_total", '{status="duplicate"}')
    sent = single["steps"] + batched["steps"]
    repeats = single["repeats"] + batched["repeats"]
    console.print(
        f"server counters: {applied:,.0f} steps applied for {sent:,} sent, "
        f"{duplicates:,.0f} duplicates for {repeats:,} repeats -> "
        + ("exactly once" if applied == sent and duplicates == repeats else "MISMATCH")
    )


if __name__ == "__main__":
    main_bench()
