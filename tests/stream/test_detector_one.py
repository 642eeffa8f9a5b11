"""The detector's one-event float path gives the vectorised path's numbers, to the bit."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stateline.anomaly import DetectorConfig
from stateline.nn import ModelConfig, SequenceModel
from stateline.stream import StateStore, StreamDetector, StreamEngine
from stateline.stream._engine import STATUS_NAMES

INPUTS = 3


def make_detector(
    targets: int, config: DetectorConfig, *, learn: bool, learn_flagged: bool, cell: str
) -> StreamDetector:
    torch.manual_seed(7)
    model = SequenceModel(ModelConfig(inputs=INPUTS, hidden=5, outputs=targets, cell=cell)).eval()
    engine = StreamEngine(model, StateStore(model, initial_slots=2))
    return StreamDetector(engine, config, learn=learn, learn_flagged=learn_flagged)


def same(a: Any, b: Any) -> bool:
    """Equal arrays or floats, NaN equal to NaN, and the same sign of zero (of numbers)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind != "f":
        return bool(np.array_equal(a, b))
    numbers = ~np.isnan(a)
    signs = np.signbit(a[numbers]) == np.signbit(b[numbers])
    return bool(np.array_equal(a, b, equal_nan=True) and signs.all())


def assert_same_state(fast: StreamDetector, slow: StreamDetector) -> None:
    one, other = fast.engine.store, slow.engine.store
    assert list(one._slot_of.items()) == list(other._slot_of.items())
    for name, (array, *_) in one._columns.items():
        assert same(array, other._columns[name][0]), name
    assert same(one.last_seq, other.last_seq)
    assert same(one.last_output, other.last_output)
    assert same(one.last_seen, other.last_seen)
    for mine, theirs in zip(one.numpy_parts(), other.numpy_parts(), strict=True):
        assert same(mine, theirs)
    assert fast.flagged == slow.flagged
    assert (fast.engine.calls, fast.engine.events) == (slow.engine.calls, slow.engine.events)


events = st.lists(
    st.tuples(
        st.integers(0, 2),  # stream
        st.sampled_from(["next"] * 12 + ["repeat", "gap", "stale", "none", "start", "end"]),
        st.floats(-3, 3),  # the level of the values
        st.sampled_from([1.0] * 8 + [0.0, 1e3, 1e39]),  # a jump now and then, even past float32
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=60, deadline=None)
@given(
    events=events,
    targets=st.integers(1, 3),
    combine=st.sampled_from(["mean", "max", "trimmed"]),
    threshold=st.sampled_from(["quantile", "gaussian", "dynamic", "likelihood"]),
    learn=st.booleans(),
    learn_flagged=st.booleans(),
    reference=st.integers(3, 12),
    range_tolerance=st.sampled_from([0.05, None]),
    cell=st.sampled_from(["lstm", "gru"]),
    seed=st.integers(0, 2**16),
)
@example(  # zeros of both signs: NumPy's fmin picks either on a tie, by its loop (CI found it)
    events=[(0, "next", 0.0, 0.0), (0, "next", -1.0, 0.0)],
    targets=3,
    combine="mean",
    threshold="quantile",
    learn=False,
    learn_flagged=False,
    reference=3,
    range_tolerance=0.05,
    cell="lstm",
    seed=0,
)
def test_the_float_path_equals_the_vectorised_one(
    events: list[tuple[int, str, float, float]],
    targets: int,
    combine: str,
    threshold: str,
    learn: bool,
    learn_flagged: bool,
    reference: int,
    range_tolerance: float | None,
    cell: str,
    seed: int,
) -> None:
    if combine == "trimmed" and targets < 2:
        combine = "mean"
    config = DetectorConfig(
        reference=reference,
        warmup=reference // 3,
        combine=combine,  # type: ignore[arg-type]
        threshold=threshold,  # type: ignore[arg-type]
        range_tolerance=range_tolerance,
        quiet=0.5,
        smoothing=0.3,
    )
    fast = make_detector(targets, config, learn=learn, learn_flagged=learn_flagged, cell=cell)
    slow = make_detector(targets, config, learn=learn, learn_flagged=learn_flagged, cell=cell)
    rng = np.random.default_rng(seed)
    next_seq = [0, 0, 0]
    for t, (stream, kind, level, jump) in enumerate(events):
        name = f"s{stream}"
        seq: int | None = next_seq[stream]
        if kind == "repeat":
            seq = max(0, next_seq[stream] - 1)
        elif kind == "gap":
            seq = next_seq[stream] + 2
        elif kind == "stale":
            seq = max(0, next_seq[stream] - 3)
        elif kind == "none":
            seq = None
        row = (level + rng.normal(size=(1, INPUTS))) * jump
        start, end = kind == "start", kind == "end"
        now = float(t)
        arguments: dict[str, Any] = {
            "seq": None if seq is None else np.array([seq]),
            "start": np.array([start]),
            "end": np.array([end]),
            "now": now,
            "distinct": True,
        }
        expected = slow._step(np.array([name], dtype=object), row[:, None], **arguments)
        one = None
        if not start and not end:
            one = fast._step_one(name, row, seq, now)
        if one is None:
            got = fast._step(np.array([name], dtype=object), row[:, None], **arguments)
            assert same(got.predictions, expected.predictions)
            assert got.status == expected.status
            assert same(got.scores, expected.scores) and same(got.flags, expected.flags)
            assert same(got.anomaly_scores, expected.anomaly_scores)
        else:
            assert STATUS_NAMES[one.code] == expected.status[0]
            assert same(one.prediction, expected.predictions[0, 0])
            assert expected.scores is not None and expected.anomaly_scores is not None
            assert same(one.score, expected.scores[0, 0])
            assert same(one.anomaly, expected.anomaly_scores[0, 0])
            assert expected.flags is not None and one.flag == bool(expected.flags[0, 0])
            assert expected.slots is not None and one.slot == int(expected.slots[0])
        if expected.status[0] in ("ok", "gap", "restarted"):
            next_seq[stream] = (next_seq[stream] if seq is None else seq) + 1
        assert_same_state(fast, slow)


def test_the_float_path_covers_live_steps_and_duplicates() -> None:
    config = DetectorConfig(reference=5, warmup=1)
    detector = make_detector(1, config, learn=True, learn_flagged=False, cell="lstm")
    assert detector._step_one("a", np.zeros((1, INPUTS)), 0, 0.0) is None  # unknown: general
    detector.step(["a"], np.zeros((1, INPUTS)), seq=[0])
    for seq in range(1, 12):
        one = detector._step_one("a", np.ones((1, INPUTS)) * seq, seq, float(seq))
        assert one is not None and STATUS_NAMES[one.code] == "ok"
    assert math.isfinite(one.score) and math.isfinite(one.anomaly)
    again = detector._step_one("a", np.zeros((1, INPUTS)), 11, 99.0)
    assert again is not None and STATUS_NAMES[again.code] == "duplicate"
    assert (again.score, again.flag, again.anomaly) == (one.score, one.flag, one.anomaly)
    assert detector._step_one("a", np.zeros((1, INPUTS)), 13, 99.0) is None  # a gap: general
    assert detector._step_one("a", np.zeros((1, INPUTS)), 3, 99.0) is None  # stale: general
