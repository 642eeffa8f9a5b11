"""The likelihood's float step equals the vectorised step, NaN, infinities and signed zeros too."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from stateline.anomaly._likelihood import LikelihoodConfig, LikelihoodState, likelihood_step
from stateline.anomaly._likelihood_one import (
    LikelihoodRow,
    clip,
    fmax,
    fmin,
    likelihood_step_one,
    maximum,
    minimum,
)

SPECIAL = [0.0, -0.0, 1.0, -1.0, math.nan, math.inf, -math.inf, 0.5]


def bits(value: float) -> tuple[bool, bool, float]:
    """NaN-ness, the sign bit and the value: what must match (a NaN's sign means nothing)."""
    if value != value:
        return (True, False, 0.0)
    return (False, math.copysign(1.0, value) < 0, value)


def test_the_float_helpers_copy_numpy_on_special_values() -> None:
    for a in SPECIAL:
        for b in SPECIAL:
            for mine, theirs in (
                (maximum, np.maximum),
                (minimum, np.minimum),
                (fmin, np.fmin),
                (fmax, np.fmax),
            ):
                assert bits(mine(a, b)) == bits(float(theirs(np.array([a]), np.array([b]))[0]))
        assert bits(clip(a, 0.0, 1.0)) == bits(float(np.clip(np.array([a]), 0.0, 1.0)[0]))


finite = st.floats(-1e6, 1e6)
anything = st.one_of(finite, st.sampled_from(SPECIAL))


@settings(max_examples=300, deadline=None)
@given(
    short=finite,
    mean=finite,
    var=st.floats(0, 1e6),
    lows=st.lists(anything, min_size=1, max_size=3),
    width=st.floats(0, 10),
    surprise=anything,
    values=st.lists(finite, min_size=3, max_size=3),
    quiet=st.integers(0, 3),
    range_tolerance=st.sampled_from([0.05, 1.0, None]),
    range_base=st.sampled_from([0.8, 1.0]),
    with_values=st.booleans(),
)
def test_the_float_step_equals_the_vectorised_step(
    short: float,
    mean: float,
    var: float,
    lows: list[float],
    width: float,
    surprise: float,
    values: list[float],
    quiet: int,
    range_tolerance: float | None,
    range_base: float,
    with_values: bool,
) -> None:
    config = LikelihoodConfig(range_tolerance=range_tolerance, range_base=range_base)
    channels = len(lows)
    highs = [low + width for low in lows]
    observed = values[:channels] if with_values else None
    state = LikelihoodState(
        short=np.array([short]),
        mean=np.array([mean]),
        var=np.array([var]),
        low=np.array([lows]),
        high=np.array([highs]),
        quiet=np.array([quiet]),
    )
    with np.errstate(all="ignore"):  # inf * 0 and the like: NaN, as the float step gives
        expected = likelihood_step(
            state,
            config,
            np.array([surprise]),
            None if observed is None else np.array([observed]),
            4,
        )
    row = LikelihoodRow(short, mean, var, lows, highs, quiet)
    score, after = likelihood_step_one(config, row, surprise, observed, 4)
    assert bits(score) == bits(float(expected[0]))
    assert [bits(v) for v in (after.short, after.mean, after.var)] == [
        bits(float(state.short[0])),
        bits(float(state.mean[0])),
        bits(float(state.var[0])),
    ]
    assert [bits(v) for v in after.low] == [bits(v) for v in state.low[0].tolist()]
    assert [bits(v) for v in after.high] == [bits(v) for v in state.high[0].tolist()]
    assert after.quiet == int(state.quiet[0])
