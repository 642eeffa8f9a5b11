"""The command line, run as users run it: the installed ``stateline`` script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = shutil.which("stateline", path=str(Path(sys.executable).parent))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    assert SCRIPT is not None, "the stateline console script is not installed"
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=300)


def test_help_answers_at_once_with_examples() -> None:
    started = time.perf_counter()
    result = run("--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout and "stateline demo" in result.stdout
    # Heavy imports are lazy: --help must not load torch (generous bound, not a benchmark).
    assert time.perf_counter() - started < 20


def test_no_command_prints_help_and_exits_2() -> None:
    result = run()
    assert result.returncode == 2
    assert "usage:" in result.stdout


def test_lanes_reports_a_layout(tmp_path: Path) -> None:
    path = tmp_path / "streams.csv"
    rows = ["t,sensor,value"] + [f"{t},{s},{t * 0.5}" for s in "ab" for t in range(100)]
    path.write_text("\n".join(rows), encoding="utf-8")
    result = run(
        "lanes",
        str(path),
        "--time",
        "t",
        "--group",
        "sensor",
        "--lanes",
        "4",
        "--chunk",
        "16",
        "--split",
    )
    assert result.returncode == 0, result.stderr
    assert "efficiency" in result.stdout
    assert "200" in result.stdout


def test_bad_path_is_a_clear_error_with_exit_code_1(tmp_path: Path) -> None:
    result = run("lanes", str(tmp_path / "missing.csv"), "--lanes", "1", "--chunk", "1")
    assert result.returncode == 1
    assert "does not exist" in result.stderr


def test_bad_column_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("t,x\n0,1\n1,2\n", encoding="utf-8")
    result = run("lanes", str(path), "--time", "time", "--lanes", "1", "--chunk", "1")
    assert result.returncode == 1
    assert "missing ['time']" in result.stderr


@pytest.mark.parametrize("flag", ["--lanes", "--steps"])
def test_demo_refuses_bad_sizes(tmp_path: Path, flag: str) -> None:
    result = run("demo", "--output", str(tmp_path), flag, "0")
    assert result.returncode == 1
    assert "integers >= 1" in result.stderr


def test_demo_trains_streams_and_writes_report_plots_and_model(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("demo", "--output", str(out), "--epochs", "15")
    assert result.returncode == 0, result.stderr
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "seasonal naive" in report and "lane efficiency" in report
    for name in ("series.png", "lanes.png", "forecast.png", "anomalies.png", "training.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "step computations" in result.stdout and "one-hour-ahead MAE" in result.stdout
    # The LSTM beats both baselines on the held-back part (#19), and its detector beats the
    # moving average on NAB.
    rows = [line.strip("|").split("|") for line in report.splitlines() if line.startswith("| ")]
    cells = {}
    for row in rows:
        cells.setdefault(row[0].strip(), []).append([c.strip() for c in row[1:]])
    seasonal = float(cells["stateline LSTM, reading + reading 23 h back"][0][0])
    assert seasonal < float(cells["persistence (last hour)"][0][0])
    assert seasonal < float(cells["seasonal naive (same hour yesterday)"][0][0])
    lstm, average = cells["stateline LSTM, readings only"][1], cells["moving average (6 h)"][0]
    assert float(lstm[6]) > float(average[6]) + 10  # NAB, standard profile
    assert "false flags fall 23 or 24 h after a faulty reading" in report
    assert "equal the offline ones" in report
    assert (out / "model" / "weights.pt").is_file() and (out / "model" / "columns.json").is_file()
    assert "fault" in (out / "held_back.csv").read_text().splitlines()[0]
    assert json.loads((out / "model" / "columns.json").read_text())["target"] == ["temp"]
