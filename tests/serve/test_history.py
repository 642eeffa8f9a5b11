"""StreamHistory against a plain list of every recorded row (growth, wrap, starts, ends, slots)."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from stateline.serve._history import StreamHistory

STREAMS = ["a", "b", "c", "d"]
SLOT = {"a": 0, "b": 1, "c": 0, "d": 2}  # a and c share a slot: rows are told apart by id


class GrowingHistory(StreamHistory):
    first_rows = 1  # so that small runs grow the ring, as a long-running server does


def expected_points(rows: list[dict[str, Any]], stream: str, points: int) -> list[tuple]:
    """What ``points`` should answer: the stream's kept rows since it last began."""
    mine = [row for row in rows if row["id"] == stream]
    cut = 0
    for position, row in enumerate(mine):
        if row["ends"]:
            cut = position + 1
    for position, row in enumerate(mine):
        if row["begins"] and position >= cut:
            cut = position
    mine = mine[cut:]
    shown = mine[-points:]
    before = mine[-len(shown) - 1]["next"] if len(mine) > len(shown) else None
    answer = []
    for position, row in enumerate(shown):
        forecast = shown[position - 1]["next"] if position else before
        answer.append((row["seq"], row["value"], forecast, row["next"]))
    return answer


call = st.lists(
    st.tuples(st.sampled_from(STREAMS), st.booleans(), st.booleans(), st.booleans()),
    min_size=1,
    max_size=7,
)


@settings(max_examples=150, deadline=None)
@given(
    points=st.integers(1, 6),
    streams=st.integers(1, 5),
    calls=st.lists(st.one_of(call, st.sampled_from(STREAMS)), min_size=1, max_size=40),
)
def test_points_match_every_recorded_row(points: int, streams: int, calls: list[Any]) -> None:
    history = GrowingHistory(points=points, streams=streams)
    capacity = points * streams
    rows: list[dict[str, Any]] = []
    counter = 0
    for entry in calls:
        if isinstance(entry, str):  # a delete
            history.forget(entry, SLOT[entry])
            for row in rows:
                if row["id"] == entry:
                    row["ends"] = True
            continue
        ids = np.array([stream for stream, *_ in entry], dtype=object)
        count = len(entry)
        seq = np.arange(counter, counter + count)
        value = seq.astype(float)
        following = value + 0.5
        start = np.array([rare_start and rare for _, rare_start, rare, _ in entry], dtype=bool)
        end = np.array([rare_end and rare for _, rare, _, rare_end in entry], dtype=bool)
        counter += count
        history.record(
            ids,
            np.array([SLOT[stream] for stream in ids], dtype=np.int64),
            seq=seq,
            targets=value.reshape(count, 1, 1),
            next=following.reshape(count, 1, 1),
            scores=np.zeros((count, 1)),
            flags=np.zeros((count, 1), dtype=bool),
            anomaly=np.zeros((count, 1)),
            level=np.zeros(count),
            start=start,
            end=end,
        )
        for position in range(count):
            rows.append(
                {
                    "id": ids[position],
                    "seq": int(seq[position]),
                    "value": [float(value[position])],
                    "next": [float(following[position])],
                    "begins": bool(start[position]),
                    "ends": bool(end[position]),
                }
            )
        rows = rows[-capacity:]  # the ring keeps the newest rows of all streams
    for stream in STREAMS:
        got = [
            (point["seq"], point["values"], point["forecast"], point["next"])
            for point in history.points(stream, SLOT[stream])
        ]
        assert got == expected_points(rows, stream, points), stream
