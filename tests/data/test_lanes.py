from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stateline import ConfigError, DataError, ShapeError, pack_lanes


def encoded(lengths: list[int]) -> list[np.ndarray]:
    """Sequences whose values say which sequence and step they are: 1000 * seq + step."""
    return [(1000.0 * index + np.arange(length))[:, None] for index, length in enumerate(lengths)]


layouts = st.fixed_dictionaries(
    {
        "lengths": st.lists(st.integers(1, 60), min_size=1, max_size=12),
        "lanes": st.integers(1, 8),
        "chunk": st.integers(1, 16),
        "split": st.booleans(),
    }
)


@settings(max_examples=200, deadline=None)
@given(layouts)
def test_layout_invariants(case: dict) -> None:
    lengths, lanes, chunk = case["lengths"], case["lanes"], case["chunk"]
    sequences = encoded(lengths)
    targets = [-sequence[:, 0] for sequence in sequences]
    layout = pack_lanes(
        sequences, lanes=lanes, chunk=chunk, targets=targets, split=case["split"], pad_value=-1.0
    )
    chunks = len(layout)
    assert layout.x.shape == (chunks, lanes, chunk, 1)
    assert layout.y is not None and layout.y.shape == (chunks, lanes, chunk)
    assert layout.mask.shape == (chunks, lanes, chunk) and layout.mask.dtype == bool
    assert layout.reset.shape == (chunks, lanes) and layout.reset.dtype == bool

    # unpack(stack of x) gives the inputs back exactly, in order; targets too.
    restored = layout.unpack([chunk_.x for chunk_ in layout])
    assert len(restored) == len(sequences)
    for original, back in zip(sequences, restored, strict=True):
        np.testing.assert_array_equal(back, original)
    for original, back in zip(targets, layout.unpack(layout.y), strict=True):
        np.testing.assert_array_equal(back, original)

    # Every real step appears exactly once; along each lane, a sequence's steps are in order.
    lane_values = np.swapaxes(layout.x[..., 0], 0, 1).reshape(lanes, -1)
    lane_mask = np.swapaxes(layout.mask, 0, 1).reshape(lanes, -1)
    real = np.sort(lane_values[lane_mask])
    np.testing.assert_array_equal(real, np.sort(np.concatenate([s[:, 0] for s in sequences])))
    # The mask is exact: padding holds the pad value and nothing else does.
    assert (lane_values[~lane_mask] == -1.0).all()
    # Each piece lies contiguously in its lane, in order, across chunk boundaries.
    for placement in layout.placements:
        begin = placement.first_chunk * chunk
        np.testing.assert_array_equal(
            lane_values[placement.lane, begin : begin + placement.length],
            sequences[placement.sequence][placement.start : placement.start + placement.length, 0],
        )
        assert lane_mask[placement.lane, begin : begin + placement.length].all()

    # reset is True exactly where a sequence (or split segment) starts.
    starts = np.zeros_like(layout.reset)
    for placement in layout.placements:
        starts[placement.first_chunk, placement.lane] = True
        first_value = layout.x[placement.first_chunk, placement.lane, 0, 0]
        assert first_value == 1000 * placement.sequence + placement.start
    np.testing.assert_array_equal(layout.reset, starts)
    used_lanes = {placement.lane for placement in layout.placements}
    for lane in used_lanes:
        assert layout.reset[0, lane]
    if not case["split"]:
        assert {placement.start for placement in layout.placements} == {0}
        assert len(layout.placements) == len(sequences)

    assert layout.steps == sum(lengths)
    assert layout.efficiency == pytest.approx(sum(lengths) / layout.mask.size)


def test_chunks_continue_rows_across_boundaries() -> None:
    layout = pack_lanes(np.arange(12.0)[:, None], lanes=2, chunk=3, split=True)
    assert layout.x[..., 0].tolist() == [[[0, 1, 2], [6, 7, 8]], [[3, 4, 5], [9, 10, 11]]]
    assert layout.reset.tolist() == [[True, True], [False, False]]
    assert layout.efficiency == 1.0


def test_tail_is_padded_and_masked_and_next_sequence_starts_on_a_boundary() -> None:
    layout = pack_lanes([np.ones((4, 1)), 2 * np.ones((2, 1))], lanes=1, chunk=3)
    lane = layout.x[:, 0, :, 0].reshape(-1).tolist()
    assert lane == [1, 1, 1, 1, 0, 0, 2, 2, 0]
    assert layout.mask[:, 0].reshape(-1).tolist() == [True] * 4 + [False] * 2 + [True] * 2 + [False]
    assert layout.reset[:, 0].tolist() == [True, False, True]


def test_longest_first_assignment_keeps_padding_small(rng: np.random.Generator) -> None:
    lengths = rng.integers(5, 400, size=200).tolist()
    layout = pack_lanes(encoded(lengths), lanes=16, chunk=32)
    padded_to_longest = sum(lengths) / (len(lengths) * -(-max(lengths) // 32) * 32)
    assert layout.efficiency > 0.9
    assert layout.efficiency > padded_to_longest


def test_split_one_series_uses_all_lanes() -> None:
    layout = pack_lanes(np.zeros((1000, 2)), lanes=4, chunk=32, split=True)
    assert sorted(p.lane for p in layout.placements) == [0, 1, 2, 3]
    assert [p.start for p in sorted(layout.placements, key=lambda p: p.start)] == [0, 250, 500, 750]
    assert len(layout) == 8
    assert layout.efficiency == pytest.approx(1000 / 1024)


def test_three_dimensional_array_is_many_sequences() -> None:
    layout = pack_lanes(np.zeros((3, 5, 2)), lanes=3, chunk=5)
    assert len(layout) == 1 and layout.reset.all() and layout.mask.all()


def test_unused_lanes_are_masked_and_never_reset() -> None:
    layout = pack_lanes([np.ones((3, 1))], lanes=4, chunk=3)
    assert layout.reset.tolist() == [[True, False, False, False]]
    assert layout.mask[0, 1:].sum() == 0


def test_targets_with_trailing_shape() -> None:
    layout = pack_lanes(
        [np.ones((3, 1)), np.ones((5, 1))],
        lanes=2,
        chunk=2,
        targets=[np.zeros((3, 2, 4)), np.ones((5, 2, 4))],
    )
    assert layout.y is not None and layout.y.shape == (3, 2, 2, 2, 4)


def test_single_array_with_single_target_array() -> None:
    layout = pack_lanes(np.ones((7, 2)), lanes=1, chunk=4, targets=np.arange(7))
    np.testing.assert_array_equal(layout.unpack(layout.y)[0], np.arange(7))


def test_single_sequence_with_short_targets_names_the_length() -> None:
    with pytest.raises(ShapeError, match="length 7"):
        pack_lanes(np.ones((7, 2)), lanes=1, chunk=4, targets=np.arange(5))


def test_stacked_sequences_with_stacked_targets() -> None:
    layout = pack_lanes(np.ones((3, 4, 1)), lanes=3, chunk=4, targets=np.zeros((3, 4)))
    assert layout.y is not None and layout.y.shape == (1, 3, 4)


def test_iteration_yields_chunks_in_order() -> None:
    layout = pack_lanes(np.arange(10.0)[:, None], lanes=1, chunk=4)
    chunks = list(layout)
    assert [c.index for c in chunks] == [0, 1, 2]
    assert chunks[1].x[0, :, 0].tolist() == [4, 5, 6, 7]
    assert chunks[2].mask.tolist() == [[True, True, False, False]]
    assert layout[-1].index == 2


@pytest.mark.parametrize(
    ("call", "error", "needle"),
    [
        (lambda: pack_lanes(np.ones((3, 1)), lanes=0, chunk=2), ConfigError, "lanes"),
        (lambda: pack_lanes(np.ones((3, 1)), lanes=1, chunk=0), ConfigError, "chunk"),
        (lambda: pack_lanes(np.ones((3, 1)), lanes=True, chunk=2), ConfigError, "lanes"),
        (lambda: pack_lanes(np.ones(3), lanes=1, chunk=2), ShapeError, "values\\[:, None\\]"),
        (
            lambda: pack_lanes([np.ones((3, 1)), np.ones((0, 1))], lanes=1, chunk=2),
            DataError,
            "sequences\\[1\\] is empty",
        ),
        (lambda: pack_lanes([], lanes=1, chunk=2), ShapeError, "at least one sequence"),
        (
            lambda: pack_lanes([np.ones((3, 1)), np.ones((3, 2))], lanes=1, chunk=2),
            ShapeError,
            "sequences\\[1\\]",
        ),
        (
            lambda: pack_lanes([np.array([[1.0], [np.inf]])], lanes=1, chunk=2),
            DataError,
            "NaN or inf",
        ),
        (
            lambda: pack_lanes([np.ones((3, 1))], lanes=1, chunk=2, targets=[np.ones(2)]),
            ShapeError,
            "length 3",
        ),
        (
            lambda: pack_lanes([np.ones((3, 1))], lanes=1, chunk=2, targets=[np.ones(3)] * 2),
            ShapeError,
            "one target array per sequence",
        ),
        (
            lambda: pack_lanes(
                [np.ones((3, 1))] * 2, lanes=1, chunk=2, targets=[np.ones(3), np.ones((3, 2))]
            ),
            ShapeError,
            "per-step shape",
        ),
        (
            lambda: pack_lanes([np.ones((3, 1))], lanes=1, chunk=2, split="yes"),
            ConfigError,
            "split",
        ),
    ],
)
def test_bad_input_names_the_argument(call, error: type[Exception], needle: str) -> None:
    with pytest.raises(error, match=needle):
        call()


def test_unpack_rejects_outputs_of_the_wrong_layout() -> None:
    layout = pack_lanes(np.ones((10, 1)), lanes=2, chunk=4)
    with pytest.raises(ShapeError, match="outputs"):
        layout.unpack(np.zeros((2, 2, 3)))


@settings(max_examples=100, deadline=None)
@given(layouts, st.integers(1, 4))
def test_blocks_of_a_plan_are_the_lanes_of_the_whole_layout(case: dict, processes: int) -> None:
    """Each block of a LanePlan, packed from its own sequences only, equals those lanes of
    the whole layout (same chunks); every sequence starts in exactly one block."""
    from stateline.data import place_lanes

    lengths, lanes, chunk = case["lengths"], case["lanes"], case["chunk"]
    sequences = encoded(lengths)
    whole = pack_lanes(sequences, lanes=lanes, chunk=chunk, split=case["split"])
    plan = place_lanes(lengths, lanes=lanes, chunk=chunk, split=case["split"])
    assert plan.placements == whole.placements and plan.chunks == len(whole)
    share, extra = divmod(lanes, processes)
    starts: list[int] = []
    first = 0
    for rank in range(processes):
        stop = first + share + (1 if rank < extra else 0)
        block = plan.block(slice(first, stop))
        starts += block.starts
        if block.sequences:
            mine = block.pack({i: sequences[i] for i in block.sequences})
            np.testing.assert_array_equal(mine.x, whole.x[:, first:stop])
            np.testing.assert_array_equal(mine.mask, whole.mask[:, first:stop])
            np.testing.assert_array_equal(mine.reset, whole.reset[:, first:stop])
            assert mine.steps == int(whole.mask[:, first:stop].sum())
            covered = [0] * len(lengths)
            for placement in mine.placements:
                covered[placement.sequence] += placement.length
            if covered != lengths:  # pieces of some sequence lie in other blocks
                with pytest.raises(ShapeError, match="cannot be unpacked"):
                    mine.unpack(mine.x)
        first = stop
    assert sorted(starts) == list(range(len(lengths)))


def test_a_plan_names_what_is_missing() -> None:
    from stateline.data import place_lanes

    plan = place_lanes([4, 3], lanes=2, chunk=2)
    with pytest.raises(ShapeError, match=r"sequences are missing"):
        plan.pack({0: np.ones((4, 1))})
    with pytest.raises(ShapeError, match=r"sequences\[1\] has the wrong shape"):
        plan.pack({0: np.ones((4, 1)), 1: np.ones((5, 1))})
    with pytest.raises(ConfigError, match="plan is empty"):
        place_lanes([4], lanes=3, chunk=2).block(slice(2, 3)).pack({0: np.ones((4, 1))})


def test_a_layout_of_padding_or_a_pad_value_that_is_no_number_is_refused() -> None:
    """From a review: chunk=10**12 asked for 14.6 TiB (a MemoryError, late), lanes=10**12
    did not come back, pad_value="a" was numpy's ValueError."""
    x = np.arange(20.0).reshape(10, 2)
    with pytest.raises(ConfigError, match="chunk would make a layout of padding"):
        pack_lanes(x, lanes=1, chunk=10**12)
    with pytest.raises(ConfigError, match="lanes would make a layout of padding"):
        pack_lanes(x, lanes=10**12, chunk=2)
    with pytest.raises(ConfigError, match="pad_value is invalid"):
        pack_lanes(x, lanes=1, chunk=2, pad_value="a")  # type: ignore[arg-type]
    assert pack_lanes(x, lanes=40, chunk=30).x.shape == (1, 40, 30, 2)  # small: fine
