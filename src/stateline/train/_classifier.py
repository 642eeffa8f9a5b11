"""``SequenceClassifier``: variable-length sequences to a label."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._errors import ConfigError, DataError, NotFittedError, ShapeError, describe
from .._validate import plain_numbers, require_positive_int
from ..data import LaneLayout, LanePlan, Moments, Scaler, pack_lanes, place_lanes, scan_parquet
from ..data._checks import check_features
from ..data._lanes import sequence_list
from ..data._parquet import is_parquet_source
from ..nn import SequenceModel
from ._checkpoint import load_estimator, save_checkpoint
from ._distributed import Ranks
from ._estimator_config import EstimatorConfig
from ._loss import device_for
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
        sequences: Sequence[ArrayLike] | str | PathLike[str],
        labels: Sequence[Hashable] | ArrayLike | None = None,
        *,
        label: str | None = None,
        features: Sequence[str] | None = None,
        group: str | None = None,
        time: str | None = None,
    ) -> SequenceClassifier:
        """Train on sequences and one label per sequence, or on a Parquet dataset.

        A folder of Parquet files (or one file) holds one sequence per value of
        ``group``, its rows in the dataset's order (``time`` is checked to increase),
        the ``features`` columns (by default all the others) and a ``label`` column
        with one value per sequence. Under ``torchrun`` each process reads only the
        sequences of its lanes and the scaler is fitted on all of them (moments
        added over the processes).
        """
        source = _source(sequences, labels, label, features, group, time)
        label_list = source.labels
        if len(label_list) != len(source.lengths):
            raise ShapeError(
                describe(
                    "labels",
                    f"one label per sequence: {len(source.lengths)}",
                    f"{len(label_list)} labels",
                    problem="has the wrong shape.",
                )
            )
        _check_labels(label_list)
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
        order = np.random.default_rng(config.seed).permutation(len(label_list))
        held = order[: round(len(label_list) * config.validation_share)]
        train = order[len(held) :]
        self.chunk_ = config.chunk or max(source.lengths)
        # Where each sequence goes is decided from the lengths alone, alike on every process;
        # each reads only the sequences of its own training and validation lanes.
        ranks = Ranks.current(device_for(config.device))
        train_block = self._plan(source, train).block(ranks.lanes(self._lanes(len(train))))
        held_block = (
            None
            if len(held) == 0
            else self._plan(source, held).block(
                ranks.lanes(self._lanes(len(held)), allow_empty=True)
            )
        )
        held_mine = () if held_block is None else held_block.sequences
        wanted = [int(train[j]) for j in train_block.sequences] + [int(held[j]) for j in held_mine]
        arrays = ranks.together(lambda: source.read(wanted))
        moments = Moments.of([arrays[int(train[j])] for j in train_block.sequences])
        self.scaler_ = Scaler.from_moments(ranks.add(moments))
        layout = self._block_layout(train_block, train, arrays, codes)
        validation = (
            None
            if held_block is None or not held_mine
            else self._block_layout(held_block, held, arrays, codes)
        )
        width = next(iter(arrays.values())).shape[1]
        del arrays
        binary = len(self.classes_) == 2
        with seeded(config.seed):  # the caller's global generators stay as they were
            self.model_ = SequenceModel(
                config.model_config(
                    inputs=width,
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
            rank_layouts=True,
        )
        self.model_.eval()  # its own model: predicted with, not trained, from here
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
        model, _, metadata = load_estimator(directory, "SequenceClassifier")
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

    def _lanes(self, sequences: int) -> int:
        return max(1, min(self.config.lanes, sequences))

    def _plan(self, source: _Source, positions: NDArray[np.int64]) -> LanePlan:
        lengths = [source.lengths[int(i)] for i in positions]
        return place_lanes(lengths, lanes=self._lanes(len(positions)), chunk=self.chunk_)

    def _block_layout(
        self,
        block: LanePlan,
        positions: NDArray[np.int64],
        arrays: dict[int, NDArray[np.float64]],
        codes: NDArray[np.int64],
    ) -> LaneLayout:
        """The layout of one block of lanes: sequence ``j`` of the plan is ``positions[j]``."""
        assert self.scaler_ is not None
        scaled = {j: self.scaler_.transform(arrays[int(positions[j])]) for j in block.sequences}
        targets = {j: np.full(len(x), codes[positions[j]]) for j, x in scaled.items()}
        return block.pack(scaled, targets=targets)

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


@dataclass(frozen=True)
class _Source:
    """The sequences to fit: their lengths and labels up front, the values of some on demand
    (``read(positions) -> {position: (length, features) array}``)."""

    lengths: Sequence[int]
    labels: list[Hashable]
    read: Callable[[Sequence[int]], dict[int, NDArray[np.float64]]]


def _source(
    sequences: Any, labels: Any, label: str | None, features: Any, group: Any, time: Any
) -> _Source:
    if not is_parquet_source(sequences):
        if labels is None:
            raise ConfigError(
                describe("labels", "one label per sequence", "None", problem="is missing.")
            )
        arrays = _sequences(sequences)
        return _Source(
            lengths=[len(a) for a in arrays],
            labels=list(np.asarray(labels).tolist()),
            read=lambda positions: {i: arrays[i] for i in positions},
        )
    if label is None or labels is not None:
        raise ConfigError(
            describe(
                "label",
                "the name of the label column of the Parquet dataset (and labels=None)",
                repr(label) if labels is None else "labels given as values",
                problem="is missing." if labels is None else "cannot go with a Parquet dataset.",
                fix="Pass label='<column>'; its value must be the same on all rows of a sequence.",
            )
        )
    dataset = scan_parquet(sequences, group=group, columns=features, time=time, label=label)
    assert dataset.labels is not None
    return _Source(
        lengths=dataset.lengths,
        labels=list(dataset.labels),
        read=lambda positions: dataset.read(positions, time=time),
    )


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


def _check_labels(labels: list[Any]) -> None:
    """Refuse what cannot be a class: a missing value (None, NaN, NaT, NA: each NaN would
    otherwise be a class of its own, as NaN != NaN) or one that cannot be hashed (a label
    of several values). Any other hashable value is a class: strings, numbers, enums, dates."""
    for position, label in enumerate(labels):
        try:
            hash(label)
            missing = label is None or bool(label != label)
        except (TypeError, ValueError):  # unhashable, or NA's ambiguous truth value
            missing = True
        if missing:
            raise DataError(
                describe(
                    f"labels[{position}]",
                    "one class per sequence: a hashable value that is not missing "
                    "(not None, NaN, NaT or NA)",
                    repr(label),
                    problem="is not a class label.",
                    fix="Drop the sequences without a label, or give each one class.",
                )
            )
