"""Read a Numenta Anomaly Benchmark (NAB) checkout and score anomaly scores over it as NAB does.

NAB is not shipped with stateline (AGPL-3.0): pass the folder of a checkout
holding ``data/<category>/<file>.csv`` (``timestamp,value``) and
``labels/combined_windows.json``. Each file is one stream, read in file order
(a repeated or backward time stamp is kept where it is). Windows are mapped to
rows exactly as NAB's sweeper maps them: from the first row stamped with the
window's start to the first row stamped with its end, both included.

:func:`nab_sweep` is NAB's threshold optimiser: it scores every distinct
threshold over all files at once and keeps the best; :func:`nab_corpus_score`
scores one threshold. Both normalise as NAB's runner does: the null detector
scores 0 and the perfect one, ``tp_weight`` per labelled window, 100.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from .._errors import DataError, ShapeError, describe
from ._nab import NAB_PROFILES, NabProfile, NabResult, _profile, detection_value, nab_score

__all__ = [
    "NabCorpusResult",
    "NabSeries",
    "load_nab",
    "nab_corpus_score",
    "nab_probation",
    "nab_sweep",
    "read_nab_results",
]

NAB_CATEGORIES_WITH_ANOMALIES = ("artificialWithAnomaly", "realAdExchange", "realKnownCause")


def nab_probation(rows: int, share: float = 0.15) -> int:
    """NAB's probationary length: ``min(floor(share * rows), share * 5000)`` rows.

    >>> nab_probation(4032), nab_probation(22695)
    (604, 750)
    """
    return int(min(math.floor(share * rows), share * 5000))


@dataclass(frozen=True, eq=False)
class NabSeries:
    """One NAB file: its values in file order, time stamps and windows as row ranges."""

    name: str
    timestamps: NDArray[np.datetime64]
    values: NDArray[np.float64]
    windows: NDArray[np.int64]
    """``(count, 2)`` half-open ``[first, last + 1)`` row ranges of the labelled windows."""

    @property
    def category(self) -> str:
        return self.name.split("/")[0]

    @property
    def probation(self) -> int:
        return nab_probation(len(self.values))


@dataclass(frozen=True)
class NabCorpusResult:
    """A corpus score at one threshold: per-file results and NAB's normalisation."""

    threshold: float
    files: Mapping[str, NabResult]
    windows: Mapping[str, int]
    """Labelled windows per file, those inside the probationary period included (as NAB counts)."""
    tp_weight: float

    @property
    def total(self) -> NabResult:
        """The per-file results summed."""
        return _summed(list(self.files.values()))

    @property
    def normalised(self) -> float:
        """``100 (raw - null) / (perfect - null)``, ``perfect = tp_weight x windows`` (NAB's)."""
        return self._normalised(list(self.files))

    def category(self, name: str) -> float:
        """The normalised score of the files of one category."""
        chosen = [file for file in self.files if file.split("/")[0] == name]
        if not chosen:
            raise DataError(
                describe(
                    "category",
                    f"a category of {sorted(self.files)}",
                    repr(name),
                    problem="is unknown.",
                )
            )
        return self._normalised(chosen)

    def _normalised(self, names: list[str]) -> float:
        total = _summed([self.files[name] for name in names])
        perfect = self.tp_weight * sum(self.windows[name] for name in names)
        span = perfect - total.null
        return 100.0 * (total.raw - total.null) / span if span else 0.0


def load_nab(root: str | Path, categories: Sequence[str] | None = None) -> list[NabSeries]:
    """Every file of a NAB checkout (or of some ``categories``), sorted by name."""
    folder = Path(root)
    labels_path = folder / "labels" / "combined_windows.json"
    if not labels_path.is_file():
        raise DataError(
            describe(
                "root",
                "a NAB checkout with labels/combined_windows.json and data/<category>/*.csv",
                str(folder),
                problem="is not a NAB checkout.",
            )
        )
    windows = json.loads(labels_path.read_text())
    series = []
    for name in sorted(windows):
        if categories is not None and name.split("/")[0] not in categories:
            continue
        path = folder / "data" / name
        if not path.is_file():
            continue
        frame = pd.read_csv(path)
        stamps = pd.to_datetime(frame["timestamp"]).to_numpy()
        series.append(
            NabSeries(
                name=name,
                timestamps=stamps,
                values=frame["value"].to_numpy(dtype=np.float64),
                windows=window_rows(stamps, windows[name], name),
            )
        )
    if not series:
        raise DataError(
            describe(
                "root",
                "NAB data files",
                f"none under {folder / 'data'}",
                problem="holds no NAB data files.",
            )
        )
    return series


def window_rows(
    timestamps: NDArray[np.datetime64], limits: Sequence[Sequence[str]], name: str = "series"
) -> NDArray[np.int64]:
    """Windows given by time stamps as half-open row ranges, the way NAB's sweeper finds them."""
    stamps = np.asarray(timestamps, dtype="datetime64[ns]")
    rows = []
    for start, end in limits:
        first = np.flatnonzero(stamps == np.datetime64(pd.Timestamp(start)))
        last = np.flatnonzero(stamps == np.datetime64(pd.Timestamp(end)))
        if not len(first) or not len(last):
            raise DataError(
                describe(
                    f"windows of {name}",
                    "window limits that are time stamps of the file",
                    f"[{start}, {end}]",
                    problem="do not match the data.",
                )
            )
        rows.append((int(first[0]), int(last[0]) + 1))
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


def read_nab_results(root: str | Path, detector: str) -> dict[str, NDArray[np.float64]]:
    """A detector's published ``anomaly_score`` per file, from ``results/<detector>/``."""
    folder = Path(root) / "results" / detector
    scores = {}
    for path in sorted(folder.glob("*/*.csv")):
        name = f"{path.parent.name}/{path.name.removeprefix(detector + '_')}"
        scores[name] = pd.read_csv(path)["anomaly_score"].to_numpy(dtype=np.float64)
    if not scores:
        raise DataError(
            describe(
                "detector",
                f"result files under {folder}",
                "none",
                problem="has no published results here.",
            )
        )
    return scores


def nab_corpus_score(
    series: Sequence[NabSeries],
    scores: Mapping[str, ArrayLike],
    threshold: float,
    *,
    profile: str = "standard",
) -> NabCorpusResult:
    """NAB's score of anomaly scores at one threshold (a row is a detection at ``>= threshold``)."""
    if np.isnan(threshold):
        raise DataError(describe("threshold", "a number", "NaN", problem="is NaN."))
    _require_series(series)
    files = {}
    for item in series:
        values = _scores_of(item, scores)
        files[item.name] = nab_score(values >= threshold, item.windows, profile=profile)
    return _result(threshold, files, series, profile)


def nab_sweep(
    series: Sequence[NabSeries],
    scores: Mapping[str, ArrayLike],
    *,
    profile: str = "standard",
) -> NabCorpusResult:
    """The threshold that maximises NAB's score over all files, as NAB's optimiser finds it.

    ``inf`` when detecting nothing scores best.

    Every distinct score is a candidate threshold; the scorable rows of all
    files (after each file's probationary period) are taken from the highest
    score down, and each candidate's score is the sum of the false positives'
    weighted costs, the best (earliest) detection of each window and a miss
    for each window not yet detected.
    """
    weights = _profile(profile)
    _require_series(series)
    pooled_scores, pooled_values, pooled_window = [], [], []
    window_count = 0
    for item in series:
        values = _scores_of(item, scores)
        value, window = _row_values(item, weights)
        scored = slice(item.probation, len(values))
        pooled_scores.append(values[scored])
        pooled_values.append(value[scored])
        pooled_window.append(np.where(window[scored] >= 0, window[scored] + window_count, -1))
        window_count += len(item.windows)
    all_scores = np.concatenate(pooled_scores)
    all_values = np.concatenate(pooled_values)
    all_windows = np.concatenate(pooled_window)
    scored_windows = np.unique(all_windows[all_windows >= 0])
    order = np.argsort(-all_scores, kind="stable")
    best_value = np.full(window_count, -math.inf)
    false_positives = 0.0
    misses = len(scored_windows)
    detected_sum = 0.0
    best_raw = -weights.false_negative * misses
    best_threshold = math.inf  # no detection at all
    position = 0
    ordered_scores = all_scores[order]
    while position < len(order):
        level = ordered_scores[position]
        stop = position
        while stop < len(order) and ordered_scores[stop] == level:
            row = order[stop]
            window = all_windows[row]
            if window < 0:
                false_positives += all_values[row]
            else:
                if best_value[window] == -math.inf:
                    misses -= 1
                    best_value[window] = all_values[row]
                    detected_sum += all_values[row]
                elif all_values[row] > best_value[window]:
                    detected_sum += all_values[row] - best_value[window]
                    best_value[window] = all_values[row]
            stop += 1
        raw = false_positives + detected_sum - weights.false_negative * misses
        if raw > best_raw:
            best_raw, best_threshold = raw, float(level)
        position = stop
    return nab_corpus_score(series, scores, best_threshold, profile=profile)


# ------------------------------------------------------------------- internals
def _scores_of(item: NabSeries, scores: Mapping[str, ArrayLike]) -> NDArray[np.float64]:
    """One file's scores as floats; NaN (not scored, as over a reference part) counts as 0."""
    if item.name not in scores:
        raise DataError(
            describe("scores", f"an array for {item.name}", "none", problem="is missing a file.")
        )
    try:
        values = np.asarray(scores[item.name], dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise DataError(
            describe(f"scores[{item.name!r}]", "numbers", str(error), problem="is not numeric.")
        ) from None
    if values.ndim != 1 or len(values) != len(item.values):
        raise ShapeError(
            describe(
                f"scores[{item.name!r}]",
                f"shape ({len(item.values)},)",
                f"shape {values.shape}",
                problem="has the wrong shape.",
            )
        )
    if np.isinf(values).any():
        raise DataError(
            describe(
                f"scores[{item.name!r}]",
                "finite anomaly scores (NaN for rows not scored)",
                f"inf at row {int(np.flatnonzero(np.isinf(values))[0])}",
                problem="holds inf.",
            )
        )
    return np.nan_to_num(values, nan=0.0)


def _row_values(
    item: NabSeries, weights: NabProfile
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Each row's weighted score if it were a detection (NAB's sweepScore) and its window."""
    spans = [(int(a), int(b)) for a, b in item.windows.tolist()]
    value = np.empty(len(item.values))
    window = np.full(len(item.values), -1, dtype=np.int64)
    for index in range(len(item.values)):
        inside, value[index] = detection_value(spans, index, weights)
        if inside is not None:
            window[index] = inside
    return value, window


def _require_series(series: Sequence[NabSeries]) -> None:
    if not series:
        raise DataError(describe("series", "at least one NAB file", "none", problem="is empty."))


def _summed(results: list[NabResult]) -> NabResult:
    total = results[0]
    for result in results[1:]:
        total = total + result
    return total


def _result(
    threshold: float,
    files: dict[str, NabResult],
    series: Sequence[NabSeries],
    profile: str,
) -> NabCorpusResult:
    return NabCorpusResult(
        threshold=threshold,
        files=files,
        windows={item.name: len(item.windows) for item in series},
        tp_weight=NAB_PROFILES[profile].true_positive,
    )
