"""`stateline replay` refuses a table whose stream keys the service would refuse, up front."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .test_main import run


def test_keys_the_service_refuses_are_named_before_anything_is_sent(tmp_path: Path) -> None:
    """From a review: replay sent the good streams' first steps, met `pump/1`, and stopped
    every stream half way. Nothing listens on the URL here: nothing may be sent."""
    table = tmp_path / "keys.csv"
    frame = pd.DataFrame({"key": ["Zürich Nord", "pump/1", "..", "ok"] * 3, "v": range(12)})
    frame.to_csv(table, index=False)
    done = run(
        "replay", str(table), "--group", "key", "--columns", "v", "--token", "t",
        "--url", "http://127.0.0.1:9",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "2 of 4 streams" in done.stderr and "pump/1" in done.stderr
    assert "Rename those keys" in done.stderr
