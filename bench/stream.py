"""Streaming benchmark: one time step for N active streams out of 1,000,000 stored.

Prints one table from one run. Rows: stateline's StreamEngine (StateStore with
1,000,000 streams; N active streams step together in one call), a Keras stateful
model stepped with ``model.predict`` and with ``predict_on_batch`` (the way common
Keras tutorials call a stateful LSTM per time step; Keras holds only the N streams
of its fixed batch, it has no store), and a naive per-stream PyTorch loop (a dict of
(h, c) per stream, one ``nn.LSTM`` call per stream). Columns: stream-steps/s, ratio
to stateline, and the share of the machine's measured matrix-multiply ceiling
reached (the model's FLOPs per stream-step times stream-steps/s over the sgemm
FLOP/s of a large square product measured in the same run). Single-stream step
latency (median, p99) is printed for every approach.

Run: .venv/bin/python bench/stream.py [--hidden 64] [--seconds 1.0] [--stored 1000000]
Keras rows need ``pip install keras`` (KERAS_BACKEND=torch is used by default).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from stateline.nn import ModelConfig, SequenceModel
from stateline.stream import StateStore, StreamEngine

INPUTS = 8
ACTIVE = (1, 64, 1024, 16384, 262144)


def timed_rate(call: Callable[[], None], streams: int, seconds: float) -> float:
    """Stream-steps per second of ``call`` (which steps ``streams`` streams), for ~seconds."""
    call()
    started, calls = time.perf_counter(), 0
    while True:
        call()
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds and calls >= 3:
            return streams * calls / elapsed


def latency(
    call: Callable[[], None], count: int = 2000, budget: float = 3.0
) -> tuple[float, float]:
    samples = []
    started = time.perf_counter()
    for _ in range(count):
        begin = time.perf_counter()
        call()
        samples.append(time.perf_counter() - begin)
        if time.perf_counter() - started > budget and len(samples) >= 20:
            break
    values = np.array(samples) * 1e6
    return float(np.median(values)), float(np.percentile(values, 99))


def sgemm_ceiling() -> float:
    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    a @ b
    started = time.perf_counter()
    for _ in range(3):
        a @ b
    return 3 * 2 * 4096**3 / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description="stateline streaming benchmark")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--stored", type=int, default=1_000_000, help="streams in the store")
    args = parser.parse_args()
    hidden = args.hidden
    flops_per_step = 2 * (INPUTS + hidden) * 4 * hidden + 2 * hidden
    ceiling = sgemm_ceiling()
    rng = np.random.default_rng(0)

    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(inputs=INPUTS, hidden=hidden, outputs=1)).eval()
    store = StateStore(model, capacity=args.stored, initial_slots=args.stored)
    ids = list(range(args.stored))
    for begin in range(0, args.stored, 100_000):
        store.slots(ids[begin : begin + 100_000], create=True)
    engine = StreamEngine(model, store)

    rows: dict[str, dict[int, float]] = {
        "stateline": {},
        "keras predict": {},
        "keras predict_on_batch": {},
        "naive torch loop": {},
    }
    latencies: dict[str, tuple[float, float]] = {}
    for n in ACTIVE:
        active = [int(i) for i in rng.choice(args.stored, size=n, replace=False)]
        x = rng.normal(size=(n, INPUTS)).astype(np.float32)
        rows["stateline"][n] = timed_rate(lambda a=active, v=x: engine.step(a, v), n, args.seconds)
        if n == 1:
            latencies["stateline"] = latency(lambda a=active, v=x: engine.step(a, v))

    naive_states: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    rnn, head = model.stack.rnn, model.head

    def naive(active: list[int], x: np.ndarray) -> None:
        with torch.no_grad():
            for position, stream in enumerate(active):
                state = naive_states.get(stream)
                out, state = rnn(torch.from_numpy(x[position : position + 1, None]), state)
                naive_states[stream] = state
                head(out[:, -1])

    for n in ACTIVE[:4]:
        active = [int(i) for i in rng.choice(args.stored, size=n, replace=False)]
        x = rng.normal(size=(n, INPUTS)).astype(np.float32)
        rows["naive torch loop"][n] = timed_rate(lambda a=active, v=x: naive(a, v), n, args.seconds)
        if n == 1:
            latencies["naive torch loop"] = latency(lambda a=active, v=x: naive(a, v))

    keras_note = keras_rows(rows, latencies, hidden, args.seconds, rng)

    table = Table(
        title=f"One time step, N active of {args.stored:,} stored streams; LSTM "
        f"{INPUTS} inputs, {hidden} hidden; {torch.get_num_threads()} threads; sgemm "
        f"ceiling {ceiling / 1e9:.0f} GFLOP/s"
    )
    table.add_column("approach")
    table.add_column("single step median / p99 (us)", justify="right")
    for n in ACTIVE:
        table.add_column(f"N={n:,} steps/s (x, % ceiling)", justify="right")
    for name, by_n in rows.items():
        cells = []
        for n in ACTIVE:
            rate = by_n.get(n)
            if rate is None:
                cells.append("-")
                continue
            ratio = rows["stateline"][n] / rate
            share = rate * flops_per_step / ceiling
            cells.append(f"{rate:,.0f} ({ratio:.1f}x, {share:.0%})")
        median, p99 = latencies.get(name, (float("nan"), float("nan")))
        table.add_row(name, f"{median:,.0f} / {p99:,.0f}", *cells)
    console = Console(width=220)
    console.print(table)
    console.print(
        "x = stateline's rate / this row's rate at the same N. '-' = not measured "
        "(the naive loop is too slow at that N; Keras rows skip N it cannot hold)."
    )
    if keras_note:
        console.print(keras_note)


def keras_rows(
    rows: dict[str, dict[int, float]],
    latencies: dict[str, tuple[float, float]],
    hidden: int,
    seconds: float,
    rng: np.random.Generator,
) -> str:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        return "Keras rows: keras is not installed (pip install keras)."
    for n in ACTIVE[:4]:
        model = keras.Sequential(
            [
                keras.Input(batch_shape=(n, 1, INPUTS)),
                keras.layers.LSTM(hidden, stateful=True),
                keras.layers.Dense(1),
            ]
        )
        x = rng.normal(size=(n, 1, INPUTS)).astype(np.float32)
        rows["keras predict"][n] = timed_rate(
            lambda m=model, v=x: m.predict(v, batch_size=len(v), verbose=0), n, seconds
        )
        rows["keras predict_on_batch"][n] = timed_rate(
            lambda m=model, v=x: m.predict_on_batch(v), n, seconds
        )
        if n == 1:
            latencies["keras predict"] = latency(
                lambda m=model, v=x: m.predict(v, verbose=0), count=200
            )
            latencies["keras predict_on_batch"] = latency(
                lambda m=model, v=x: m.predict_on_batch(v), count=500
            )
    return (
        f"Keras {keras.__version__} on the {keras.backend.backend()} backend; a stateful "
        "Keras model holds exactly its fixed batch of N streams (no store, no swapping)."
    )


if __name__ == "__main__":
    main()
