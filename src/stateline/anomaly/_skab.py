"""Evaluate a detector on SKAB (Skoltech Anomaly Benchmark) with SKAB's own protocol.

SKAB is not shipped with stateline (it is GPL-3.0): pass the folder of a
checkout (the one holding ``data/valve1`` ...). The protocol of SKAB's
notebooks: every experiment file is one series; its first 400 steps are
normal and are all a detector may learn from; flags over every step of all
experiments are pooled into one F1, false-alarm rate and missed-alarm rate.
The changepoint problem is scored with NAB on windows of 60 steps to the right
of each labelled changepoint, as SKAB's leaderboard does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from .._errors import DataError, describe
from ._metrics import BinaryScores, binary_scores
from ._nab import NabResult, nab_score

__all__ = ["SKAB_PUBLISHED", "SkabExperiment", "SkabReport", "evaluate_skab", "load_skab"]

# The outlier-detection leaderboard of SKAB's README (F1, FAR %, MAR %), as published.
SKAB_PUBLISHED: dict[str, tuple[float, float, float]] = {
    "Conv-AE": (0.78, 13.55, 28.02),
    "MSET": (0.78, 39.73, 14.13),
    "T-squared+Q (PCA-based)": (0.76, 26.62, 24.92),
    "LSTM-AE": (0.74, 29.96, 25.92),
    "T-squared": (0.66, 19.21, 42.6),
    "LSTM-VAE": (0.56, 9.13, 55.03),
    "Vanilla LSTM": (0.54, 12.54, 59.53),
    "Vanilla AE": (0.39, 2.59, 75.15),
    "MSCRED": (0.36, 49.94, 69.88),
    "Isolation forest": (0.29, 2.56, 82.89),
}

SENSORS = (
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "Volume Flow RateRMS",
)


@dataclass(frozen=True, eq=False)
class SkabExperiment:
    """One SKAB experiment: sensor values ``(steps, 8)``, anomaly and changepoint labels."""

    name: str
    values: NDArray[np.float64]
    anomaly: NDArray[np.bool_]
    changepoint: NDArray[np.bool_]


@dataclass(frozen=True)
class SkabReport:
    """Pooled outlier scores and changepoint NAB of one detector over all experiments."""

    binary: BinaryScores
    after_reference: BinaryScores
    nab: NabResult
    experiments: int


def load_skab(root: str | Path) -> list[SkabExperiment]:
    """The labelled experiments of a SKAB checkout in a stable order (not the anomaly-free file)."""
    folder = Path(root)
    data = folder / "data" if (folder / "data").is_dir() else folder
    files = sorted(p for p in data.glob("*/*.csv") if p.parent.name != "anomaly-free")
    if not files:
        raise DataError(
            describe(
                "root",
                "a SKAB checkout with data/valve1/*.csv, data/other/*.csv ...",
                str(folder),
                problem="holds no SKAB experiments.",
            )
        )
    experiments = []
    for path in files:
        frame = pd.read_csv(path, sep=";")
        missing = [c for c in (*SENSORS, "anomaly", "changepoint") if c not in frame.columns]
        if missing:
            raise DataError(
                describe(
                    str(path),
                    f"columns {list(SENSORS)} + anomaly, changepoint",
                    f"missing {missing}",
                    problem="is not a SKAB experiment file.",
                )
            )
        experiments.append(
            SkabExperiment(
                name=f"{path.parent.name}/{path.stem}",
                values=frame[list(SENSORS)].to_numpy(dtype=np.float64),
                anomaly=frame["anomaly"].to_numpy() > 0.5,
                changepoint=frame["changepoint"].to_numpy() > 0.5,
            )
        )
    return experiments


def evaluate_skab(
    experiments: list[SkabExperiment],
    detect: Callable[[SkabExperiment], NDArray[np.bool_]],
    *,
    window: int = 60,
    reference: int = 400,
) -> SkabReport:
    """Pool the flags of ``detect(experiment)`` (one per step) over all experiments.

    ``binary`` scores every step (SKAB's protocol); ``after_reference`` only
    the steps after the first ``reference`` (the part detectors learn from).

    Changepoints predicted from the flags (where they switch on or off) are
    scored with NAB against windows of ``window`` steps starting at each
    labelled changepoint.
    """
    labels, flags, nab = [], [], None
    for experiment in experiments:
        flagged = np.asarray(detect(experiment), dtype=bool)
        if flagged.shape != experiment.anomaly.shape:
            raise DataError(
                describe(
                    f"flags of {experiment.name}",
                    f"one flag per step: shape {experiment.anomaly.shape}",
                    f"shape {flagged.shape}",
                    problem="has the wrong shape.",
                )
            )
        labels.append(experiment.anomaly)
        flags.append(flagged)
        switches = np.diff(np.concatenate([[0], flagged.astype(np.int8)])) != 0
        windows = _right_windows(experiment.changepoint, window)
        result = nab_score(switches, windows, probation=0.0)
        nab = result if nab is None else nab + result
    assert nab is not None
    return SkabReport(
        binary=binary_scores(labels, flags),
        after_reference=binary_scores(
            [label[reference:] for label in labels], [flag[reference:] for flag in flags]
        ),
        nab=nab,
        experiments=len(experiments),
    )


def _right_windows(changepoints: NDArray[np.bool_], width: int) -> NDArray[np.int64]:
    """Windows ``[cp, cp + width)``, cut where they would overlap the next one."""
    points = np.flatnonzero(changepoints).tolist()
    spans = []
    for position, point in enumerate(points):
        end = min(point + width, len(changepoints))
        if position + 1 < len(points):
            end = min(end, points[position + 1])
        if end > point:
            spans.append([point, end])
    return np.array(spans, dtype=np.int64).reshape(-1, 2)
