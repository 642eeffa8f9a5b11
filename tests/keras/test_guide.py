"""The trap demonstrations of docs/keras.md, each run as written on the backend it names."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "keras.md"
# a script block whose first line is "# trap: NAME", then the text block of what it prints
TRAP = re.compile(r"```python\n(# trap: ([\w-]+)\n.*?)```\n\n```text\n(.*?)```", re.S)
TRAPS = {name: (code, printed) for code, name, printed in TRAP.findall(GUIDE.read_text())}
BACKENDS = re.compile(r'os\.environ\["KERAS_BACKEND"\] = "(\w+)"')


def test_the_guide_has_every_trap_of_the_issue() -> None:
    assert set(TRAPS) >= {
        "fit-never-resets",
        "validation-advances-state",
        "state-not-saved",
        "jax-predict-carries-nothing",
        "partial-batch-fails",
        "partial-batch-padded",
    }


@pytest.mark.parametrize("name", sorted(TRAPS))
def test_trap_prints_what_the_guide_says(name: str) -> None:
    code, printed = TRAPS[name]
    backend = BACKENDS.search(code)
    assert backend, f"trap {name} must choose its Keras backend"
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend.group(1)]
    if subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is missing: the dev extra installs it")
        pytest.skip(f"{module} is not installed (pip install -e '.[dev]')")
    env = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == printed
