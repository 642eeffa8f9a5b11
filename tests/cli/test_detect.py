"""``stateline detect`` run as users run it, on a real SKAB experiment read from ../shared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .test_main import run

EXPERIMENT = Path(__file__).resolve().parents[3] / "shared/data/skab/data/valve1/1.csv"


@pytest.mark.skipif(not EXPERIMENT.is_file(), reason="SKAB checkout not at ../shared")
def test_detect_writes_scores_plot_and_summary(tmp_path: Path) -> None:
    output = tmp_path / "out"
    result = run(
        "detect", str(EXPERIMENT), "--sep", ";", "--time", "datetime", "--label", "anomaly",
        "--ignore", "changepoint", "--epochs", "10", "--hidden", "16", "--output", str(output),
        "--threshold", "quantile",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    scores = pd.read_csv(output / "scores.csv")
    assert list(scores.columns) == [
        "datetime", "step", "score", "anomaly_score", "threshold", "flag", "label",
    ]  # fmt: skip
    assert scores.anomaly_score[:400].isna().all()
    assert scores.anomaly_score[400:].between(0, 1).all()
    assert len(scores) == len(pd.read_csv(EXPERIMENT, sep=";"))
    labelled = scores[scores.label == 1]
    assert labelled.flag.mean() > 0.5  # most of the labelled anomaly is flagged
    assert scores.flag[:400].sum() == 0  # nothing in the normal part it calibrated on
    assert (output / "detect.png").stat().st_size > 10_000
    summary = (output / "summary.md").read_text()
    assert "F1 (point-wise)" in summary and "NAB" in summary


def test_detect_nab_style_takes_a_share_and_rows_in_file_order(tmp_path: Path) -> None:
    """``--reference 15%``, a clock change kept in file order with a warning, anomaly scores."""
    rng = np.random.default_rng(0)
    times = pd.date_range("2024-01-01", periods=1728, freq="15min").to_numpy().copy()
    times[500] = times[499]  # a repeated stamp
    times[900] = times[880]  # a step back
    hours = np.arange(1728) / 4.0
    values = 50 + 10 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 0.5, 1728)
    values[1400:] += 25.0  # a jump to a new level
    table = tmp_path / "stream.csv"
    pd.DataFrame({"timestamp": times, "value": values}).to_csv(table, index=False)
    output = tmp_path / "out"
    result = run(
        "detect", str(table), "--time", "timestamp", "--reference", "15%",
        "--epochs", "5", "--hidden", "8", "--output", str(output),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 time stamp(s) repeat or step back" in result.stdout
    scores = pd.read_csv(output / "scores.csv")
    reference = int(0.15 * 1728)
    assert len(scores) == 1728 and scores.step.tolist() == list(range(1728))
    assert scores.anomaly_score[:reference].isna().all()
    assert scores.anomaly_score[reference:].between(0, 1).all()
    assert scores.anomaly_score[1400:1410].max() >= 0.9  # the jump raises an alarm at once
    assert scores.flag[1400:1410].sum() >= 1
    summary = (output / "summary.md").read_text()
    assert "time of day as inputs" in summary and f"| {reference} | 2 |" in summary
    bad = run("detect", str(table), "--time", "timestamp", "--reference", "150%")
    assert bad.returncode == 1 and "--reference" in bad.stderr and "150%" in bad.stderr


def test_detect_errors_name_the_problem(tmp_path: Path) -> None:
    missing = run("detect", str(tmp_path / "nope.csv"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    table = tmp_path / "short.csv"
    pd.DataFrame({"a": range(50), "b": range(50)}).to_csv(table, index=False)
    short = run("detect", str(table), "--predictor", "moving_average")
    assert short.returncode == 1 and "--reference" in short.stderr
    unknown = run("detect", str(table), "--ignore", "zzz")
    assert unknown.returncode == 1 and "zzz" in unknown.stderr
    small = run("detect", str(table), "--reference", "5", "--predictor", "moving_average")
    assert small.returncode == 1 and "--reference is too small" in small.stderr
    capped = run("detect", str(table), "--reference", "20", "--max-reference", "3")
    assert capped.returncode == 1 and "--max-reference is too small" in capped.stderr
    stamps = pd.date_range("2024-01-01", periods=50, freq="h").to_series().reset_index(drop=True)
    stamps[30] = pd.NaT
    gappy = tmp_path / "gappy.csv"
    pd.DataFrame({"time": stamps, "a": np.arange(50.0)}).to_csv(gappy, index=False)
    gap = run("detect", str(gappy), "--time", "time", "--reference", "20")
    assert gap.returncode == 1 and "missing time stamps" in gap.stderr and "row 30" in gap.stderr
    # From a review: with --features left out, a text column stopped the run; it is left
    # out by name (the help says "all numeric")
    worded = tmp_path / "worded.csv"
    pd.DataFrame({"a": np.sin(np.arange(80.0)), "note": ["ok"] * 80}).to_csv(worded, index=False)
    taken = run("detect", str(worded), "--reference", "40", "--predictor", "moving_average",
                "--output", str(tmp_path / "worded"))  # fmt: skip
    assert taken.returncode == 0, taken.stderr
    assert "not sensors (text, left out): ['note']" in taken.stdout
    # labels all 0, or inside the reference part: said in words, not a "nan" delay
    labelled = tmp_path / "labelled.csv"
    label = np.zeros(80, dtype=int)
    pd.DataFrame({"a": np.sin(np.arange(80.0)), "y": label}).to_csv(labelled, index=False)
    for marked, said in ((None, "No step is labelled"), (10, "1 labelled step(s) lie")):
        if marked is not None:
            label[marked] = 1
            pd.DataFrame({"a": np.sin(np.arange(80.0)), "y": label}).to_csv(labelled, index=False)
        out = tmp_path / f"labelled-{marked}"
        scored = run("detect", str(labelled), "--label", "y", "--reference", "40",
                     "--predictor", "moving_average", "--output", str(out))  # fmt: skip
        assert scored.returncode == 0, scored.stderr
        summary = (out / "summary.md").read_text()
        assert said in summary and "nan" not in summary
    words = tmp_path / "words.csv"
    pd.DataFrame({"note": ["1,5"] * 80}).to_csv(words, index=False, sep=";")
    none = run("detect", str(words), "--sep", ";", "--reference", "40")
    assert none.returncode == 1 and "decimal comma" in none.stderr


def test_each_stream_is_scored_as_if_alone(tmp_path: Path) -> None:
    """With --group and --reference P%, a stream's scores do not depend on the other streams."""
    rng = np.random.default_rng(0)
    a = np.sin(np.arange(300) / 5) + rng.normal(0, 0.1, 300)
    b = rng.normal(0, 1, 60)
    both = pd.DataFrame({"g": ["a"] * 300 + ["b"] * 60, "v": np.concatenate([a, b])})
    alone = both[both.g == "a"]
    scores = []
    for name, frame in (("both", both), ("alone", alone)):
        path = tmp_path / f"{name}.csv"
        frame.to_csv(path, index=False)
        output = tmp_path / f"out-{name}"
        result = run(
            "detect", str(path), "--group", "g", "--reference", "30%",
            "--predictor", "moving_average", "--output", str(output),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        frame_scores = pd.read_csv(output / "scores.csv")
        scores.append(frame_scores[frame_scores.g == "a"].reset_index(drop=True))
    pd.testing.assert_frame_equal(scores[0], scores[1])
