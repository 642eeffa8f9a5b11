"""Shared fixtures: a seeded random generator for every test."""

from __future__ import annotations

import os

import numpy as np
import pytest

# Keras (dev extra) runs on its torch backend in tests, whatever else is installed; the guide's
# trap demonstrations choose their own backend in subprocesses (tests/keras/test_guide.py).
os.environ.setdefault("KERAS_BACKEND", "torch")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261122)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say loudly what was not tested: a skip is not a pass (a machine without Debian's
    chromium skips the dashboard's browser tests; one without ../shared, the benchmark data)."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    reasons: dict[str, int] = {}
    for report in skipped:
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else "skipped"
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    terminalreporter.write_sep("!", f"NOT TESTED: {len(skipped)} test(s) skipped", red=True)
    for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"  {count} x {reason}", red=True, bold=True)
    if any("chromium" in reason for reason in reasons):
        terminalreporter.write_line(
            "  The dashboard was not tested in a browser: install Debian's chromium and "
            "chromium-driver (as .ci/run does) and run the tests again.",
            red=True,
            bold=True,
        )
