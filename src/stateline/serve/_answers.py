"""The JSON shape of the service's answers: one per event, NaN as null."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["blank_answer", "json_number", "json_seq", "nullable"]


def blank_answer(stream: str | None, status: str, *, error: str | None = None) -> dict[str, Any]:
    """An answer with nothing applied yet (the shape of every answer of the API).

    >>> blank_answer("a", "error", error="bad")["forecast"]
    []
    """
    answer: dict[str, Any] = {
        "stream": stream,
        "status": status,
        "seq": None,
        "forecast": [],
        "scores": [],
        "flags": [],
        "anomaly_scores": [],
        "level": None,
    }
    if error is not None:
        answer["error"] = error
    return answer


def json_number(value: float) -> float | None:
    """A float, or None (JSON null) for NaN and inf."""
    return None if not math.isfinite(value) else value


def json_seq(value: int) -> int | None:
    """A stream's last seq, or None for 'none yet' (stored as -1)."""
    return None if value < 0 else value


def nullable(array: NDArray[Any]) -> list[Any]:
    """``array.tolist()`` with NaN and inf as None (JSON null), for a whole group at once.

    >>> nullable(np.array([[1.0, np.nan], [np.inf, 2.0]]))
    [[1.0, None], [None, 2.0]]
    """
    values = np.asarray(array, dtype=np.float64)
    finite = np.isfinite(values)
    if finite.all():
        result: list[Any] = values.tolist()
        return result
    boxed = values.astype(object)
    boxed[~finite] = None
    listed: list[Any] = boxed.tolist()
    return listed
