"""Fit a Forecaster from a Parquet folder, for tests/train/test_parquet_fit.py.

``python -m torch.distributed.run --nproc_per_node 2 tests/train/_ddp_parquet.py FOLDER OUT
parquet`` fits over 2 ranks, each reading only its own series (``python
tests/train/_ddp_parquet.py FOLDER OUT parquet``: one process reading all of them);
``... FOLDER OUT memory`` fits one process on the whole folder read with pandas into lists of
arrays (the in-memory fit). Each process writes its fitted forecaster and the memory it used
to ``OUT/<case>-rank<r>.pt``.

The memory measured is the peak of the data the process holds while fitting: tracemalloc's
peak (Python objects and every NumPy array: NumPy reports its buffers to tracemalloc) plus the
peak of Arrow's default memory pool (the Parquet reads). PyTorch's own tensors (the layout's
float32 copy on the device, the model) are not in it; the growth of the process's peak
resident memory over the fit is recorded too, for the report.
"""

from __future__ import annotations

import os
import resource
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

SERIES = 2000
FILES = 4
CONFIG = {"hidden": 4, "chunk": 32, "epochs": 1, "learning_rate": 0.01, "progress": False}
COLUMNS = {"target": "value", "features": ["f1", "f2"], "time": "t", "group": "series"}


def write_series(folder: Path, count: int = SERIES, files: int = FILES, seed: int = 3) -> None:
    """``count`` series of 100 to 400 steps (a target and 2 covariates), in ``files`` Parquet
    files: rows sorted by time step, so that every series spans the files."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    lengths = rng.integers(100, 401, size=count)
    key = np.repeat(np.arange(count), lengths)
    step = np.concatenate([np.arange(n) for n in lengths])
    phase = rng.uniform(0, 6, size=count)[key]
    frame = pd.DataFrame(
        {
            "series": key,
            "t": step,
            "value": np.sin(step / 7.0 + phase) + 0.1 * rng.standard_normal(len(key)) + key % 5,
            "f1": np.cos(step / 11.0 + phase),
            "f2": rng.standard_normal(len(key)),
        }
    )
    frame = frame.sort_values(["t", "series"], kind="stable", ignore_index=True)
    folder.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, len(frame), files + 1).astype(int)
    for k in range(files):
        part = frame.iloc[bounds[k] : bounds[k + 1]]
        part.to_parquet(folder / f"part-{k}.parquet", index=False, row_group_size=20_000)


def fitted(forecaster: Any) -> dict[str, Any]:
    """What a fitted forecaster is: weights, carries, streams, scalers and history."""
    return {
        "weights": forecaster.model_.state_dict(),
        "carry": list(forecaster.carry_),
        "streams": [int(key) for key in forecaster.streams_],
        "scaler": forecaster.scaler_.to_dict(),
        "covariate_scaler": forecaster.covariate_scaler_.to_dict(),
        "history": [(r.train_loss, r.validation_loss) for r in forecaster.history_.epochs],
        "lanes": forecaster.lanes_,
    }


def run(folder: Path, out: Path, case: str) -> None:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute
    import pyarrow.dataset
    import torch

    from stateline import Forecaster, ForecasterConfig

    rank = int(os.environ.get("RANK", "0"))
    # A first fit on a tiny array imports what fitting imports (torch.optim alone brings
    # about 40 MB of Python objects), so that the fit measured counts data, not modules.
    Forecaster(ForecasterConfig(hidden=2, chunk=8, lanes=4, epochs=1, progress=False)).fit(
        np.sin(np.arange(200.0))
    )
    resident = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    pool = pa.default_memory_pool()
    tracemalloc.start()
    if case == "parquet":
        forecaster = Forecaster(ForecasterConfig(**CONFIG)).fit(folder, **COLUMNS)  # type: ignore[arg-type]
    else:  # series by series in order of first appearance (0, 1, ... in these files)
        frame = pd.read_parquet(folder)
        keys = frame["series"].to_numpy()
        values = frame[["value", "f1", "f2"]].to_numpy()[np.argsort(keys, kind="stable")]
        del frame
        parts = np.split(values, np.cumsum(np.bincount(keys))[:-1])
        forecaster = Forecaster(ForecasterConfig(**CONFIG)).fit(
            [part[:, :1] for part in parts], covariates=[part[:, 1:] for part in parts]
        )
        del parts, values
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    result = fitted(forecaster)
    result["memory"] = {
        "traced": traced,
        "arrow": pool.max_memory(),
        "resident_growth": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - resident,
    }
    torch.save(result, out / f"{case}-rank{rank}.pt")


def error(folder: Path, out: Path) -> None:
    """Fit a folder in which one series holds a NaN: every rank must stop with the error (the
    rank that does not read that series too), none may wait for the others."""
    import torch

    from stateline import DataError, Forecaster, ForecasterConfig

    try:
        Forecaster(ForecasterConfig(**{**CONFIG, "lanes": 4})).fit(folder, **COLUMNS)  # type: ignore[arg-type]
        message = "no error"
    except DataError as caught:
        message = str(caught)
    torch.save(message, out / f"error-rank{os.environ.get('RANK', '0')}.pt")


if __name__ == "__main__":
    if sys.argv[3] == "error":
        error(Path(sys.argv[1]), Path(sys.argv[2]))
    else:
        run(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
