from __future__ import annotations

import json

import numpy as np
import pytest

from stateline import DataError, NotFittedError, Scaler, ShapeError


def test_standardises_per_feature_with_training_statistics(rng: np.random.Generator) -> None:
    train = rng.normal([5.0, -2.0, 100.0], [1.0, 3.0, 0.5], size=(500, 3))
    scaler = Scaler().fit(train)
    scaled = scaler.transform(train)
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(scaled.std(axis=0), 1.0, atol=1e-12)
    later = rng.normal(size=(10, 3))
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(later)), later)
    # New data is transformed with the training statistics, not its own.
    np.testing.assert_allclose(scaler.transform(later), (later - train.mean(0)) / train.std(0))


def test_accepts_windows_and_lists_of_sequences(rng: np.random.Generator) -> None:
    sequences = [rng.normal(size=(n, 2)) for n in (5, 9, 3)]
    scaler = Scaler().fit(sequences)
    np.testing.assert_allclose(scaler.mean_, np.concatenate(sequences).mean(0))
    assert scaler.transform(np.zeros((4, 7, 2))).shape == (4, 7, 2)


def test_constant_feature_is_only_centred() -> None:
    scaler = Scaler().fit([[1.0, 3.0], [2.0, 3.0]])
    assert scaler.transform([[2.0, 4.0]]).tolist() == [[1.0, 1.0]]


def test_round_trips_through_json() -> None:
    scaler = Scaler().fit([[1.0], [3.0]])
    again = Scaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    assert again.transform([[3.0]]).tolist() == [[1.0]]


def test_errors() -> None:
    with pytest.raises(NotFittedError, match="fit"):
        Scaler().transform([[1.0]])
    scaler = Scaler().fit([[1.0, 2.0]])
    with pytest.raises(ShapeError, match="2 features"):
        scaler.transform([[1.0, 2.0, 3.0]])
    with pytest.raises(ShapeError, match="values\\[:, None\\]"):
        Scaler().fit([1.0, 2.0])
    with pytest.raises(DataError, match="NaN"):
        Scaler().fit([[1.0], [np.nan]])
    with pytest.raises(ShapeError, match="like data\\[0\\]"):
        Scaler().fit([np.ones((2, 2)), np.ones((2, 3))])


def test_moments_added_over_parts_give_the_scaler_of_all(rng: np.random.Generator) -> None:
    """Parts of very different sizes and offsets (a rank's share each): the added moments
    give the whole data's scaler to float rounding, in any grouping; one part exactly."""
    from stateline.data import Moments

    parts = [rng.normal(1e4, 0.5, size=(int(n), 3)) for n in rng.integers(1, 500, size=7)]
    whole = Scaler().fit(parts)
    added = Moments.empty(3)
    for part in parts:
        added = added + Moments.of(part)
    combined = Scaler.from_moments(added)
    np.testing.assert_allclose(combined.mean_, whole.mean_, rtol=1e-14)
    np.testing.assert_allclose(combined.scale_, whole.scale_, rtol=1e-9)
    np.testing.assert_allclose(whole.scale_, np.concatenate(parts).std(axis=0), rtol=1e-12)
    np.testing.assert_array_equal(Scaler.from_moments(Moments.of(parts)).scale_, whole.scale_)
    fortran = [np.asfortranarray(part) for part in parts]  # a DataFrame's column order
    np.testing.assert_array_equal(Scaler().fit(fortran).mean_, whole.mean_)
    with pytest.raises(ShapeError, match="is empty"):
        Scaler.from_moments(Moments.empty(3))


@pytest.mark.parametrize(
    "state",
    [
        {"mean": [1.0], "std": [1.0]},
        {"mean": [0.0, 1.0], "scale": [1.0]},
        {"mean": [0.0], "scale": [-1.0]},
        {"mean": [0.0], "scale": [0.0]},
        {"mean": [float("nan")], "scale": [1.0]},
        {"mean": [], "scale": []},
        {"mean": "abc", "scale": [1.0]},
    ],
)
def test_a_state_that_is_not_a_scalers_is_named(state: dict) -> None:  # type: ignore[type-arg]
    """From a review: a bare KeyError, or taken (a sign flip, inf, a broadcast)."""
    with pytest.raises(DataError, match="is not a scaler's state"):
        Scaler.from_dict(state)


def test_values_past_what_float64_can_spread_are_named() -> None:
    """From a review: 1e200 gave scale inf, and every value then scaled to 0."""
    with pytest.raises(DataError, match="too large to scale"):
        Scaler().fit(np.array([[1e200], [-1e200]]))
    assert Scaler().fit(np.array([[1e100], [1.5e100]])).scale_[0] == pytest.approx(2.5e99)
