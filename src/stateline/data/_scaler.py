"""Per-feature standardisation, fitted on training data only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._errors import DataError, NotFittedError, ShapeError, describe
from ._checks import as_array, check_features, require_finite

__all__ = ["Moments", "Scaler"]


@dataclass(frozen=True, eq=False)
class Moments:
    """What a :class:`Scaler` learns, in a form that adds up: the number of samples, and
    each feature's mean and summed squared deviation from it.

    Processes that each hold part of the data add their moments (in the same order on every
    process, so all get the same numbers) and fit one scaler, equal to the scaler fitted on
    all the data up to float rounding; one part alone gives exactly :meth:`Scaler.fit`'s.

    >>> whole = Moments.of([[1.0], [2.0], [3.0], [4.0]])
    >>> added = Moments.of([[1.0], [2.0]]) + Moments.of([[3.0], [4.0]])
    >>> (added.count, added.mean.tolist(), added.m2.tolist()) == (4, [2.5], [5.0])
    True
    >>> Scaler.from_moments(added).to_dict() == Scaler.from_moments(whole).to_dict()
    True
    """

    count: int
    mean: NDArray[np.float64]
    m2: NDArray[np.float64]

    @classmethod
    def of(cls, data: ArrayLike | Sequence[ArrayLike]) -> Moments:
        """The moments of ``data`` (features on the last axis; a list of parts is joined)."""
        parts = [part.reshape(-1, part.shape[-1]) for part in _parts(data)]
        count = sum(part.shape[0] for part in parts)
        if count == 0:
            raise ShapeError(
                describe("data", "at least one sample to fit on", "no samples", problem="is empty.")
            )
        check_features(parts, "data")
        width = parts[0].shape[1]
        # Feature by feature, so that the sums do not depend on the arrays' memory order (a
        # DataFrame's columns come Fortran-ordered, a Parquet read's as C-ordered views), and
        # so that the copies this takes hold one feature, not all of them.
        mean, m2 = np.empty(width), np.empty(width)
        with np.errstate(over="ignore", invalid="ignore"):  # past float64: Scaler names it
            for j in range(width):
                column = np.concatenate([part[:, j] for part in parts])
                mean[j] = np.add.reduce(column) / count
                np.subtract(column, mean[j], out=column)
                np.multiply(column, column, out=column)
                m2[j] = np.add.reduce(column)
        return cls(count=count, mean=mean, m2=m2)

    def __add__(self, other: Moments) -> Moments:
        """The moments of both parts together (Chan, Golub and LeVeque's pairwise update)."""
        if other.mean.shape != self.mean.shape:
            raise ShapeError(
                describe(
                    "moments",
                    f"{self.mean.shape[0]} features, like the first part",
                    f"{other.mean.shape[0]} features",
                    problem="have the wrong shape.",
                )
            )
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / count)
        m2 = self.m2 + other.m2 + delta * delta * (self.count * other.count / count)
        return Moments(count=count, mean=mean, m2=m2)

    @classmethod
    def empty(cls, features: int) -> Moments:
        """No samples yet (adding it changes nothing)."""
        return cls(count=0, mean=np.zeros(features), m2=np.zeros(features))


class Scaler:
    """Standardise every feature to mean 0 and standard deviation 1.

    Fit it on the training part only, then transform training, validation and
    live data with the same statistics; ``inverse_transform`` maps model
    outputs back to the original units. Features are the last axis, so a table
    ``(samples, features)``, windows ``(windows, steps, features)`` and lists of
    sequences are all accepted. A constant feature gets scale 1 (it is only
    centred), so transforming never divides by zero.

    >>> train = np.array([[1.0, 10.0], [3.0, 10.0]])
    >>> scaler = Scaler().fit(train)
    >>> scaler.transform(train).tolist()
    [[-1.0, 0.0], [1.0, 0.0]]
    >>> scaler.inverse_transform([[0.0, 0.0]]).tolist()
    [[2.0, 10.0]]
    """

    def __init__(self) -> None:
        self.mean_: NDArray[np.float64] | None = None
        self.scale_: NDArray[np.float64] | None = None

    @property
    def features(self) -> int:
        """Number of features the scaler was fitted on."""
        mean, _ = self._fitted()
        return int(mean.shape[0])

    def fit(self, data: ArrayLike | Sequence[ArrayLike]) -> Scaler:
        """Learn the mean and standard deviation of each feature (last axis)."""
        return self._set(Moments.of(data))

    @classmethod
    def from_moments(cls, moments: Moments) -> Scaler:
        """The scaler of data whose :class:`Moments` these are (added over parts)."""
        if moments.count == 0:
            raise ShapeError(
                describe("data", "at least one sample to fit on", "no samples", problem="is empty.")
            )
        return cls()._set(moments)

    def _set(self, moments: Moments) -> Scaler:
        with np.errstate(over="ignore", invalid="ignore"):
            scale = np.sqrt(moments.m2 / moments.count)
        if not (np.isfinite(scale).all() and np.isfinite(moments.mean).all()):
            feature = int(np.flatnonzero(~(np.isfinite(scale) & np.isfinite(moments.mean)))[0])
            raise DataError(
                describe(
                    "data",
                    "values whose spread float64 can hold (about 1e154 at most)",
                    f"feature {feature}: mean {moments.mean[feature]}, spread {scale[feature]}",
                    problem="is too large to scale.",
                    fix="Express the values in a larger unit first (divide them by a power of 10).",
                )
            )
        self.mean_ = moments.mean
        self.scale_ = np.where(scale > 0, scale, 1.0)
        return self

    def transform(self, data: ArrayLike) -> NDArray[np.float64]:
        """Standardise ``data`` with the fitted statistics."""
        mean, scale = self._fitted()
        array = self._checked(data)
        return (array - mean) / scale

    def inverse_transform(self, data: ArrayLike) -> NDArray[np.float64]:
        """Map standardised values back to the original units."""
        mean, scale = self._fitted()
        array = self._checked(data)
        return array * scale + mean

    def fit_transform(self, data: ArrayLike) -> NDArray[np.float64]:
        """Fit on ``data`` and return it standardised."""
        return self.fit(data).transform(data)

    def to_dict(self) -> dict[str, list[float]]:
        """The fitted statistics as plain lists (JSON-ready).

        >>> Scaler.from_dict(Scaler().fit([[0.0], [2.0]]).to_dict()).mean_.tolist()
        [1.0]
        """
        mean, scale = self._fitted()
        return {"mean": mean.tolist(), "scale": scale.tolist()}

    @classmethod
    def from_dict(cls, state: dict[str, list[float]]) -> Scaler:
        """Rebuild a fitted scaler from :meth:`to_dict` output (a DataError when it is not
        one: keys missing, lengths that differ, a scale not finite and > 0)."""
        try:
            mean = np.asarray(state["mean"], dtype=np.float64)
            scale = np.asarray(state["scale"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as error:
            raise _bad_state(f"{type(error).__name__}: {error}") from error
        if mean.ndim != 1 or mean.shape != scale.shape or not len(mean):
            raise _bad_state(f"mean of shape {mean.shape}, scale of shape {scale.shape}")
        if not (np.isfinite(mean).all() and np.isfinite(scale).all() and (scale > 0).all()):
            raise _bad_state(f"mean {mean.tolist()[:5]}, scale {scale.tolist()[:5]}")
        scaler = cls()
        scaler.mean_, scaler.scale_ = mean, scale
        return scaler

    def _fitted(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        if self.mean_ is None or self.scale_ is None:
            raise NotFittedError(
                "This Scaler is not fitted yet.\n"
                "  Fix: call scaler.fit(training_data) before transform or inverse_transform."
            )
        return self.mean_, self.scale_

    def _checked(self, data: ArrayLike) -> NDArray[np.float64]:
        array = as_array(data, "data").astype(np.float64, copy=False)
        if array.ndim == 0 or array.shape[-1] != self.features:
            raise ShapeError(
                describe(
                    "data",
                    f"{self.features} features on the last axis (as fitted)",
                    f"shape {array.shape}",
                    problem="has the wrong shape.",
                )
            )
        require_finite(array, "data")
        return array


def _column_sums(rows: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each column's sum, by NumPy's pairwise summation along it (whatever the strides)."""
    return np.array([np.add.reduce(rows[:, j]) for j in range(rows.shape[1])], dtype=np.float64)


def _parts(data: ArrayLike | Sequence[ArrayLike]) -> list[NDArray[np.float64]]:
    items = (
        list(data) if isinstance(data, (list, tuple)) and data and np.ndim(data[0]) >= 2 else [data]
    )
    parts: list[NDArray[np.float64]] = []
    for index, item in enumerate(items):
        name = "data" if len(items) == 1 else f"data[{index}]"
        array = as_array(item, name).astype(np.float64, copy=False)
        if array.ndim < 2:
            raise ShapeError(
                describe(
                    name,
                    "an array with features on the last axis, at least 2-D",
                    f"shape {array.shape}",
                    fix="For one feature use values[:, None].",
                    problem="has the wrong shape.",
                )
            )
        require_finite(array, name)
        if parts and array.shape[-1] != parts[0].shape[-1]:
            raise ShapeError(
                describe(
                    name,
                    f"{parts[0].shape[-1]} features, like data[0]",
                    f"shape {array.shape}",
                    problem="has the wrong shape.",
                )
            )
        parts.append(array)
    return parts


def _bad_state(received: str) -> DataError:
    return DataError(
        describe(
            "state",
            "Scaler.to_dict()'s {'mean': [...], 'scale': [...]}: one finite mean and one "
            "finite scale > 0 per feature",
            received[:200],
            problem="is not a scaler's state.",
        )
    )
