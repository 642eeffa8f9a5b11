"""NAB corpus scoring: reproduces the published numbers; the sweep finds the best threshold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stateline.anomaly import (
    NAB_CATEGORIES_WITH_ANOMALIES,
    NabSeries,
    load_nab,
    nab_corpus_score,
    nab_probation,
    nab_sweep,
    read_nab_results,
)
from stateline.anomaly._nab_corpus import window_rows

NAB = Path(__file__).resolve().parents[3] / "shared" / "data" / "nab-dev"
needs_nab = pytest.mark.skipif(not NAB.is_dir(), reason="NAB part not at ../shared/data/nab-dev")
PROFILES = {
    "standard": "standard",
    "reward_low_fp": "reward_low_FP_rate",
    "reward_low_fn": "reward_low_FN_rate",
}


@needs_nab
@pytest.mark.parametrize(
    ("detector", "published"), [("windowedGaussian", 27.33), ("numenta", 64.85)]
)
def test_published_outputs_score_as_nab_says(detector: str, published: float) -> None:
    """NAB's own outputs at NAB's own thresholds give the scores NAB published for this part."""
    series = load_nab(NAB)
    assert len(series) == 24
    thresholds = json.loads((NAB / "config" / "thresholds.json").read_text())
    scores = read_nab_results(NAB, detector)
    result = nab_corpus_score(series, scores, thresholds[detector]["standard"]["threshold"])
    assert round(result.normalised, 2) == published
    for name in NAB_CATEGORIES_WITH_ANOMALIES:
        assert -100 < result.category(name) <= 100


@needs_nab
def test_every_file_scores_as_nabs_own_score_column() -> None:
    """Per file and profile, our raw score equals the sum of NAB's per-row ``S(t)`` column.

    (Numenta's files only: the windowed Gaussian's columns were written at
    another threshold than the one NAB's table uses.)
    """
    detector = "numenta"
    series = load_nab(NAB)
    thresholds = json.loads((NAB / "config" / "thresholds.json").read_text())
    scores = read_nab_results(NAB, detector)
    for profile, key in PROFILES.items():
        result = nab_corpus_score(
            series, scores, thresholds[detector][key]["threshold"], profile=profile
        )
        for item in series:
            category, name = item.name.split("/")
            path = NAB / "results" / detector / category / f"{detector}_{name}"
            nab_column = pd.read_csv(path)[f"S(t)_{key}"].sum()
            assert result.files[item.name].raw == pytest.approx(nab_column, abs=1e-6), item.name


def test_window_rows_follow_nab_sweeper_on_repeated_stamps() -> None:
    """A repeated stamp (a clock change) maps to its first row, as NAB's sweeper finds it."""
    stamps = np.array(
        ["2024-01-01T00:00", "2024-01-01T01:00", "2024-01-01T01:00", "2024-01-01T02:00"],
        dtype="datetime64[ns]",
    )
    rows = window_rows(stamps, [["2024-01-01 01:00:00.000000", "2024-01-01 02:00:00.000000"]])
    assert rows.tolist() == [[1, 4]]
    assert nab_probation(4032) == 604 and nab_probation(100_000) == 750


def make_series(rng: np.random.Generator, index: int) -> NabSeries:
    rows = int(rng.integers(40, 120))
    starts = sorted(rng.choice(np.arange(2, rows - 8), size=int(rng.integers(0, 3)), replace=False))
    windows: list[list[int]] = []
    for start in starts:
        if windows and start <= windows[-1][1]:
            continue
        windows.append([int(start), int(min(rows, start + rng.integers(2, 7)))])
    stamps = np.arange(rows).astype("datetime64[m]").astype("datetime64[ns]")
    return NabSeries(
        name=f"cat{index % 2}/s{index}.csv",
        timestamps=stamps,
        values=np.zeros(rows),
        windows=np.array(windows, dtype=np.int64).reshape(-1, 2),
    )


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), profile=st.sampled_from(sorted(PROFILES)))
def test_sweep_finds_the_best_threshold(seed: int, profile: str) -> None:
    """The sweep's score equals the best of scoring every distinct threshold one by one."""
    rng = np.random.default_rng(seed)
    series = [make_series(rng, i) for i in range(int(rng.integers(1, 4)))]
    scale = float(rng.choice([1.0, 7.0]))  # scores need not lie in [0, 1]
    scores = {s.name: np.round(rng.uniform(size=len(s.values)) * scale, 1) for s in series}
    swept = nab_sweep(series, scores, profile=profile)
    levels = np.unique(np.concatenate(list(scores.values())))
    best = max(
        nab_corpus_score(series, scores, float(level), profile=profile).normalised
        for level in np.append(levels, np.inf)
    )
    assert swept.normalised == pytest.approx(best, abs=1e-9)
    assert swept.normalised >= 0.0  # never worse than detecting nothing


def test_bad_scores_are_refused_by_name() -> None:
    rng = np.random.default_rng(0)
    item = make_series(rng, 0)
    with pytest.raises(ValueError, match="inf"):
        nab_sweep([item], {item.name: np.full(len(item.values), np.inf)})
    with pytest.raises(ValueError, match="missing"):
        nab_sweep([item], {})
    with pytest.raises(ValueError, match="empty"):
        nab_sweep([], {})
    with pytest.raises(ValueError, match="NaN"):
        nab_corpus_score([item], {item.name: np.zeros(len(item.values))}, float("nan"))
