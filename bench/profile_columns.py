"""Proof that no Python work per event remains on the columnar path (#16).

Counts the Python function calls (cProfile) of one call of ``StreamEngine.step``,
``StreamDetector.step`` and ``StreamService.step_columns`` at N = 1,024, 8,192 and
65,536 distinct streams (string ids, seq given), and of ``StreamService.step``
(the per-event API) for contrast. Counts that do not grow with N mean no per-event
Python remains: the work per event is inside NumPy, PyTorch and C dict lookups
(past 8,192 events the engine splits a call into parts of max_batch: a few calls each).

Run: .venv/bin/python bench/profile_columns.py [model dir from `stateline train`]
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from stateline.serve import ColumnBatch, Event, ServeConfig, StreamService

sys.path.insert(0, str(Path(__file__).parent))


def calls(function: Any, *args: Any, **keywords: Any) -> int:
    profile = cProfile.Profile()
    profile.enable()
    function(*args, **keywords)
    profile.disable()
    return int(pstats.Stats(profile).total_calls)  # type: ignore[attr-defined]


def main() -> None:
    torch.set_num_threads(1)
    if len(sys.argv) > 1:
        model = Path(sys.argv[1])
    else:
        from serve import train_model  # bench/serve.py's small forecaster

        model = train_model(Path(tempfile.mkdtemp()))
    config = ServeConfig(model=str(model), snapshot_dir=tempfile.mkdtemp(), max_events=70_000)
    service = StreamService(config)
    rng = np.random.default_rng(0)
    table = Table(title="Python function calls per call (constant in N: no per-event Python)")
    for name in ("N", "engine.step", "detector.step", "service.step_columns", "service.step"):
        table.add_column(name, justify="right")
    for count in (1024, 8192, 65_536):
        ids = np.array([f"s{count}-{i}" for i in range(count)], dtype=object)
        values = rng.normal(10, 3, (count, 1, 1))
        for seq in range(3):  # create the streams, warm every path
            service.step_columns(ColumnBatch.of(ids, values, seq=np.full(count, seq)))
        x = values[:, 0].astype(np.float32)
        assert service.detector is not None
        row = [
            calls(service.engine.step, ids, x, seq=np.full(count, 10)),
            calls(service.detector.step, ids, x, seq=np.full(count, 11)),
            calls(service.step_columns, ColumnBatch.of(ids, values, seq=np.full(count, 12))),
        ]
        events = [Event(str(i), [float(v)], 13) for i, v in zip(ids, values[:, 0, 0], strict=True)]
        row.append(calls(service.step, events) if count <= 8192 else -1)
        table.add_row(f"{count:,}", *[f"{c:,}" if c >= 0 else "-" for c in row])
    Console().print(table)


if __name__ == "__main__":
    main()
