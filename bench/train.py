"""Training benchmark: stateline TBPTT vs a windowed stateless LSTM vs a plain PyTorch loop.

One run, one table. Data: the Taylor half-hourly electricity demand (real, bundled in
pmdarima): the first 10 weeks train, the last 2 weeks are the validation period, scored
as one-step-ahead MAE (MW) with each model continuing its state (or window) over the
validation period. All three use the same LSTM size and optimiser, train on one
thread count, and the two peers get the same wall time as stateline's fit:

- stateline: ``Forecaster`` (TBPTT over packed lanes, carry passed, resets, masks);
- windowed: the Keras-tutorial approach, many-to-one on overlapping windows of
  ``STEPS`` values, shuffled batches (each time step recomputed ``STEPS`` times);
- plain PyTorch: a hand-written stateful loop (series reshaped into lanes, hidden
  state detached per chunk), the fastest thing one can write by hand.

Also printed: seasonal naive (one week) and persistence, a classification table, and
``bench/train_ranks.py``'s: fit over 1 and 2 processes. Run:
    .venv/bin/python bench/train.py [--epochs N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from stateline import Forecaster, ForecasterConfig, Scaler, windows
from stateline.data import taylor_electricity

CUT = 3360  # 10 weeks of half hours
HIDDEN = 64
CHUNK = 48
LANES = 4
STEPS = 48
LEARNING_RATE = 3e-3


class Plain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, 1)

    def forward(self, x: torch.Tensor, state=None):  # type: ignore[no-untyped-def]
        out, state = self.lstm(x, state)
        return self.head(out), state


def mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a - b)))


def run_stateline(y: np.ndarray, epochs: int, seed: int, progress: bool = True) -> dict[str, float]:
    config = ForecasterConfig(
        hidden=HIDDEN,
        chunk=CHUNK,
        lanes=LANES,
        epochs=epochs,
        learning_rate=LEARNING_RATE,
        patience=None,
        validation_share=0.0,
        schedule="constant",
        progress=progress,
        seed=seed,
    )
    started = time.perf_counter()
    forecaster = Forecaster(config).fit(y[:CUT])
    seconds = time.perf_counter() - started
    # The carry has seen the whole training part: forecast y[CUT], then continue the state.
    first = forecaster.forecast()[0, 0, 0]
    predictions = np.concatenate([[first], forecaster.update(y[CUT:-1]).values[:, 0, 0]])
    steps = (CUT - 1) * epochs
    return {
        "seconds": seconds,
        "series_steps": steps,
        "computations": steps,
        "mae": mae(predictions, y[CUT:]),
    }


def run_windowed(y: np.ndarray, scaler: Scaler, budget: float, seed: int) -> dict[str, float]:
    torch.manual_seed(seed)
    scaled = scaler.transform(y[:, None])[:, 0]
    train = windows(labels=scaled[:CUT], steps=STEPS, shift="labels")
    x = torch.as_tensor(train.x, dtype=torch.float32)
    target = torch.as_tensor(train.y, dtype=torch.float32)[:, None]
    model = Plain()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    started, windows_seen = time.perf_counter(), 0
    while time.perf_counter() - started < budget:
        for batch in torch.randperm(len(x), generator=generator).split(64):
            out, _ = model(x[batch])
            loss = ((out[:, -1] - target[batch]) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            windows_seen += len(batch)
            if time.perf_counter() - started >= budget:
                break
    seconds = time.perf_counter() - started
    test = windows(labels=scaled, steps=STEPS, shift="labels")
    keep = test.index >= CUT
    with torch.no_grad():
        out, _ = model(torch.as_tensor(test.x[keep], dtype=torch.float32))
    predictions = scaler.inverse_transform(out[:, -1].numpy())[:, 0]
    return {
        "seconds": seconds,
        "series_steps": windows_seen,
        "computations": windows_seen * STEPS,
        "mae": mae(predictions, y[test.index[keep]]),
    }


def run_plain(y: np.ndarray, scaler: Scaler, budget: float, seed: int) -> dict[str, float]:
    torch.manual_seed(seed)
    scaled = torch.as_tensor(scaler.transform(y[:, None]), dtype=torch.float32)
    per_lane = ((CUT - 1) // LANES) // CHUNK * CHUNK
    x = scaled[: per_lane * LANES].reshape(LANES, per_lane, 1)
    target = scaled[1 : per_lane * LANES + 1].reshape(LANES, per_lane, 1)
    model = Plain()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
    started, steps = time.perf_counter(), 0
    while time.perf_counter() - started < budget:
        state = None
        for begin in range(0, per_lane, CHUNK):
            out, state = model(x[:, begin : begin + CHUNK], state)
            state = tuple(s.detach() for s in state)
            loss = ((out - target[:, begin : begin + CHUNK]) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            steps += LANES * CHUNK
    seconds = time.perf_counter() - started
    with torch.no_grad():
        out, _ = model(scaled[None, : len(y) - 1])
    predictions = scaler.inverse_transform(out[0, CUT - 1 :].numpy())[:, 0]
    return {
        "seconds": seconds,
        "series_steps": steps,
        "computations": steps,
        "mae": mae(predictions, y[CUT:]),
    }


def summary(runs: list[dict[str, float]]) -> dict[str, float]:
    return {
        "rate": float(np.mean([r["series_steps"] / r["seconds"] for r in runs])),
        "computations": float(np.mean([r["computations"] / r["seconds"] for r in runs])),
        "per_step": float(np.mean([r["computations"] / r["series_steps"] for r in runs])),
        "mae": float(np.mean([r["mae"] for r in runs])),
        "spread": float(np.std([r["mae"] for r in runs])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="stateline training benchmark")
    parser.add_argument("--epochs", type=int, default=60, help="stateline epochs (default 60)")
    parser.add_argument("--seeds", type=int, default=3, help="runs per approach (default 3)")
    args = parser.parse_args()
    y = taylor_electricity()
    scaler = Scaler().fit(y[:CUT, None])

    # Warm up every path once (PyTorch's first calls pay one-time costs), then measure.
    run_stateline(y, 1, seed=0, progress=False)
    run_windowed(y, scaler, 0.3, seed=0)
    run_plain(y, scaler, 0.3, seed=0)
    runs: dict[str, list[dict[str, float]]] = {"ours": [], "windowed": [], "plain": []}
    for seed in range(args.seeds):
        ours = run_stateline(y, args.epochs, seed=seed)
        runs["ours"].append(ours)
        runs["windowed"].append(run_windowed(y, scaler, ours["seconds"], seed=seed))
        runs["plain"].append(run_plain(y, scaler, ours["seconds"], seed=seed))
    naive_week = mae(y[CUT - 336 : -336], y[CUT:])
    persistence = mae(y[CUT - 1 : -1], y[CUT:])

    budget = float(np.mean([r["seconds"] for r in runs["ours"]]))
    table = Table(
        title=f"Training on Taylor electricity, equal wall time per run ({budget:.1f} s, "
        f"{torch.get_num_threads()} threads), mean of {args.seeds} seeds; "
        "ratios: stateline / peer"
    )
    for column in (
        "approach",
        "series steps/s",
        "x",
        "step computations/s",
        "computations per series step",
        "validation MAE (MW), mean +- sd",
        "x",
    ):
        table.add_column(column, justify="left" if column == "approach" else "right")
    base = summary(runs["ours"])
    for name, key in (
        ("stateline TBPTT (Forecaster)", "ours"),
        (f"windowed stateless, {STEPS} steps", "windowed"),
        ("plain PyTorch TBPTT loop", "plain"),
    ):
        row = summary(runs[key])
        table.add_row(
            name,
            f"{row['rate']:,.0f}",
            f"{base['rate'] / row['rate']:.2f}",
            f"{row['computations']:,.0f}",
            f"{row['per_step']:.0f}",
            f"{row['mae']:.1f} +- {row['spread']:.1f}",
            f"{base['mae'] / row['mae']:.2f}",
        )
    table.add_row(
        "seasonal naive (1 week)",
        "",
        "",
        "",
        "",
        f"{naive_week:.1f}",
        f"{base['mae'] / naive_week:.2f}",
    )
    table.add_row(
        "persistence", "", "", "", "", f"{persistence:.1f}", f"{base['mae'] / persistence:.2f}"
    )
    Console(width=170).print(table)
    classification_table()
    # fit over 1 and 2 processes (torch.distributed, gloo): its own script, its own processes
    ranks = Path(__file__).with_name("train_ranks.py")
    subprocess.run([sys.executable, str(ranks)], check=True, timeout=1200)


def classification_table() -> None:
    """Variable-length classification on JapaneseVowels (real, bundled in sktime)."""
    from stateline import ClassifierConfig, SequenceClassifier
    from stateline.data import japanese_vowels

    train, train_labels = japanese_vowels("train")
    test, test_labels = japanese_vowels("test")
    table = Table(
        title="SequenceClassifier on JapaneseVowels (270 train / 370 test sequences, "
        "7-29 frames, 9 speakers)"
    )
    for column in ("hidden", "seed", "fit seconds", "epochs run", "test accuracy"):
        table.add_column(column, justify="right")
    for seed in range(3):
        started = time.perf_counter()
        classifier = SequenceClassifier(
            ClassifierConfig(hidden=32, lanes=16, seed=seed, progress=False)
        )
        classifier.fit(train, train_labels)
        seconds = time.perf_counter() - started
        assert classifier.history_ is not None
        table.add_row(
            "32",
            str(seed),
            f"{seconds:.1f}",
            str(len(classifier.history_.epochs)),
            f"{classifier.score(test, test_labels):.1%}",
        )
    Console(width=170).print(table)


if __name__ == "__main__":
    main()
