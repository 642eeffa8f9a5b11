"""A seq that is not a whole number in 0 .. 2**63 - 1 is refused alone, on every path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stateline import ShapeError
from stateline.anomaly import DetectorConfig
from stateline.nn import ModelConfig, SequenceModel
from stateline.stream import StateStore, StreamDetector, StreamEngine
from stateline.stream._engine import ERROR
from stateline.stream._sequence import sequence_numbers

BAD = [-1, -(2**63), 1.5, 2.9, float("nan"), float("inf"), 2**63, True, "3", None]


def test_each_bad_seq_is_named_and_reads_zero() -> None:
    numbers, errors = sequence_numbers(np.array([4, *BAD, 2.0], dtype=object), len(BAD) + 2)
    assert numbers is not None and numbers[0] == 4 and numbers[-1] == 2
    assert sorted(errors) == list(range(1, len(BAD) + 1))
    assert all("0 .. 2**63 - 1" in message for message in errors.values())
    assert sequence_numbers(None, 3) == (None, {})
    plain, none = sequence_numbers(np.arange(5), 5)
    assert plain is not None and plain.tolist() == [0, 1, 2, 3, 4] and none == {}
    with pytest.raises(ShapeError, match="one value per event"):
        sequence_numbers([1, 2], 3)


@pytest.mark.parametrize("detector", [False, True])
@settings(max_examples=30, deadline=None)
@given(bad=st.sampled_from(BAD[:7]), position=st.integers(0, 3))
def test_the_engine_and_detector_refuse_a_bad_seq_alone(
    detector: bool, bad: object, position: int
) -> None:
    """From a review: 1.5 was read as 1 (answered duplicate: a step never applied), -5 was
    taken, nan and 2**63 raised for the whole call."""
    model = SequenceModel(ModelConfig(inputs=1, hidden=3)).eval()
    engine = StreamEngine(model, StateStore(model))
    stepper = StreamDetector(engine, DetectorConfig(reference=10, warmup=2)) if detector else engine
    ids = ["a", "b", "c", "d"]
    stepper.step(ids, np.zeros((4, 1)), seq=[0, 0, 0, 0])
    seqs: list[object] = [1, 1, 1, 1]
    seqs[position] = bad
    result = stepper.step(ids, np.ones((4, 1)), seq=np.array(seqs, dtype=object))
    assert result.codes[position] == ERROR and "seq" in result.errors[position]
    others = [i for i in range(4) if i != position]
    assert (result.codes[others] != ERROR).all()
    last = engine.store.last_seq[engine.store.lookup(np.array(ids, dtype=object))]
    assert last.tolist() == [0 if i == position else 1 for i in range(4)]
    single = stepper.step([ids[position]], np.ones((1, 1)), seq=np.array([bad], dtype=object))
    assert single.codes.tolist() == [ERROR]


def test_unsigned_and_float_arrays_are_read_whole_and_the_fast_path_agrees() -> None:
    """From a review: uint64 and float arrays went value by value (0.85 ms per 1,024); the
    one-event fast path raised OverflowError on 2**63 where a call of two refused it."""
    numbers, errors = sequence_numbers(np.array([3, 2**63, 2**64 - 1], dtype=np.uint64), 3)
    assert numbers is not None and numbers.tolist() == [3, 0, 0] and sorted(errors) == [1, 2]
    numbers, errors = sequence_numbers(np.array([2.0, -0.0, 2.0**63, 0.5]), 4)
    assert numbers is not None and numbers.tolist() == [2, 0, 0, 0] and sorted(errors) == [2, 3]
    model = SequenceModel(ModelConfig(inputs=1, hidden=3)).eval()
    engine = StreamEngine(model, StateStore(model))
    engine.step(["a"], np.zeros((1, 1)), seq=[2**63 - 1])
    for seq in ([2**63], np.array([2**63], dtype=np.uint64)):
        assert engine.step(["a"], np.zeros((1, 1)), seq=seq).codes.tolist() == [ERROR]
