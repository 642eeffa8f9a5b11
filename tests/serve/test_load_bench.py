"""bench/serve.py runs end to end: the single-step rows, their floor, and the exactly-once check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "serve.py"


def test_the_load_test_runs_and_counts_every_step_once(model_dir: Path) -> None:
    command = [sys.executable, str(BENCH), "--model", str(model_dir), "--modes", "single,arrow"]
    command += ["--seconds", "1", "--skip-peers", "--single-rate", "50"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for shown in ("closed loop", "paced: 4", "floor: bench/bare_asgi.py", "this machine alone"):
        assert shown in out, out[-3000:]
    assert "-> exactly once" in out and "FAILED" not in out
