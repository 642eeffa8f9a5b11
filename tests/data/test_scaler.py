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
