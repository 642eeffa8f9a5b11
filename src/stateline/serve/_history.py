"""The dashboard's memory: the last applied steps, in one ring of columns."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._answers import nullable

__all__ = ["StreamHistory"]


class StreamHistory:
    """The last ``points * streams`` steps the service applied, as arrays; ``points`` per stream.

    Recording a call is a handful of vectorised copies, whatever the number
    of events (no Python work per event). A stream's history is read back by
    :meth:`points`: its last ``points`` steps since it (re)started, each with
    its seq, observed targets, the forecast made for it before it came
    (``forecast``), the forecast it led to (``next``), score, flag, anomaly
    score and level. With more than ``streams`` streams active at once, a
    stream keeps fewer than ``points`` steps (the ring holds the latest ones
    of all streams).

    >>> history = StreamHistory(points=3, streams=2)
    >>> history.record(np.array(["a", "b"], dtype=object), np.array([0, 1]), seq=np.array([5, 0]),
    ...     targets=np.array([[[0.5], [1.5]], [[9.0], [9.0]]]), next=np.array([[[1.0], [2.0]],
    ...     [[9.0], [9.0]]]), scores=np.full((2, 2), np.nan), flags=np.zeros((2, 2), bool),
    ...     anomaly=np.full((2, 2), np.nan), level=np.array([3.0, 3.0]),
    ...     start=np.zeros(2, bool), end=np.zeros(2, bool))
    >>> [(point["seq"], point["forecast"], point["next"]) for point in history.points("a", 0)]
    [(4, None, [1.0]), (5, [1.0], [2.0])]
    """

    first_rows = 1024
    """Rows allocated at first; the ring doubles from there up to ``capacity``."""

    def __init__(self, *, points: int, streams: int) -> None:
        self.points_per_stream, self.streams = points, streams
        self.capacity = points * streams
        self._rows = 0
        self._head = 0  # where the next row goes
        self._written = 0
        self._arrays: dict[str, NDArray[Any]] = {}

    def record(
        self,
        ids: NDArray[np.object_],
        slots: NDArray[np.int64],
        *,
        seq: NDArray[np.int64],
        targets: NDArray[np.float64],
        next: NDArray[np.float64],
        scores: NDArray[np.float64],
        flags: NDArray[np.bool_],
        anomaly: NDArray[np.float64],
        level: NDArray[np.float64],
        start: NDArray[np.bool_],
        end: NDArray[np.bool_],
    ) -> None:
        """Record applied events: ``targets``/``next`` ``(n, k, targets)``, ``seq`` the last step's.

        ``slots`` are the streams' store slots (what reads look rows up by; an
        ended stream's slot from before it ended). An event with ``end``
        forgets its stream's history; ``start`` begins it anew (the service
        also begins anew a stream that came back ``restarted``: its earlier
        state, and so its earlier points, are lost).
        """
        events, steps = targets.shape[:2]
        if events == 0:
            return
        width = targets.shape[2]
        if not self._arrays:
            self._allocate(width)
        first = np.where(seq < 0, -1, seq - steps + 1)
        offsets = np.arange(steps)
        columns: dict[str, NDArray[Any]] = {
            "id": np.repeat(ids, steps),
            "slot": np.repeat(slots, steps),
            "seq": np.where(first[:, None] < 0, -1, first[:, None] + offsets).ravel(),
            "values": targets.reshape(-1, width),
            "next": next.reshape(-1, width),
            "score": scores.reshape(-1),
            "flag": flags.reshape(-1),
            "anomaly": anomaly.reshape(-1),
            "level": np.repeat(level, steps),
            "begins": (start[:, None] & (offsets == 0)).ravel(),
            "ends": np.repeat(end, steps),
        }
        self._write(columns)

    def record_one(
        self,
        stream: object,
        slot: int,
        *,
        seq: int,
        targets: list[float],
        next: list[float],
        score: float,
        flag: bool,
        anomaly: float,
        level: float,
    ) -> None:
        """:meth:`record` of one applied single step (no ``start``, no ``end``): the same row,
        written without building columns (what one step per request records)."""
        if not self._arrays:
            self._allocate(len(targets))
        self._reserve(self._rows + 1)
        size = self._rows_allocated
        where = self._head % size
        arrays = self._arrays
        arrays["id"][where] = stream
        arrays["slot"][where] = slot
        arrays["seq"][where] = seq if seq >= 0 else -1
        arrays["values"][where] = targets
        arrays["next"][where] = next
        arrays["score"][where] = score
        arrays["flag"][where] = flag
        arrays["anomaly"][where] = anomaly
        arrays["level"][where] = level
        arrays["begins"][where] = False
        arrays["ends"][where] = False
        self._head = (self._head + 1) % size
        self._rows = min(self._rows + 1, size)

    def points(self, stream: str, slot: int) -> list[dict[str, Any]]:
        """The stream's points, oldest first (empty if none are kept); ``slot`` its store slot."""
        mine = self._rows_of(stream, slot)
        get = self._arrays
        if len(mine) == 0:
            return []
        cut = 0  # the points since the stream last began: after its last end, from its last start
        ends = np.flatnonzero(get["ends"][mine])
        if len(ends):
            cut = int(ends[-1]) + 1
        begins = np.flatnonzero(get["begins"][mine])
        if len(begins) and begins[-1] >= cut:
            cut = int(begins[-1])
        mine = mine[cut:]
        shown = mine[-self.points_per_stream :]
        values, following = nullable(get["values"][shown]), nullable(get["next"][shown])
        scores, anomaly = nullable(get["score"][shown]), nullable(get["anomaly"][shown])
        levels, seqs = nullable(get["level"][shown]), get["seq"][shown].tolist()
        flags = get["flag"][shown].tolist()
        # The forecast for the oldest shown point: the point before it, if still kept.
        first = nullable(get["next"][mine[-len(shown) - 1]]) if len(mine) > len(shown) else None
        return [
            {
                "seq": None if seqs[j] < 0 else seqs[j],
                "values": values[j],
                "forecast": following[j - 1] if j else first,
                "next": following[j],
                "score": scores[j],
                "flag": flags[j],
                "anomaly_score": anomaly[j],
                "level": levels[j],
            }
            for j in range(len(shown))
        ]

    def forget(self, stream: str, slot: int) -> None:
        """Drop a stream's points (it was deleted)."""
        if self._rows:
            self._arrays["ends"][self._rows_of(stream, slot)] = True

    def _rows_of(self, stream: str, slot: int) -> NDArray[np.int64]:
        """Ring positions of the stream's rows, oldest first: found by slot (an integer
        compare), then checked by id (a slot is reused by other streams over time)."""
        if not self._rows:
            return np.zeros(0, dtype=np.int64)
        candidates = np.flatnonzero(self._arrays["slot"][: self._rows] == slot)
        candidates = candidates[self._arrays["id"][candidates] == stream]
        size = self._rows_allocated
        age = (candidates - (self._head - self._rows)) % size
        ordered: NDArray[np.int64] = candidates[np.argsort(age, kind="stable")]
        return ordered

    @property
    def _rows_allocated(self) -> int:
        return len(self._arrays["id"]) if self._arrays else 0

    def _write(self, columns: dict[str, NDArray[Any]]) -> None:
        count = len(columns["id"])
        if count > self.capacity:  # only the newest fit
            columns = {name: array[-self.capacity :] for name, array in columns.items()}
            count = self.capacity
        self._reserve(self._rows + count)
        size = self._rows_allocated
        where = (self._head + np.arange(count)) % size
        for name, array in columns.items():
            self._arrays[name][where] = array
        self._head = (self._head + count) % size
        self._rows = min(self._rows + count, size)

    def _reserve(self, rows: int) -> None:
        """Grow the ring (doubling, up to ``capacity``) so ``rows`` fit, keeping the order.

        The ring only grows before it is full, and it never wraps before it is
        full: its rows are the first ``self._rows``, in order, and move with one
        slice copy per column (a gather of a 500,000-row object column stalled a
        call by about 100 ms).
        """
        size = self._rows_allocated
        if rows <= size or size == self.capacity:
            return
        assert (self._head - self._rows) % max(size, 1) == 0, "the ring wrapped before it was full"
        new_size = min(self.capacity, max(self.first_rows, size * 2, rows))
        grown: dict[str, NDArray[Any]] = {}
        for name, array in self._arrays.items():
            fresh = np.zeros((new_size, *array.shape[1:]), dtype=array.dtype)
            fresh[: self._rows] = array[: self._rows]
            grown[name] = fresh
        self._arrays = grown
        self._head = self._rows

    def _allocate(self, width: int) -> None:
        kinds = {
            "id": ((), object), "slot": ((), np.int64), "seq": ((), np.int64),
            "values": ((width,), np.float64), "next": ((width,), np.float64),
            "score": ((), np.float64), "flag": ((), np.bool_),
            "anomaly": ((), np.float64), "level": ((), np.float64), "begins": ((), np.bool_),
            "ends": ((), np.bool_),
        }  # fmt: skip
        self._arrays = {
            name: np.zeros((0, *shape), dtype) for name, (shape, dtype) in kinds.items()
        }
