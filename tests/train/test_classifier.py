from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stateline import (
    ClassifierConfig,
    ConfigError,
    DataError,
    NotFittedError,
    SequenceClassifier,
    ShapeError,
)
from stateline.data import japanese_vowels


def toy(rng: np.random.Generator, classes: int = 3) -> tuple[list[np.ndarray], list[str]]:
    sequences, labels = [], []
    for index in range(60):
        label = index % classes
        n = int(rng.integers(4, 20))
        sequences.append(rng.normal(loc=label, size=(n, 2)))
        labels.append(f"c{label}")
    return sequences, labels


def test_probabilities_and_labels(rng: np.random.Generator) -> None:
    sequences, labels = toy(rng)
    clf = SequenceClassifier(ClassifierConfig(hidden=8, lanes=8, epochs=30, progress=False))
    clf.fit(sequences, labels)
    probabilities = clf.predict_proba(sequences)
    assert probabilities.shape == (60, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert clf.classes_ == ["c0", "c1", "c2"]
    assert clf.score(sequences, labels) > 0.9


def test_binary_uses_one_logit_and_round_trips(rng: np.random.Generator, tmp_path: Path) -> None:
    sequences, labels = toy(rng, classes=2)
    clf = SequenceClassifier(ClassifierConfig(hidden=8, epochs=5, chunk=8, progress=False))
    clf.fit(sequences, labels)
    assert clf.model_ is not None and clf.model_.config.task == "binary"
    clf.save(tmp_path / "clf")
    loaded = SequenceClassifier.load(tmp_path / "clf")
    np.testing.assert_array_equal(loaded.predict_proba(sequences), clf.predict_proba(sequences))


def test_errors(rng: np.random.Generator) -> None:
    sequences, labels = toy(rng)
    with pytest.raises(NotFittedError):
        SequenceClassifier().predict(sequences)
    with pytest.raises(ShapeError, match="one label per sequence"):
        SequenceClassifier(ClassifierConfig(progress=False)).fit(sequences, labels[:5])
    with pytest.raises(DataError, match="two classes"):
        SequenceClassifier(ClassifierConfig(progress=False)).fit(sequences, ["a"] * 60)
    with pytest.raises(ConfigError, match="chunk"):
        ClassifierConfig(chunk=0)
    quiet = SequenceClassifier(ClassifierConfig(progress=False, epochs=1))
    with pytest.raises(DataError, match=r"(?s)labels\[1\] is not a class label.*nan"):
        quiet.fit(sequences[:4], [0.0, float("nan")] * 2)  # each NaN would be a class
    with pytest.raises(DataError, match=r"labels\[0\] is not a class label"):
        quiet.fit(sequences[:4], np.zeros((4, 2)))
    with pytest.raises(DataError, match=r"labels\[2\]"):
        quiet.fit(sequences[:4], ["a", "b", None, "a"])
    assert quiet.fit(sequences[:4], np.array([0, 1, 0, 1])).classes_ == [0, 1]
    import datetime
    import enum

    class Kind(enum.Enum):
        UP = 1
        DOWN = 2

    for a, b in ((Kind.UP, Kind.DOWN), (datetime.date(2024, 1, 1), datetime.date(2024, 1, 2))):
        assert set(quiet.fit(sequences[:4], [a, b, a, b]).classes_) == {a, b}  # any hashable


def test_one_long_sequence_beside_thousands_of_short_ones(rng: np.random.Generator) -> None:
    """From a review: the chunk is the longest training sequence, so every short one pads to
    it; a refusal of layouts of padding (meant for chunk=10**12) refused this."""
    long, short = [rng.normal(size=(3000, 2))], [rng.normal(size=(5, 2)) for _ in range(6000)]
    clf = SequenceClassifier(ClassifierConfig(hidden=2, epochs=1, progress=False))
    clf.fit(long + short[:3], ["a", "b", "a", "b"])
    assert clf.predict_proba(short).shape == (6000, 2)
    with pytest.raises(ShapeError, match="sequences\\[1\\]"):
        SequenceClassifier(ClassifierConfig(progress=False)).fit(
            [np.ones((3, 2)), np.ones((3, 3))], ["a", "b"]
        )


def test_japanese_vowels_accuracy() -> None:
    """Real variable-length sequences (7 to 29 frames, 9 speakers), standard split."""
    train, train_labels = japanese_vowels("train")
    test, test_labels = japanese_vowels("test")
    clf = SequenceClassifier(ClassifierConfig(hidden=32, lanes=16, progress=False))
    clf.fit(train, train_labels)
    accuracy = clf.score(test, test_labels)
    print(f"JapaneseVowels test accuracy: {accuracy:.3f}")
    assert accuracy > 0.93
