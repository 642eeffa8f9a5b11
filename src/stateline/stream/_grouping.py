"""One rule for turning a list of events into engine calls without reordering any stream."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

__all__ = ["plan_calls"]


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
