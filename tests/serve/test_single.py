"""One event per call takes the service's float path: the same answers, state, history, metrics."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stateline.anomaly import DetectorConfig
from stateline.serve import Event, ServeConfig, StreamService, _service
from stateline.serve._single import step_single


def make_service(model_dir: Path, threshold: str, learn: bool) -> StreamService:
    return StreamService(
        ServeConfig(
            model=str(model_dir),
            token="t",
            snapshot_dir=tempfile.mkdtemp(),
            learn=learn,
            history=8,
            history_streams=2,
            detector=DetectorConfig(reference=6, warmup=2, threshold=threshold),  # type: ignore[arg-type]
        )
    )


KINDS = ["next"] * 12 + ["repeat", "gap", "stale", "none", "start", "end", "nan", "two", "shape"]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    events=st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from(KINDS), st.floats(-20, 40), st.booleans()),
        min_size=1,
        max_size=80,
    ),
    threshold=st.sampled_from(["quantile", "gaussian", "likelihood"]),
    learn=st.booleans(),
)
def test_one_event_answers_as_the_batch_path(
    model_dir: Path, events: list[tuple[int, str, float, bool]], threshold: str, learn: bool
) -> None:
    """Calls of one event, or of several (``joined``: with the call before, as the coalescer
    gathers single steps), on both paths."""
    fast = make_service(model_dir, threshold, learn)
    slow = make_service(model_dir, threshold, learn)
    slow.single_fast_path = False
    next_seq = [0, 0, 0]
    calls: list[list[Event]] = []
    for stream, kind, value, joined in events:
        seq: int | None = next_seq[stream]
        values: Any = [value]
        if kind == "repeat":
            seq = max(0, seq - 1)
        elif kind == "gap":
            seq += 2
        elif kind == "stale":
            seq = max(0, seq - 3)
        elif kind == "none":
            seq = None
        elif kind == "nan":
            values = [float("nan")]
        elif kind == "two":
            values = [[value], [value + 1]]
        elif kind == "shape":
            values = [value, value]
        event = Event(f"s{stream}", values, seq, start=kind == "start", end=kind == "end")
        if joined and calls:
            calls[-1].append(event)
        else:
            calls.append([event])
        if seq is not None and kind in ("next", "gap"):
            next_seq[stream] = seq + 1
    for t, call in enumerate(calls):
        # a call of several distinct streams goes one event at a time: as if each came alone
        alone = len({event.stream for event in call}) == len(call)
        expected = (
            [answer for event in call for answer in slow.step([event], now=float(t))]
            if alone
            else slow.step(call, now=float(t))
        )
        got = fast.step(call, now=float(t))
        assert json.dumps(got) == json.dumps(expected)  # NaN, None and -0.0 told apart
    assert json.dumps(fast.streams()) == json.dumps(slow.streams())
    for name in ("s0", "s1", "s2"):
        if name in fast.store:
            assert json.dumps(fast.stream(name)) == json.dumps(slow.stream(name))
    assert without_batches(fast.metrics.render()) == without_batches(slow.metrics.render())
    assert fast.metrics.batch.count == len(calls)


def without_batches(metrics: str) -> str:
    """The metrics less the events-per-call histogram (the reference calls one at a time)."""
    return "\n".join(line for line in metrics.splitlines() if "batch_events" not in line)


def test_the_float_path_is_taken(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[str] = []

    def counted(service: StreamService, event: Event, values: Any, now: float | None) -> Any:
        answer = step_single(service, event, values, now)
        if answer is not None:
            taken.append(answer["status"])
        return answer

    monkeypatch.setattr(_service, "step_single", counted)
    service = make_service(model_dir, "quantile", True)
    service.step([Event("a", [10.0], 0)])  # a new stream: the batch path
    for seq in range(1, 20):
        (answer,) = service.step([Event("a", [10.0 + seq % 3], seq)])
        assert answer["status"] == "ok"
        assert (answer["scores"][0] is not None) == (seq >= 5)
    assert service.step([Event("a", [1.0], 19)])[0]["status"] == "duplicate"
    assert service.step([Event("a", [1.0], 25)])[0]["status"] == "gap"  # the batch path
    assert taken == ["ok"] * 19 + ["duplicate"]
    assert service.metrics.batch.count == 22
