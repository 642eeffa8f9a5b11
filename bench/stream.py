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

A second table measures the share of the ceiling by state size (hidden 64, 256,
512): stateline against one fused ``nn.LSTM`` step over carries that are already
one batch tensor (no store, no gather/scatter, no bookkeeping).

With ``--device cuda`` (or ``--device cpu`` for the same table on the CPU), a
table of the engine on a store on that device against its plain peers over the
same slots: a bare ``index_select`` gather -> fused ``nn.LSTM`` step (cuDNN on
a GPU) -> ``index_copy_`` scatter, and the fused step on carries already in one
batch tensor; plus one stream's step latency there. The goal on a GPU: the
engine at N >= 16,384 at least half of the plain gather/step/scatter rate.

Run: .venv/bin/python bench/stream.py [--hidden 64] [--sizes 64,256,512] [--seconds 1.0]
     [--stored 1000000] [--device cuda] [--only-device]
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
SIZE_ACTIVE = (1024, 16384, 262144)


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
    """FLOP/s of a 4096 x 4096 float32 product: the best of five, so shares are not flattered."""
    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    a @ b
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * 4096**3 / best


def lstm_flops(hidden: int) -> int:
    """Multiply-add FLOPs of one LSTM step plus a one-output head, per stream."""
    return 2 * (INPUTS + hidden) * 4 * hidden + 2 * hidden


def filled_engine(hidden: int, stored: int) -> tuple[SequenceModel, StreamEngine]:
    """A model and an engine whose store already holds ``stored`` streams (ids 0..stored-1)."""
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(inputs=INPUTS, hidden=hidden, outputs=1)).eval()
    store = StateStore(model, capacity=stored, initial_slots=stored)
    ids = list(range(stored))
    for begin in range(0, stored, 100_000):
        store.slots(ids[begin : begin + 100_000], create=True)
    return model, StreamEngine(model, store)


def state_size_table(
    sizes: list[int], stored: int, seconds: float, ceiling: float, rng: np.random.Generator
) -> Table:
    """stateline vs one fused nn.LSTM step on carries already batched, per hidden size."""
    table = Table(
        title=f"Share of the sgemm ceiling ({ceiling / 1e9:.0f} GFLOP/s) by state size: "
        f"N active of {stored:,} stored; goal >= 60 % at N >= 1024"
    )
    table.add_column("hidden")
    table.add_column("approach")
    for n in SIZE_ACTIVE:
        table.add_column(f"N={n:,} steps/s (% ceiling)", justify="right")
    for hidden in sizes:
        ours, peer = size_rows(hidden, stored, seconds, ceiling, rng)
        table.add_row(str(hidden), "stateline (store, gather/scatter)", *ours)
        table.add_row("", "nn.LSTM step, carries pre-batched", *peer)
    return table


def size_rows(
    hidden: int, stored: int, seconds: float, ceiling: float, rng: np.random.Generator
) -> tuple[list[str], list[str]]:
    model, engine = filled_engine(hidden, stored)
    ours, peer = [], []
    for n in SIZE_ACTIVE:
        active = [int(i) for i in rng.choice(stored, size=n, replace=False)]
        x = rng.normal(size=(n, INPUTS)).astype(np.float32)
        rate = timed_rate(lambda a=active, v=x: engine.step(a, v), n, seconds)
        ours.append(f"{rate:,.0f} ({rate * lstm_flops(hidden) / ceiling:.0%})")
        carry = model.initial_carry(n)
        xs = torch.from_numpy(x)

        def bare(c: tuple[torch.Tensor, ...] = carry, v: torch.Tensor = xs) -> None:
            with torch.no_grad():
                model.step(c, v)

        try:
            rate = timed_rate(bare, n, seconds)
        except RuntimeError as error:  # oneDNN refuses gate buffers of 2 GiB and more
            peer.append(f"fails: {str(error)[:40]}")
            continue
        peer.append(f"{rate:,.0f} ({rate * lstm_flops(hidden) / ceiling:.0%})")
    return ours, peer


def main() -> None:
    parser = argparse.ArgumentParser(description="stateline streaming benchmark")
    parser.add_argument("--hidden", type=int, default=64, help="hidden size of the main table")
    parser.add_argument(
        "--sizes",
        default="64,256,512",
        help="hidden sizes of the state-size table (comma-separated; empty to skip)",
    )
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--stored", type=int, default=1_000_000, help="streams in the store")
    parser.add_argument("--device", help="also measure a store on this device against its peers")
    parser.add_argument("--only-device", action="store_true", help="print only the --device table")
    args = parser.parse_args()
    if args.device:
        Console(width=220).print(
            device_table(torch.device(args.device), args.hidden, args.stored, args.seconds)
        )
        if args.only_device:
            return
    hidden = args.hidden
    flops_per_step = lstm_flops(hidden)
    ceiling = sgemm_ceiling()
    rng = np.random.default_rng(0)
    model, engine = filled_engine(hidden, args.stored)

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
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    if sizes:
        del model, engine, naive_states
        console.print(state_size_table(sizes, args.stored, args.seconds, ceiling, rng))
        console.print(
            "The peer row steps N carries that already sit in one batch tensor (no store, "
            "no gather/scatter, no per-stream bookkeeping: the least work any engine must do)."
        )


DEVICE_ACTIVE = (16_384, 65_536, 262_144, 1_000_000)


def device_table(device: torch.device, hidden: int, stored: int, seconds: float) -> Table:
    """The engine on a store on ``device`` against bare torch over the same slots."""
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(inputs=INPUTS, hidden=hidden, outputs=1)).eval().to(device)
    store = StateStore(model, capacity=stored, initial_slots=stored)
    ids = np.arange(stored)
    for begin in range(0, stored, 100_000):
        store.slots(ids[begin : begin + 100_000], create=True)
    engine = StreamEngine(model, store)
    rng = np.random.default_rng(0)

    def synced(call: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            call()
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        return run

    rows: dict[str, list[str]] = {
        "stateline StreamEngine.step (host ids and values in, numpy out)": [],
        "plain index_select -> fused nn.LSTM step -> index_copy_, same slots": [],
        "fused nn.LSTM step, carries pre-batched": [],
        "engine / plain gather-step-scatter": [],
    }
    rnn = model.stack.rnn
    for n in (n for n in DEVICE_ACTIVE if n <= stored):
        slots = np.sort(rng.choice(stored, size=n, replace=False))
        x = rng.normal(size=(n, INPUTS)).astype(np.float32)
        ours = timed_rate(synced(lambda s=slots, v=x: engine.step(s, v)), n, seconds)
        index = torch.as_tensor(slots, device=device)
        xs = torch.as_tensor(x, device=device)[:, None]
        parts = store.carry_tensors()

        def plain(
            i: torch.Tensor = index, v: torch.Tensor = xs, parts: list[torch.Tensor] = parts
        ) -> None:
            with torch.no_grad():
                h, c = (part.index_select(1, i) for part in parts)
                out, (h, c) = rnn(v, (h, c))
                parts[0].index_copy_(1, i, h)
                parts[1].index_copy_(1, i, c)
                model.head(out[:, -1])

        carry = tuple(part.index_select(1, index) for part in parts)

        def batched(v: torch.Tensor = xs, state: tuple[torch.Tensor, ...] = carry) -> None:
            with torch.no_grad():
                out, _ = rnn(v, state)
                model.head(out[:, -1])

        bare = timed_rate(synced(plain), n, seconds)
        rows["stateline StreamEngine.step (host ids and values in, numpy out)"].append(
            f"{ours:,.0f}"
        )
        rows["plain index_select -> fused nn.LSTM step -> index_copy_, same slots"].append(
            f"{bare:,.0f}"
        )
        rows["fused nn.LSTM step, carries pre-batched"].append(
            f"{timed_rate(synced(batched), n, seconds):,.0f}"
        )
        rows["engine / plain gather-step-scatter"].append(f"{ours / bare:.2f} (goal >= 0.5)")
    one = np.array([int(rng.integers(stored))])
    median, p99 = latency(synced(lambda: engine.step(one, np.zeros((1, INPUTS), np.float32))))
    table = Table(
        title=f"{device}: one step for N of {stored:,} stored streams, LSTM {INPUTS} inputs, "
        f"{hidden} hidden (stream-steps/s); one stream's engine step: {median:,.0f} us median, "
        f"{p99:,.0f} us p99"
    )
    table.add_column("approach")
    for n in (n for n in DEVICE_ACTIVE if n <= stored):
        table.add_column(f"N={n:,}", justify="right")
    for name, cells in rows.items():
        table.add_row(name, *cells)
    return table


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
