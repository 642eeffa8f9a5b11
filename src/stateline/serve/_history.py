"""The dashboard's memory: the last points of the most recently active streams."""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["StreamHistory"]


class StreamHistory:
    """The last ``points`` steps of the ``streams`` most recently active streams.

    One point per applied step: its seq, observed targets, the forecast made
    for it before it came (``forecast``), the forecast it led to (``next``),
    score, flag, anomaly score and level.

    >>> history = StreamHistory(points=2, streams=1)
    >>> answer = {"seq": 5, "forecast": [[[1.0]], [[2.0]]], "scores": [None, 0.5],
    ...           "flags": [False, True], "anomaly_scores": [None, 0.9], "level": 3.0}
    >>> history.remember("a", np.array([[0.5], [1.5]]), answer, start=False, end=False)
    >>> [(point["seq"], point["forecast"], point["next"]) for point in history.points("a")]
    [(4, None, [1.0]), (5, [1.0], [2.0])]
    """

    def __init__(self, *, points: int, streams: int) -> None:
        self.points_per_stream, self.streams = points, streams
        self._points: OrderedDict[str, deque[dict[str, Any]]] = OrderedDict()

    def points(self, stream: str) -> list[dict[str, Any]]:
        """The stream's points, oldest first (empty if none are kept)."""
        return list(self._points.get(stream, ()))

    def forget(self, stream: str) -> None:
        self._points.pop(stream, None)

    def remember(
        self,
        stream: str,
        targets: NDArray[np.float64],
        answer: dict[str, Any],
        *,
        start: bool,
        end: bool,
    ) -> None:
        """Add an applied event's steps (``targets`` ``(k, targets)``, its ``answer``)."""
        if end:
            self.forget(stream)
            return
        points = self._points.get(stream)
        if points is None or start:
            points = deque(maxlen=self.points_per_stream)
            self._points[stream] = points
            if len(self._points) > self.streams:
                self._points.popitem(last=False)
        self._points.move_to_end(stream)
        last = answer["seq"]
        first = None if last is None else last - len(targets) + 1
        for j, row in enumerate(targets.tolist()):
            points.append(
                {
                    "seq": None if first is None else first + j,
                    "values": row,
                    "forecast": points[-1]["next"] if points else None,
                    "next": answer["forecast"][j][0],
                    "score": answer["scores"][j],
                    "flag": answer["flags"][j],
                    "anomaly_score": answer["anomaly_scores"][j],
                    "level": answer["level"],
                }
            )
