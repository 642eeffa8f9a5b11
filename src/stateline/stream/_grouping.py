"""One rule for turning a list of events into engine calls without reordering any stream."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ._store import StreamIds

__all__ = ["event_rounds", "id_array", "plan_calls"]


def plan_calls(
    streams: Sequence[Hashable],
    kinds: Sequence[Hashable] | None = None,
    indices: Sequence[int] | None = None,
) -> list[list[int]]:
    """Group events into as few calls as keep every stream's events in order.

    Event ``i`` belongs to stream ``streams[i]`` and has kind ``kinds[i]``
    (what one engine call must share: the number of steps, whether ``seq`` is
    given). Each call holds events of one kind, a stream at most once, and a
    stream's events go to calls in the order they came, so running the calls
    in order applies every stream's events in order. Events are placed
    greedily, each in the first call that allows it. ``indices`` (default:
    all) picks the events to plan; the result holds their indices.

    >>> plan_calls(["a", "b", "a", "a"])  # a stream twice: a second round
    [[0, 1], [2], [3]]
    >>> plan_calls(["x", "x", "x", "y"], kinds=[1, 2, 1, 1])  # seq 0 (1 step), 1 (2), 3 (1)
    [[0, 3], [1], [2]]
    """
    chosen = list(range(len(streams))) if indices is None else list(indices)
    if kinds is None and len({streams[i] for i in chosen}) == len(chosen):
        return [chosen] if chosen else []  # distinct streams, one kind: one call
    calls: list[list[int]] = []
    call_kinds: list[Hashable] = []
    last: dict[Hashable, int] = {}
    for index in chosen:
        stream = streams[index]
        kind = None if kinds is None else kinds[index]
        position = last.get(stream, -1) + 1
        while position < len(calls) and call_kinds[position] != kind:
            position += 1
        if position == len(calls):
            calls.append([])
            call_kinds.append(kind)
        calls[position].append(index)
        last[stream] = position
    return calls


def id_array(stream_ids: StreamIds) -> NDArray[np.object_]:
    """Stream ids as a 1-D object array of the ids themselves (Python ints for integer arrays).

    >>> id_array(np.array([3, 4])).tolist(), id_array(["a", ("t", 1)]).shape
    ([3, 4], (2,))
    """
    if isinstance(stream_ids, np.ndarray) and stream_ids.ndim == 1:
        if stream_ids.dtype == object:
            same: NDArray[np.object_] = stream_ids  # type: ignore[assignment]
            return same  # already one (read only here: no copy)
        return stream_ids.astype(object)  # Python ints / strs, as a dict key must match
    return np.fromiter(stream_ids, dtype=object, count=len(stream_ids))


def event_rounds(ids: NDArray[np.object_], indices: NDArray[np.int64]) -> list[NDArray[np.int64]]:
    """Split events so that no stream appears twice in a round, keeping each stream's order.

    Round ``r`` holds every stream's ``r``-th event (what :func:`plan_calls`
    gives for events of one kind), found without Python work per event.

    >>> [r.tolist() for r in event_rounds(id_array(["a", "b", "a", "a"]), np.arange(4))]
    [[0, 1], [2], [3]]
    """
    if len(indices) == 0:
        return []
    chosen = ids[indices] if len(indices) != len(ids) else ids
    if len(set(chosen)) == len(chosen):  # the common case: distinct streams, one round
        return [indices]
    codes, _ = pd.factorize(chosen)
    occurrence = pd.Series(codes).groupby(codes).cumcount().to_numpy()
    order = np.argsort(occurrence, kind="stable")
    bounds = np.flatnonzero(np.diff(occurrence[order])) + 1
    return [indices[part] for part in np.split(order, bounds)]
