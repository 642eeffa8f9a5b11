"""The data layer must import no deep-learning framework."""

from __future__ import annotations

import subprocess
import sys

import pytest

FRAMEWORKS = ("torch", "tensorflow", "jax", "keras", "flax")


@pytest.mark.parametrize("module", ["stateline.data", "stateline"])
def test_import_pulls_in_no_deep_learning_framework(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        f"loaded = sorted(m for m in {FRAMEWORKS!r} if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_public_api_is_reexported_in_one_place() -> None:
    import stateline

    for name in stateline.__all__:
        assert hasattr(stateline, name), name
