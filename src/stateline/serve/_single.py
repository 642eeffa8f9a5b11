"""One single-step event of a held stream through the service, without building arrays.

What one step per request (``POST /v1/streams/{id}/steps``) costs the service
was mostly fixed costs of the batch path: about 150 NumPy calls on arrays of
one row (grouping, scaling, the detector's vectorised scoring, the answer's
arrays, the dashboard's columns). :func:`step_single` takes the common case,
an event with one step of a stream the store holds, applied with status
``ok`` or answered as a ``duplicate``, through the detector's float path
(:mod:`stateline.stream._detector_one`) and writes the answer, the history row
and the metrics directly. The answer, the state and the history are the same
as the batch path's (``tests/serve/test_single.py`` compares both on random
streams); for anything else it returns None and changes nothing, and the
caller takes the batch path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..stream._engine import OK, STATUS_NAMES
from ..stream._grouping import id_array
from ._answers import blank_answer, json_number, json_seq, nullable
from ._events import Event

if TYPE_CHECKING:
    from ._service import StreamService

__all__ = ["step_single"]


def step_single(
    service: StreamService, event: Event, values: NDArray[np.float64], now: float | None
) -> dict[str, Any] | None:
    """The answer to one event as :meth:`StreamService.step` gives it, or None (nothing
    changed: take the batch path). ``values`` are the event's, as
    :func:`~._events.event_values` checked them; the caller counts the answer in the
    ``steps`` and ``batch`` metrics."""
    detector = service.detector
    if detector is None or event.start or event.end:
        return None
    seq = None if event.seq is None else int(event.seq or 0)
    served = service.served
    if len(values) != 1:
        return None  # several steps: the batch path
    with service.lock:
        scaled = served.scale(values)  # (1, inputs), as the batch path scales each step
        one = detector._step_one(event.stream, scaled, seq, now)
        if one is None:
            return None
        applied = one.code == OK
        learner = service.learner
        if learner is not None:
            learner.observe(
                id_array([event.stream]),
                scaled[None],
                applied=np.array([applied]),
                flags=np.array([[one.flag]]),
            )
        slot = one.slot
        level = float(detector.columns.level[slot])
        last_seq = int(service.store.last_seq[slot])
        forecast = served.unscale(one.prediction[None])[0]  # (horizon, targets)
        answer = blank_answer(event.stream, STATUS_NAMES[one.code])
        answer["forecast"] = [nullable(forecast)]
        answer["scores"] = [json_number(one.score)]
        answer["flags"] = [one.flag]
        answer["anomaly_scores"] = [json_number(one.anomaly)]
        answer["level"] = json_number(level)
        answer["seq"] = json_seq(last_seq)
        metrics = service.metrics
        metrics.flags.inc(amount=float(one.flag))
        if applied:
            service.history.record_one(
                event.stream,
                slot,
                seq=last_seq,
                targets=values[0, : served.targets].tolist(),
                next=forecast[0].tolist(),
                score=one.score,
                flag=one.flag,
                anomaly=one.anomaly,
                level=level,
            )
    return answer
