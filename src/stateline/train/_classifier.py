"""``SequenceClassifier``: variable-length sequences to a label."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._errors import DataError, NotFittedError, ShapeError, describe
from .._validate import plain_numbers, require_positive_int
from ..data import LaneLayout, Scaler, pack_lanes
from ..data._lanes import check_features, sequence_list
from ..nn import SequenceModel
from ._checkpoint import load_checkpoint, save_checkpoint
from ._estimator_config import EstimatorConfig
from ._seeding import seeded
from ._tbptt import History, fit, run_layout

__all__ = ["ClassifierConfig", "SequenceClassifier"]


@dataclass(frozen=True, kw_only=True)
class ClassifierConfig(EstimatorConfig):
    """Settings of :class:`SequenceClassifier`.

    ``lanes`` is the number of sequences per batch. ``chunk=None`` uses the
    longest training sequence, so every sequence is learned with full BPTT
    and batches can be shuffled; a smaller chunk trains long sequences by
    truncated BPTT (in a fixed order). The loss is taken at the last step of
    each sequence; padding is masked. The model and training fields are those
    of :class:`EstimatorConfig`.
    """

    lanes: int = 32
    chunk: int | None = None
    epochs: int = 60
    validation_share: float = 0.15

    def __post_init__(self) -> None:
        plain_numbers(self)
        require_positive_int("lanes", self.lanes)
        require_positive_int("chunk", self.chunk, optional=True)
        super().__post_init__()


class SequenceClassifier:
    """Classify variable-length sequences ``(length_i, features)`` with an LSTM/GRU.

    >>> rng = np.random.default_rng(0)
    >>> up = [np.cumsum(rng.uniform(0, 1, (n, 1)), axis=0) for n in rng.integers(5, 15, 40)]
    >>> down = [-s for s in up]
    >>> config = ClassifierConfig(hidden=8, epochs=30, progress=False)
    >>> clf = SequenceClassifier(config).fit(up + down, ["up"] * 40 + ["down"] * 40)
    >>> clf.predict([up[0], down[0]]).tolist()
    ['up', 'down']
    """

    def __init__(self, config: ClassifierConfig | None = None) -> None:
        self.config = config or ClassifierConfig()
        self.model_: SequenceModel | None = None
        self.scaler_: Scaler | None = None
        self.classes_: list[Hashable] = []
        self.history_: History | None = None
        self.chunk_ = 0

    def fit(
        self,
        sequences: Sequence[ArrayLike],
        labels: Sequence[Hashable] | ArrayLike,
    ) -> SequenceClassifier:
        """Train on sequences and one label per sequence."""
        arrays = _sequences(sequences)
        label_list = list(np.asarray(labels).tolist())
        if len(label_list) != len(arrays):
            raise ShapeError(
                describe(
                    "labels",
                    f"one label per sequence: {len(arrays)}",
                    f"{len(label_list)} labels",
                    problem="has the wrong shape.",
                )
            )
        self.classes_ = sorted(set(label_list), key=str)
        if len(self.classes_) < 2:
            raise DataError(
                describe(
                    "labels",
                    "at least two classes",
                    f"only {self.classes_}",
                    problem="cannot be learned.",
                )
            )
        index = {label: i for i, label in enumerate(self.classes_)}
        codes = np.array([index[label] for label in label_list])
        config = self.config
        order = np.random.default_rng(config.seed).permutation(len(arrays))
        held = order[: round(len(arrays) * config.validation_share)]
        train = order[len(held) :]
        self.scaler_ = Scaler().fit([arrays[i] for i in train])
        self.chunk_ = config.chunk or max(len(a) for a in arrays)
        layout = self._layout([arrays[i] for i in train], codes[train])
        validation = (
            None if len(held) == 0 else self._layout([arrays[i] for i in held], codes[held])
        )
        binary = len(self.classes_) == 2
        with seeded(config.seed):  # the caller's global generators stay as they were
            self.model_ = SequenceModel(
                config.model_config(
                    inputs=arrays[0].shape[1],
                    outputs=1 if binary else len(self.classes_),
                    task="binary" if binary else "multiclass",
                )
            )
        self.history_ = fit(
            self.model_,
            layout,
            config=config.train_config(),
            validation=validation,
            target_at="last",
            shuffle_chunks=config.chunk is None,
        )
        return self

    def predict_proba(self, sequences: Sequence[ArrayLike]) -> NDArray[np.float64]:
        """``(sequences, classes)`` class probabilities, columns in ``classes_`` order."""
        model, _ = self._fitted()
        arrays = _sequences(sequences)
        layout = self._layout(arrays, None)
        outputs, _ = run_layout(model, layout, device=self.config.device)
        last = np.stack([sequence[-1] for sequence in layout.unpack(outputs)]).astype(np.float64)
        if len(self.classes_) == 2:
            positive = 1.0 / (1.0 + np.exp(-last[:, 0]))
            binary: NDArray[np.float64] = np.stack([1.0 - positive, positive], axis=1)
            return binary
        shifted = np.exp(last - last.max(axis=1, keepdims=True))
        probabilities: NDArray[np.float64] = shifted / shifted.sum(axis=1, keepdims=True)
        return probabilities

    def predict(self, sequences: Sequence[ArrayLike]) -> NDArray[Any]:
        """The most probable label of each sequence."""
        probabilities = self.predict_proba(sequences)
        labels: NDArray[Any] = np.array(self.classes_, dtype=object)[probabilities.argmax(axis=1)]
        return labels

    def score(
        self, sequences: Sequence[ArrayLike], labels: Sequence[Hashable] | ArrayLike
    ) -> float:
        """Accuracy on labelled sequences."""
        predicted = self.predict(sequences)
        truth = np.asarray(labels, dtype=object)
        return float(np.mean(predicted == truth))

    def save(self, directory: str | Path) -> Path:
        model, scaler = self._fitted()
        return save_checkpoint(
            directory,
            model,
            metadata={
                "estimator": "SequenceClassifier",
                "config": asdict(self.config),
                "scaler": scaler.to_dict(),
                "classes": self.classes_,
                "chunk": self.chunk_,
            },
        )

    @classmethod
    def load(cls, directory: str | Path) -> SequenceClassifier:
        model, _, metadata = load_checkpoint(directory)
        classifier = cls(ClassifierConfig(**metadata["config"]))
        classifier.model_ = model  # type: ignore[assignment]
        classifier.scaler_ = Scaler.from_dict(metadata["scaler"])
        classifier.classes_ = list(metadata["classes"])
        classifier.chunk_ = int(metadata["chunk"])
        return classifier

    def _fitted(self) -> tuple[SequenceModel, Scaler]:
        if self.model_ is None or self.scaler_ is None:
            raise NotFittedError(
                "This SequenceClassifier is not fitted yet.\n"
                "  Fix: call fit(sequences, labels) first."
            )
        return self.model_, self.scaler_

    def _layout(
        self, arrays: list[NDArray[np.float64]], codes: NDArray[np.int64] | None
    ) -> LaneLayout:
        assert self.scaler_ is not None
        scaled = [self.scaler_.transform(a) for a in arrays]
        targets = (
            None
            if codes is None
            else [np.full(len(a), code) for a, code in zip(arrays, codes, strict=True)]
        )
        lanes = max(1, min(self.config.lanes, len(arrays)))
        return pack_lanes(scaled, lanes=lanes, chunk=self.chunk_, targets=targets)


def _sequences(sequences: Sequence[ArrayLike]) -> list[NDArray[np.float64]]:
    if isinstance(sequences, np.ndarray) and sequences.ndim == 3:
        return [np.asarray(s, dtype=np.float64) for s in sequences]
    if not isinstance(sequences, (list, tuple)) or not sequences:
        raise ShapeError(
            describe(
                "sequences",
                "a non-empty list of (length_i, features) arrays",
                type(sequences).__name__,
                problem="has the wrong shape.",
            )
        )
    arrays = sequence_list(list(sequences), "sequences")
    check_features(arrays)
    return [a.astype(np.float64) for a in arrays]
