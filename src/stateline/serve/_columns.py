"""A batch as columns, and its answer as columns: the service's fast path.

One request carries ``n`` events as arrays (stream ids, seq, start, end and a
``(n, k, inputs)`` values matrix); the answer is arrays of the same length
(status, seq, forecast, scores, flags, anomaly scores, level) and the errors
of the rows that were refused, by row. No Python object is built per event on
the service side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._errors import DataError, describe
from ..stream._engine import STATUS_NAMES
from ..stream._grouping import id_array
from ..stream._sequence import SEQ_RULE, seq_out_of_range

__all__ = ["SEQ_RULE", "ColumnAnswer", "ColumnBatch", "seq_out_of_range"]

_NAMES = np.array(STATUS_NAMES, dtype=object)


@dataclass(frozen=True, eq=False)
class ColumnBatch:
    """``n`` events as columns; ``refused`` holds rows already refused (say, while decoding).

    ``values`` is ``(n, k, inputs)`` (``(n, inputs)`` is taken as ``k = 1``),
    in original units. ``seq`` (None: the service counts) is each event's
    first step's sequence number.

    >>> batch = ColumnBatch.of(["a", "b"], [[1.0], [2.0]], seq=[0, 0])
    >>> batch.values.shape, batch.seq.tolist(), batch.start.tolist()
    ((2, 1, 1), [0, 0], [False, False])
    """

    stream: NDArray[np.object_]
    values: NDArray[np.float64]
    seq: NDArray[np.int64] | None = None
    start: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    end: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    refused: dict[int, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        stream: Any,
        values: Any,
        *,
        seq: Any = None,
        start: Any = None,
        end: Any = None,
        refused: dict[int, str] | None = None,
    ) -> ColumnBatch:
        """Columns from lists or arrays, checked for shape (the names in errors are the fields)."""
        ids = id_array(stream)  # an object array is taken as is
        count = len(ids)
        array = np.asarray(values, dtype=np.float64)
        if array.ndim == 2:
            array = array[:, None, :]
        if array.ndim != 3 or array.shape[0] != count or array.shape[1] == 0:
            raise DataError(
                describe(
                    "values",
                    f"one row per stream id: ({count}, inputs) or ({count}, k, inputs), k >= 1",
                    f"shape {array.shape}",
                    problem="has the wrong shape.",
                )
            )
        refused = dict(refused or {})
        seqs = None
        if seq is not None:
            raw = np.asarray(seq)
            _column("seq", raw, count, np.int64)  # shape and kind
            outside = (raw < 0) | (raw > np.iinfo(np.int64).max)
            for row in np.flatnonzero(outside).tolist():  # only the bad rows
                refused.setdefault(row, seq_out_of_range(raw[row]))
            seqs = np.where(outside, 0, raw).astype(np.int64)
        return cls(
            stream=ids,
            values=array,
            seq=seqs,
            start=_column("start", start, count, np.bool_),
            end=_column("end", end, count, np.bool_),
            refused=refused,
        )

    def __len__(self) -> int:
        return len(self.stream)


@dataclass(frozen=True, eq=False)
class ColumnAnswer:
    """The answer to a :class:`ColumnBatch`, row for row.

    ``status`` holds codes (indices into :data:`stateline.stream.STATUS_NAMES`;
    :attr:`status_names` as names); ``seq`` the stream's last applied seq
    (-1: none); ``forecast`` ``(n, k, horizon, targets)`` in original units;
    ``scores``, ``flags``, ``anomaly_scores`` ``(n, k)``; ``level`` ``(n,)``.
    NaN where there is no number; ``errors`` by row.
    """

    stream: NDArray[np.object_]
    status: NDArray[np.int8]
    seq: NDArray[np.int64]
    forecast: NDArray[np.float64]
    scores: NDArray[np.float64]
    flags: NDArray[np.bool_]
    anomaly_scores: NDArray[np.float64]
    level: NDArray[np.float64]
    errors: dict[int, str]

    @property
    def status_names(self) -> NDArray[np.object_]:
        names: NDArray[np.object_] = _NAMES[self.status]
        return names

    @classmethod
    def empty(
        cls, stream: NDArray[np.object_], steps: int, horizon: int, targets: int
    ) -> ColumnAnswer:
        count = len(stream)
        return cls(
            stream=stream,
            status=np.full(count, STATUS_NAMES.index("error"), dtype=np.int8),
            seq=np.full(count, -1, dtype=np.int64),
            forecast=np.full((count, steps, horizon, targets), np.nan),
            scores=np.full((count, steps), np.nan),
            flags=np.zeros((count, steps), dtype=bool),
            anomaly_scores=np.full((count, steps), np.nan),
            level=np.full(count, np.nan),
            errors={},
        )


def _column(name: str, value: Any, count: int, dtype: Any) -> NDArray[Any]:
    if value is None:
        return np.zeros(count, dtype=dtype)
    array = np.asarray(value)
    if array.shape != (count,):
        raise DataError(
            describe(
                name,
                f"one value per event: {count}",
                f"shape {array.shape}",
                problem="has the wrong shape.",
            )
        )
    if dtype is np.bool_ and array.dtype != np.bool_:
        raise DataError(describe(name, "booleans", str(array.dtype), problem="is not boolean."))
    if dtype is np.int64 and array.dtype.kind not in "iu":
        raise DataError(describe(name, "integers", str(array.dtype), problem="are not integers."))
    converted: NDArray[Any] = array.astype(dtype)
    return converted
