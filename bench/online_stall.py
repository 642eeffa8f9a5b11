"""How long an online update makes live steps wait: the lock held while carries are recomputed.

After an update swaps new weights in, ``carry="recompute"`` runs the new model over every
buffered stream. Stateline 0.1 did that in one hold of the lock; it now holds it for a few
streams at a time (about ``RECOMPUTE_HOLD`` seconds each), letting steps in between. This bench
fills ``--streams`` streams' buffers (``--buffer`` steps each, a 64-unit LSTM of one input),
then runs one update while another thread steps one stream at a time, as a served client
would, and records how long each of those steps took (waiting for the lock included). Both
ways run in the same process on the same learner state: "one hold" is the same recompute
in one hold of the lock, 4,096 streams at a time, which is what 0.1 did.

Torch runs on one thread (``torch.set_num_threads(1)``), as next to a server on 2 cores. The
stepping loop is bounded: it stops when the update ends, or after ``--seconds``.

Run: .venv/bin/python bench/online_stall.py [--streams 20000] [--buffer 256]
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from stateline.nn import ModelConfig, SequenceModel
from stateline.online import OnlineConfig, OnlineLearner
from stateline.stream import StateStore, StreamEngine


def filled_learner(streams: int, buffer: int) -> OnlineLearner:
    """A learner whose ``streams`` streams each hold ``buffer`` buffered steps."""
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(inputs=1, hidden=64)).eval()
    store = StateStore(model, initial_slots=streams)
    learner = OnlineLearner(
        StreamEngine(model, store),
        OnlineConfig(buffer=buffer, min_steps=8, lanes=32, chunk=32, epochs=1),
    )
    names = [f"s{i}" for i in range(streams)]
    rng = np.random.default_rng(0)
    for t in range(buffer):
        values = np.sin(t / 9 + np.arange(streams) / 50)[:, None] + 0.05 * rng.normal(
            size=(streams, 1)
        )
        learner.step(names, values.astype(np.float32), seq=np.full(streams, t))
    return learner


def waits_during_update(learner: OnlineLearner, one_hold: bool, seconds: float) -> dict[str, Any]:
    """Step stream s0 in a loop while one update runs; every step's wall time."""
    waits: list[float] = []
    done = threading.Event()
    seq = int(learner.store.last_seq[learner.store.slot_of("s0")]) + 1

    def held_throughout(slots: Any) -> tuple[int, float]:
        """0.1's recompute: every stream in one hold, 4,096 at a time."""
        steps = learner.config.recompute_steps or learner.config.buffer
        with learner.lock:
            return sum(
                learner._recompute_now(slots[first : first + 4096], steps)
                for first in range(0, len(slots), 4096)
            ), 0.0

    if one_hold:
        learner._recompute = held_throughout  # type: ignore[method-assign]
    timing: dict[str, float] = {}

    def update() -> None:
        started = time.perf_counter()
        report = learner.update()
        timing["update"] = time.perf_counter() - started
        timing["recomputed"] = 0 if report is None else report.recomputed
        done.set()

    thread = threading.Thread(target=update)
    deadline = time.monotonic() + seconds
    thread.start()
    while not done.is_set() and time.monotonic() < deadline:
        started = time.perf_counter()
        learner.step(["s0"], np.zeros((1, 1), dtype=np.float32), seq=[seq])
        waits.append(time.perf_counter() - started)
        seq += 1
        time.sleep(0.001)  # a client's pace: a step every millisecond or so
    thread.join(timeout=seconds)
    if one_hold:
        del learner._recompute
    array = np.array(waits) * 1000
    return {
        "update_s": timing.get("update", float("nan")),
        "recomputed": int(timing.get("recomputed", 0)),
        "steps": len(array),
        "p50_ms": float(np.percentile(array, 50)) if len(array) else float("nan"),
        "p99_ms": float(np.percentile(array, 99)) if len(array) else float("nan"),
        "max_ms": float(array.max()) if len(array) else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=20_000)
    parser.add_argument("--buffer", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    console = Console(width=100)
    try:
        with console.status(f"filling {args.streams:,} buffers of {args.buffer} steps"):
            learner = filled_learner(args.streams, args.buffer)
        rows = {}
        for name, one_hold in (("one hold (0.1)", True), ("a few at a time", False)):
            with console.status(f"update, {name}"):
                rows[name] = waits_during_update(learner, one_hold, args.seconds)
    finally:
        torch.set_num_threads(threads)
    table = Table(title=f"A live stream's steps during one update ({args.streams:,} streams)")
    for column in ("recompute", "update s", "streams recomputed", "steps taken",
                   "p50 ms", "p99 ms", "max ms"):  # fmt: skip
        table.add_column(column, justify="right")
    for name, row in rows.items():
        table.add_row(
            name,
            f"{row['update_s']:.2f}",
            f"{row['recomputed']:,}",
            f"{row['steps']:,}",
            f"{row['p50_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
            f"{row['max_ms']:.1f}",
        )
    console.print(table)
    old, new = rows["one hold (0.1)"], rows["a few at a time"]
    console.print(
        f"longest wait: {new['max_ms']:.1f} ms against {old['max_ms']:.1f} ms "
        f"({old['max_ms'] / max(new['max_ms'], 1e-9):.0f}x shorter); the update took "
        f"{new['update_s'] / old['update_s']:.2f}x as long"
    )


if __name__ == "__main__":
    main()
