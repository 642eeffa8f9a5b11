"""The Python examples of docs/serving.md that need a server, run as written against a real one."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .conftest import TOKEN

GUIDE = Path(__file__).parents[2] / "docs" / "serving.md"


def guide_examples() -> list[str]:
    """The guide's ``python`` blocks that are not doctests (those run with the doctests)."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    return [block for block in blocks if ">>>" not in block]


def test_the_column_client_example_steps_two_streams(server: str) -> None:
    examples = guide_examples()
    assert examples, "docs/serving.md lost its ColumnClient example"
    for example in examples:
        assert "http://127.0.0.1:8000" in example  # the address `stateline serve` binds
        namespace: dict[str, object] = {"token": TOKEN}
        exec(compile(example.replace("http://127.0.0.1:8000", server), str(GUIDE), "exec"),
             namespace)  # fmt: skip
        answer = namespace["answer"]
        assert list(answer.status_names) == ["ok", "ok"]  # type: ignore[attr-defined]
        assert np.isfinite(answer.forecast[:, 0, 0, 0]).all()  # type: ignore[attr-defined]
