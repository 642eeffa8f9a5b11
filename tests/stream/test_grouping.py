"""One event grouper: any interleaving of events, with mixed step counts, repeated streams,
resends and gaps, gives what calling the engine one event at a time gives (#15, finding 1)."""

from __future__ import annotations

import asyncio

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stateline.nn import ModelConfig, SequenceModel
from stateline.stream import MicroBatcher, StateStore, Status, StreamEngine
from stateline.stream._grouping import event_rounds, id_array, plan_calls

Event = tuple[str, int, np.ndarray]  # stream, seq, values (k, inputs)


def make_engine() -> StreamEngine:
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(inputs=2, hidden=6, outputs=1)).eval()
    return StreamEngine(model, StateStore(model))


events_strategy = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.integers(1, 3),  # steps in the event
        st.sampled_from(["next", "next", "next", "resend", "skip"]),
    ),
    min_size=1,
    max_size=25,
)


def make_events(spec: list[tuple[str, int, str]], seed: int) -> list[Event]:
    """Events in order (``seq`` numbers an event's first step); a resend repeats the stream's
    last event's seq, a skip leaves a gap."""
    rng = np.random.default_rng(seed)
    following: dict[str, int] = {}
    previous: dict[str, Event] = {}
    events = []
    for stream, k, kind in spec:
        if kind == "resend" and stream in previous:
            events.append(previous[stream])
            continue
        seq = following.get(stream, 0) + (2 if kind == "skip" else 0)
        event = (stream, seq, rng.normal(size=(k, 2)).astype(np.float32))
        following[stream] = seq + k
        previous[stream] = event
        events.append(event)
    return events


def one_at_a_time(events: list[Event]) -> tuple[list[str], list[np.ndarray]]:
    engine = make_engine()
    statuses, predictions = [], []
    for stream, seq, values in events:
        result = engine.step([stream], values[None], seq=[seq])
        statuses.append(result.status[0])
        predictions.append(result.predictions[0])
    return statuses, predictions


@settings(max_examples=60, deadline=None)
@given(
    streams=st.lists(st.sampled_from("abcd"), min_size=0, max_size=30),
    kinds=st.lists(st.integers(1, 3), min_size=30, max_size=30),
)
def test_plan_keeps_each_streams_order_one_kind_per_call(
    streams: list[str], kinds: list[int]
) -> None:
    calls = plan_calls(streams, kinds[: len(streams)])
    placed = sorted(index for call in calls for index in call)
    assert placed == list(range(len(streams)))
    where = {index: position for position, call in enumerate(calls) for index in call}
    for call in calls:
        assert len({kinds[i] for i in call}) == 1
        assert len({streams[i] for i in call}) == len(call)
    for first in range(len(streams)):
        for later in range(first + 1, len(streams)):
            if streams[first] == streams[later]:
                assert where[first] < where[later]


def test_the_reported_reordering_is_gone() -> None:
    """seq 0 (1 step), seq 1 (2 steps), seq 3 (1 step) submitted together: all applied, in order
    (the batcher used to step both 1-step events first and answer the 2-step one stale)."""
    rng = np.random.default_rng(0)
    events = [
        ("x", 0, rng.normal(size=(1, 2)).astype(np.float32)),
        ("x", 1, rng.normal(size=(2, 2)).astype(np.float32)),
        ("x", 3, rng.normal(size=(1, 2)).astype(np.float32)),
    ]
    statuses, _ = through_batcher(events)
    assert statuses == [Status.OK, Status.OK, Status.OK]


def through_batcher(events: list[Event]) -> tuple[list[str], list[np.ndarray]]:
    engine = make_engine()

    async def main() -> list:
        async with MicroBatcher(engine, max_events=1024, max_delay_us=20_000) as batcher:
            return await asyncio.gather(
                *(batcher.step(stream, values, seq=seq) for stream, seq, values in events)
            )

    results = asyncio.run(main())
    return [r.status for r in results], [
        r.prediction if len(values) > 1 else r.prediction[None]
        for r, (_, _, values) in zip(results, events, strict=True)
    ]


@settings(max_examples=40, deadline=None)
@given(spec=events_strategy, seed=st.integers(0, 1000))
def test_micro_batcher_equals_one_event_at_a_time(
    spec: list[tuple[str, int, str]], seed: int
) -> None:
    events = make_events(spec, seed)
    expected_status, expected = one_at_a_time(events)
    statuses, predictions = through_batcher(events)
    assert statuses == expected_status
    for got, want in zip(predictions, expected, strict=True):
        np.testing.assert_allclose(got.reshape(want.shape), want, atol=1e-6)


@settings(max_examples=200, deadline=None)
@given(
    streams=st.lists(st.one_of(st.sampled_from("abcde"), st.integers(0, 4)), max_size=40),
    data=st.data(),
)
def test_vectorised_rounds_are_the_planner_for_one_kind(
    streams: list[object], data: st.DataObject
) -> None:
    """event_rounds (no Python per event) gives exactly plan_calls' calls for any subset."""
    indices = sorted(
        data.draw(st.sets(st.integers(0, max(len(streams) - 1, 0)))) if streams else []
    )
    rounds = event_rounds(id_array(streams), np.asarray(indices, dtype=np.int64))
    assert [r.tolist() for r in rounds] == plan_calls(streams, indices=indices)
