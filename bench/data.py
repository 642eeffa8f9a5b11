"""Data-layer benchmark: stateline's lanes vs the layouts of common Keras tutorials.

Prints one table from one run. For each scenario and layout: time to build the
layout, input memory, and LSTM step computations per epoch (slots the model must
run, padding included), with ratios against stateline's lanes.

Scenarios:
- "temperatures": the two bundled real hourly temperature streams (17,518 steps),
  forecasting with 64-step windows (Keras tutorial: overlapping windows).
- "fleet": 2,000 variable-length sensor sequences (lengths log-normal, 20 to
  5,000 steps; generated here with a fixed seed), the case where Keras tutorials
  pad every sequence to the longest (``pad_sequences``) or cut windows.

Run: .venv/bin/python bench/data.py [--repeat N]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from stateline import hourly_temperatures, load_table, pack_lanes, windows

LANES = 64
CHUNK = 64
STEPS = 64


def pad_to_longest(sequences: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """What keras.utils.pad_sequences does, for float features: (N, longest, F) plus a mask."""
    longest = max(len(s) for s in sequences)
    out = np.zeros((len(sequences), longest, sequences[0].shape[1]), dtype=sequences[0].dtype)
    mask = np.zeros((len(sequences), longest), dtype=bool)
    for row, sequence in enumerate(sequences):
        out[row, : len(sequence)] = sequence
        mask[row, : len(sequence)] = True
    return out, mask


def timed(build: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best = float("inf")
    result: Any = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = build()
        best = min(best, time.perf_counter() - started)
    return best, result


def scenario_rows(
    name: str, sequences: list[np.ndarray], repeat: int, split: bool
) -> list[tuple[str, str, float, int, int, int]]:
    real_steps = sum(len(s) for s in sequences)
    seconds, layout = timed(
        lambda: pack_lanes(
            sequences, lanes=LANES, chunk=CHUNK, targets=[s[:, 0] for s in sequences], split=split
        ),
        repeat,
    )
    rows = [
        (
            name,
            f"stateline lanes ({LANES}x{CHUNK}{', split' if split else ''})",
            seconds,
            layout.x.nbytes + layout.y.nbytes + layout.mask.nbytes,
            layout.slots,
            real_steps,
        )
    ]

    def cut_windows() -> list[Any]:
        return [windows(s, s[:, 0], steps=STEPS) for s in sequences if len(s) > STEPS]

    seconds, window_sets = timed(cut_windows, repeat)
    rows.append(
        (
            name,
            f"windows of {STEPS} (Keras tutorial)",
            seconds,
            sum(w.x.nbytes + w.y.nbytes for w in window_sets),
            sum(w.x.shape[0] * w.x.shape[1] for w in window_sets),
            real_steps,
        )
    )
    if len(sequences) > 1:
        seconds, (padded, mask) = timed(lambda: pad_to_longest(sequences), repeat)
        rows.append(
            (
                name,
                "pad to longest (pad_sequences)",
                seconds,
                padded.nbytes + mask.nbytes,
                int(mask.size),
                real_steps,
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="best of N builds (default 3)")
    args = parser.parse_args()

    temps = load_table(hourly_temperatures(), time="time", features=["temp"], group="city")
    rng = np.random.default_rng(7)
    lengths = np.clip(rng.lognormal(mean=5.5, sigma=1.0, size=2000), 20, 5000).astype(int)
    fleet = [rng.normal(size=(int(n), 4)).astype(np.float32) for n in lengths]

    rows = scenario_rows("temperatures (real)", temps.features, args.repeat, split=True)
    rows += scenario_rows("fleet of 2,000", fleet, args.repeat, split=False)

    table = Table(
        title="Data layouts: build time, memory, step computations per epoch "
        "(ratios: x stateline lanes)"
    )
    for column in (
        "scenario",
        "layout",
        "build ms",
        "memory MB",
        "x",
        "step computations",
        "x",
        "real-step share",
    ):
        table.add_column(column, justify="left" if column in ("scenario", "layout") else "right")
    base: dict[str, tuple[int, int]] = {}
    for scenario, layout_name, seconds, nbytes, computations, real in rows:
        base.setdefault(scenario, (nbytes, computations))
        base_bytes, base_computations = base[scenario]
        table.add_row(
            scenario,
            layout_name,
            f"{seconds * 1e3:.1f}",
            f"{nbytes / 1e6:.2f}",
            f"{nbytes / base_bytes:.1f}",
            f"{computations:,}",
            f"{computations / base_computations:.1f}",
            f"{real / computations:.1%}",
        )
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
