"""``Forecaster``: a stateful recurrent forecaster for one or many series."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from .._errors import ConfigError, DataError, NotFittedError, ShapeError, describe
from .._validate import plain_numbers, require_positive_int
from ..data import Scaler, load_table, pack_lanes
from ..data._checks import as_array, require_finite
from ..nn import Carry, SequenceModel, select_rows
from ._checkpoint import load_checkpoint, save_checkpoint
from ._estimator_config import EstimatorConfig
from ._seeding import seeded
from ._tbptt import History, fit, run_layout

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CHUNKS_PER_LANE", "Forecast", "Forecaster", "ForecasterConfig"]

CHUNKS_PER_LANE = 16
"""With ``lanes=None``, each lane gets at least this many chunks per epoch."""


@dataclass(frozen=True, kw_only=True)
class ForecasterConfig(EstimatorConfig):
    """Settings of :class:`Forecaster`; every field is validated on creation.

    The model reads, at every step, the scaled values of the series (and of
    the optional covariates) and predicts the next ``horizon`` values. It is
    trained by truncated BPTT over ``lanes`` x ``chunk`` lane layouts, each
    series split over the lanes; the last ``validation_share`` of every series
    is held out for early stopping. ``lanes=None`` picks as many lanes as keep
    at least :data:`CHUNKS_PER_LANE` chunks (weight updates) per lane and
    epoch, at most 64: too many lanes on a short series leave too few updates.
    The model and training fields are those of :class:`EstimatorConfig`.
    """

    horizon: int = 1
    lanes: int | None = None
    chunk: int = 64

    def __post_init__(self) -> None:
        plain_numbers(self)
        require_positive_int("lanes", self.lanes, optional=True)
        require_positive_int("horizon", self.horizon)
        require_positive_int("chunk", self.chunk)
        super().__post_init__()


@dataclass(frozen=True, eq=False)
class Forecast:
    """Per-step forecasts of one series and the carry after its last step.

    ``values[t, k]`` is the forecast, made after step ``t``, of step
    ``t + 1 + k`` (original units; shape ``(steps, horizon, targets)``).
    """

    values: NDArray[np.float64]
    carry: Carry


class Forecaster:
    """Fit a stateful LSTM/GRU forecaster; forecast and continue from the carried state.

    >>> t = np.arange(600.0)
    >>> series = np.sin(2 * np.pi * t / 24)
    >>> config = ForecasterConfig(hidden=16, chunk=24, epochs=40, learning_rate=0.01,
    ...                           progress=False)
    >>> model = Forecaster(config).fit(series)
    >>> bool(np.abs(model.forecast()[0, 0, 0] - np.sin(2 * np.pi * 600 / 24)) < 0.2)
    True
    """

    def __init__(self, config: ForecasterConfig | None = None) -> None:
        self.config = config or ForecasterConfig()
        self.model_: SequenceModel | None = None
        self.scaler_: Scaler | None = None
        self.covariate_scaler_: Scaler | None = None
        self.history_: History | None = None
        self.streams_: list[Hashable] = []
        self.carry_: Carry | None = None
        self.targets_ = 0
        self.lanes_ = 0

    # ----------------------------------------------------------------- fitting
    def fit(
        self,
        data: ArrayLike | Sequence[ArrayLike] | pd.DataFrame,
        *,
        covariates: ArrayLike | Sequence[ArrayLike] | None = None,
        target: str | Sequence[str] | None = None,
        features: Sequence[str] | None = None,
        time: str | None = None,
        group: str | None = None,
    ) -> Forecaster:
        """Train on one series ``(steps,)``/``(steps, targets)``, a list, or a DataFrame.

        With a DataFrame, ``target`` names the forecast column(s), ``features``
        optional covariate columns, ``group`` one series per stream.
        """
        series, extra, keys = _series(data, covariates, target, features, time, group)
        config = self.config
        self.targets_ = series[0].shape[1]
        self.streams_ = keys
        cuts = [len(s) - round(len(s) * config.validation_share) for s in series]
        for key, s, cut in zip(keys, series, cuts, strict=True):
            if cut <= config.horizon + 1:
                raise DataError(
                    describe(
                        f"series {key!r}",
                        f"more than {config.horizon + 1} training steps",
                        f"{len(s)} steps",
                        problem="is too short.",
                    )
                )
        self.scaler_ = Scaler().fit([s[:cut] for s, cut in zip(series, cuts, strict=True)])
        if extra is not None:
            self.covariate_scaler_ = Scaler().fit(
                [e[:cut] for e, cut in zip(extra, cuts, strict=True)]
            )
        inputs = self._inputs(series, extra)
        scaled = [self.scaler_.transform(s) for s in series]

        train_x, train_y, held_x, held_y = [], [], [], []
        for x, y, cut in zip(inputs, scaled, cuts, strict=True):
            x_part, y_part = self._supervised(x[:cut], y[:cut])
            train_x.append(x_part)
            train_y.append(y_part)
            if cut < len(y):
                warm = max(0, cut - config.chunk)
                x_part, y_part = self._supervised(x[warm:], y[warm:])
                if len(x_part):
                    held_x.append(x_part)
                    held_y.append(y_part)
        lanes = config.lanes or self._auto_lanes(sum(len(x) for x in train_x))
        self.lanes_ = lanes
        layout = pack_lanes(train_x, targets=train_y, lanes=lanes, chunk=config.chunk, split=True)
        validation = (
            None
            if not held_x
            else pack_lanes(
                held_x, targets=held_y, lanes=min(lanes, len(held_x)), chunk=config.chunk
            )
        )

        with seeded(config.seed):  # the caller's global generators stay as they were
            self.model_ = SequenceModel(
                config.model_config(
                    inputs=inputs[0].shape[1], outputs=config.horizon * self.targets_
                )
            )
        self.history_ = fit(
            self.model_, layout, config=config.train_config(), validation=validation
        )
        self.carry_ = self._final_carry(inputs)
        return self

    # -------------------------------------------------------------- predicting
    def predict(
        self, data: ArrayLike, *, covariates: ArrayLike | None = None, carry: Carry | None = None
    ) -> Forecast:
        """Forecasts after every step of ``data`` (one series), from ``carry`` or zero."""
        model, scaler = self._fitted()
        series = _as_series(data, "data", self.targets_)
        extra = None if covariates is None else _as_series(covariates, "covariates", None)
        x = self._inputs([series], None if extra is None else [extra])[0]
        with torch.no_grad():
            dtype = next(model.parameters()).dtype
            xs = torch.as_tensor(x, dtype=dtype)[None]
            outputs, carry = model(xs, carry)
        values = outputs[0].double().numpy().reshape(len(x), self.config.horizon, self.targets_)
        return Forecast(values=scaler.inverse_transform(values), carry=carry)

    def forecast(self) -> NDArray[np.float64]:
        """``(streams, horizon, targets)``: the next values after the latest step seen."""
        model, scaler = self._fitted()
        assert self.carry_ is not None
        with torch.no_grad():
            values = model.readout(self.carry_).double().numpy()
        shaped = values.reshape(len(self.streams_), self.config.horizon, self.targets_)
        return scaler.inverse_transform(shaped)

    def update(
        self,
        data: ArrayLike,
        *,
        stream: Hashable | None = None,
        covariates: ArrayLike | None = None,
    ) -> Forecast:
        """Feed new steps of one stream, continue its carried state, keep the new state."""
        if self.carry_ is None:
            raise NotFittedError("This Forecaster is not fitted yet.\n  Fix: call fit() first.")
        key = self.streams_[0] if stream is None else stream
        if key not in self.streams_:
            raise DataError(
                describe("stream", f"one of {self.streams_}", repr(key), problem="is unknown.")
            )
        row = self.streams_.index(key)
        rows = torch.tensor([row])
        result = self.predict(data, covariates=covariates, carry=select_rows(self.carry_, rows))
        self.carry_ = tuple(
            part.index_copy(1, rows, new)
            for part, new in zip(self.carry_, result.carry, strict=True)
        )
        return result

    def carry_of(self, stream: Hashable) -> Carry:
        """The carried state of one stream after the latest step seen."""
        if self.carry_ is None:
            raise NotFittedError("This Forecaster is not fitted yet.\n  Fix: call fit() first.")
        return select_rows(self.carry_, torch.tensor([self.streams_.index(stream)]))

    # --------------------------------------------------------------- persisting
    def save(self, directory: str | Path) -> Path:
        """Write the model, its carry, the scalers and the config to ``directory``."""
        model, scaler = self._fitted()
        return save_checkpoint(
            directory,
            model,
            carry=self.carry_,
            metadata={
                "estimator": "Forecaster",
                "config": asdict(self.config),
                "scaler": scaler.to_dict(),
                "covariate_scaler": None
                if self.covariate_scaler_ is None
                else self.covariate_scaler_.to_dict(),
                "streams": [_json_key(key) for key in self.streams_],
                "targets": self.targets_,
            },
        )

    @classmethod
    def load(cls, directory: str | Path) -> Forecaster:
        """Load a forecaster written by :meth:`save`; predictions are identical."""
        model, carry, metadata = load_checkpoint(directory)
        forecaster = cls(ForecasterConfig(**metadata["config"]))
        forecaster.model_ = model  # type: ignore[assignment]
        forecaster.carry_ = carry
        forecaster.scaler_ = Scaler.from_dict(metadata["scaler"])
        if metadata["covariate_scaler"] is not None:
            forecaster.covariate_scaler_ = Scaler.from_dict(metadata["covariate_scaler"])
        forecaster.streams_ = list(metadata["streams"])
        forecaster.targets_ = int(metadata["targets"])
        return forecaster

    # ----------------------------------------------------------------- helpers
    def _fitted(self) -> tuple[SequenceModel, Scaler]:
        if self.model_ is None or self.scaler_ is None:
            raise NotFittedError("This Forecaster is not fitted yet.\n  Fix: call fit() first.")
        return self.model_, self.scaler_

    def _inputs(
        self, series: list[NDArray[np.float64]], extra: list[NDArray[np.float64]] | None
    ) -> list[NDArray[np.float64]]:
        assert self.scaler_ is not None
        scaled = [self.scaler_.transform(s) for s in series]
        if extra is None:
            if self.covariate_scaler_ is not None:
                raise ShapeError(
                    describe(
                        "covariates",
                        "the covariates the model was fitted with",
                        "None",
                        problem="are missing.",
                    )
                )
            return scaled
        if self.covariate_scaler_ is None:
            raise ShapeError(
                describe(
                    "covariates",
                    "None (fitted without covariates)",
                    "covariates",
                    problem="were not fitted.",
                )
            )
        return [
            np.concatenate([s, self.covariate_scaler_.transform(e)], axis=1)
            for s, e in zip(scaled, extra, strict=True)
        ]

    def _auto_lanes(self, steps: int) -> int:
        return max(1, min(64, steps // (self.config.chunk * CHUNKS_PER_LANE)))

    def _supervised(
        self, x: NDArray[np.float64], y: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        horizon = self.config.horizon
        steps = len(y) - horizon
        if steps <= 0:
            return x[:0], np.zeros((0, horizon * y.shape[1]))
        ahead = np.stack([y[1 + k : 1 + k + steps] for k in range(horizon)], axis=1)
        return x[:steps], ahead.reshape(steps, -1)

    def _final_carry(self, inputs: list[NDArray[np.float64]]) -> Carry:
        assert self.model_ is not None
        layout = pack_lanes(inputs, lanes=len(inputs), chunk=max(len(x) for x in inputs))
        _, carry = run_layout(self.model_, layout, device=self.config.device)
        order = sorted(layout.placements, key=lambda placement: placement.sequence)
        lanes = torch.tensor([placement.lane for placement in order])
        # Sequences shorter than the longest ended early; their carry is held (masked steps).
        return tuple(part.cpu() for part in select_rows(carry, lanes.to(carry[0].device)))


def _json_key(key: Hashable) -> str | int | float:
    """A stream key as JSON keeps it: text and numbers unchanged, anything else as text."""
    if isinstance(key, np.generic):
        key = key.item()
    if isinstance(key, (str, int, float)) and not isinstance(key, bool):
        return key
    return str(key)


def _as_series(data: ArrayLike, argument: str, width: int | None) -> NDArray[np.float64]:
    array = as_array(data, argument).astype(np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or len(array) == 0:
        raise ShapeError(
            describe(
                argument,
                "a non-empty (steps,) or (steps, targets) array",
                f"shape {array.shape}",
                problem="has the wrong shape.",
            )
        )
    if width is not None and array.shape[1] != width:
        raise ShapeError(
            describe(
                argument,
                f"{width} target column(s), as fitted",
                f"shape {array.shape}",
                problem="has the wrong shape.",
            )
        )
    require_finite(array, argument)
    return array


def _series(
    data: Any, covariates: Any, target: Any, features: Any, time: Any, group: Any
) -> tuple[list[NDArray[np.float64]], list[NDArray[np.float64]] | None, list[Hashable]]:
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        if target is None:
            raise ConfigError(
                describe("target", "the column(s) to forecast", "None", problem="is missing.")
            )
        names = [target] if isinstance(target, str) else list(target)
        table = load_table(data, time=time, features=names, group=group)
        extra = None
        if features:
            extra = load_table(data, time=time, features=list(features), group=group).features
        return table.features, extra, list(table.groups)
    if (
        isinstance(data, (list, tuple))
        and data
        and np.ndim(data[0]) >= 1
        and not np.isscalar(data[0])
    ):
        series = [_as_series(item, f"data[{i}]", None) for i, item in enumerate(data)]
        extra = (
            None
            if covariates is None
            else [_as_series(item, f"covariates[{i}]", None) for i, item in enumerate(covariates)]
        )
    else:
        series = [_as_series(data, "data", None)]
        extra = None if covariates is None else [_as_series(covariates, "covariates", None)]
    width = series[0].shape[1]
    for index, s in enumerate(series):
        if s.shape[1] != width:
            raise ShapeError(
                describe(
                    f"data[{index}]",
                    f"{width} columns like data[0]",
                    f"shape {s.shape}",
                    problem="has the wrong shape.",
                )
            )
    if extra is not None:
        for index, (s, e) in enumerate(zip(series, extra, strict=True)):
            if len(e) != len(s):
                raise ShapeError(
                    describe(
                        f"covariates[{index}]",
                        f"{len(s)} steps",
                        f"shape {e.shape}",
                        problem="has the wrong shape.",
                    )
                )
    return series, extra, list(range(len(series)))
