"""``stateline detect`` run as users run it, on a real SKAB experiment read from ../shared."""

from __future__ import annotations

from pathlib import Path

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
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    scores = pd.read_csv(output / "scores.csv")
    assert list(scores.columns) == ["datetime", "step", "score", "threshold", "flag", "label"]
    assert len(scores) == len(pd.read_csv(EXPERIMENT, sep=";"))
    labelled = scores[scores.label == 1]
    assert labelled.flag.mean() > 0.5  # most of the labelled anomaly is flagged
    assert scores.flag[:400].sum() == 0  # nothing in the normal part it calibrated on
    assert (output / "detect.png").stat().st_size > 10_000
    summary = (output / "summary.md").read_text()
    assert "F1 (point-wise)" in summary and "NAB" in summary


def test_detect_errors_name_the_problem(tmp_path: Path) -> None:
    missing = run("detect", str(tmp_path / "nope.csv"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    table = tmp_path / "short.csv"
    pd.DataFrame({"a": range(50), "b": range(50)}).to_csv(table, index=False)
    short = run("detect", str(table), "--predictor", "moving_average")
    assert short.returncode == 1 and "--reference" in short.stderr
    unknown = run("detect", str(table), "--ignore", "zzz")
    assert unknown.returncode == 1 and "zzz" in unknown.stderr
