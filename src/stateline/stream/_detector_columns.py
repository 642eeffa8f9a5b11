"""The stream detector's per-stream state: typed handles on state-store columns."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray

from ..anomaly._likelihood import LikelihoodState
from ._store import Column, StateStore

__all__ = ["DetectorColumns", "LikelihoodColumns"]

_PREFIX = "detector."
"""Store column names start with this (they travel in snapshots by name)."""


@dataclass(frozen=True)
class LikelihoodColumns:
    """The anomaly likelihood's state per stream: one column per :class:`LikelihoodState` field."""

    short: Column
    mean: Column
    var: Column
    low: Column
    high: Column
    quiet: Column

    @classmethod
    def add_to(cls, store: StateStore, *, width: int) -> LikelihoodColumns:
        state = LikelihoodState.empty(1, width)
        handles = {}
        for item in fields(LikelihoodState):
            example: NDArray[np.generic] = getattr(state, item.name)
            fill = example.flat[0].item()
            handles[item.name] = store.add_column(
                f"{_PREFIX}likelihood.{item.name}",
                example.shape[1:],
                dtype=example.dtype,
                fill=fill,
            )
        return cls(**handles)

    def read(self, slots: NDArray[np.int64]) -> LikelihoodState:
        """The state of ``slots``, as copies."""
        return LikelihoodState(
            **{item.name: getattr(self, item.name)[slots] for item in fields(self)}
        )

    def write(self, slots: NDArray[np.int64], state: LikelihoodState) -> None:
        for item in fields(self):
            getattr(self, item.name)[slots] = getattr(state, item.name)


@dataclass(frozen=True)
class DetectorColumns:
    """Every per-stream array a :class:`~stateline.stream.StreamDetector` keeps in the store.

    >>> from stateline.nn import ModelConfig, SequenceModel
    >>> store = StateStore(SequenceModel(ModelConfig(inputs=2, outputs=2, hidden=3)))
    >>> columns = DetectorColumns.add_to(store, reference=50, width=2)
    >>> columns.errors.values.shape, columns.level.values.dtype, columns.likelihood.low.values.shape
    ((1024, 50, 2), dtype('float64'), (1024, 2))
    """

    seen: Column
    """Steps scored or calibrating so far."""
    errors: Column
    """``(reference, width)``: the calibration errors (zeroed once calibrated)."""
    count: Column
    mean: Column
    m2: Column
    """The error moments (Welford), per channel."""
    smoothed: Column
    """The EWMA of the squared z-scores, per channel."""
    level: Column
    """The threshold's level (inf until calibrated)."""
    score_count: Column
    score_mean: Column
    score_m2: Column
    """The score moments of a Gaussian threshold that learns."""
    last_score: Column
    last_flag: Column
    last_anomaly: Column
    """The last step's score, flag and anomaly score (a duplicate gets them back)."""
    calibrated_mean: Column
    calibrated_std: Column
    """The error moments as calibrated: the likelihood's surprise, whatever learns later."""
    likelihood: LikelihoodColumns

    @classmethod
    def add_to(cls, store: StateStore, *, reference: int, width: int) -> DetectorColumns:
        specs: dict[str, tuple[tuple[int, ...], type, object]] = {
            "seen": ((), np.int64, 0),
            "errors": ((reference, width), np.float64, 0.0),
            "count": ((), np.int64, 0),
            "mean": ((width,), np.float64, 0.0),
            "m2": ((width,), np.float64, 0.0),
            "smoothed": ((width,), np.float64, np.nan),
            "level": ((), np.float64, np.inf),
            "score_count": ((), np.int64, 0),
            "score_mean": ((), np.float64, 0.0),
            "score_m2": ((), np.float64, 0.0),
            "last_score": ((), np.float64, np.nan),
            "last_flag": ((), np.bool_, False),
            "last_anomaly": ((), np.float64, np.nan),
            "calibrated_mean": ((width,), np.float64, 0.0),
            "calibrated_std": ((width,), np.float64, 0.0),
        }
        handles = {
            name: store.add_column(_PREFIX + name, shape, dtype=dtype, fill=fill)
            for name, (shape, dtype, fill) in specs.items()
        }
        return cls(**handles, likelihood=LikelihoodColumns.add_to(store, width=width))
