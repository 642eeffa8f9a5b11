"""``Forecaster``: a stateful recurrent forecaster for one or many series."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from .._errors import ConfigError, DataError, NotFittedError, ShapeError, describe
from .._validate import plain_numbers, require_positive_int
from ..data import Moments, Scaler, load_table, pack_lanes, place_lanes, scan_parquet
from ..data._checks import as_array, check_features, require_finite
from ..data._parquet import is_parquet_source
from ..nn import Carry, SequenceModel, select_rows
from ._checkpoint import load_estimator, save_checkpoint
from ._distributed import Ranks
from ._estimator_config import EstimatorConfig
from ._loss import device_for
from ._seeding import seeded
from ._tbptt import History, fit, run_layout

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CHUNKS_PER_LANE", "Forecast", "Forecaster", "ForecasterConfig"]

FloatT = TypeVar("FloatT", np.float32, np.float64)

CHUNKS_PER_LANE = 16
"""With ``lanes=None``, each lane gets at least this many chunks per epoch."""
FINAL_CARRY_BATCH = 256
"""Series run together to find the carries after fitting."""


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

    def training_steps(self, steps: int) -> int:
        """Of a series of ``steps``, how many the model trains on: the rest, its last
        ``validation_share``, is held out for early stopping.

        >>> ForecasterConfig(validation_share=0.1).training_steps(95)
        85
        """
        return steps - round(steps * self.validation_share)


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
        data: ArrayLike
        | Sequence[ArrayLike]
        | Mapping[Hashable, ArrayLike]
        | pd.DataFrame
        | str
        | PathLike[str],
        *,
        covariates: ArrayLike | Sequence[ArrayLike] | Mapping[Hashable, ArrayLike] | None = None,
        target: str | Sequence[str] | None = None,
        features: Sequence[str] | None = None,
        time: str | None = None,
        group: str | None = None,
    ) -> Forecaster:
        """Train on one series ``(steps,)``/``(steps, targets)``, a list, a dict of named
        series (the names are the streams; ``covariates`` a list or a dict alike), a
        DataFrame, or a Parquet dataset.

        With a DataFrame, ``target`` names the forecast column(s), ``features``
        optional covariate columns, ``group`` one series per stream. A folder of
        Parquet files (or one file) takes the same names, ``group`` required; its
        rows keep the dataset's order (files by path), as ``pandas.read_parquet``
        gives them. Under ``torchrun`` each process reads only the series its
        lanes hold (the keys and lengths of all of them come from the group
        column alone), the scalers are fitted on all the series' training parts
        (their moments added over the processes), and every process ends with
        the estimator one process fits on all the data.
        """
        source = _source(data, covariates, target, features, time, group)
        config = self.config
        cuts = [config.training_steps(n) for n in source.lengths]
        for key, n, cut in zip(source.keys, source.lengths, cuts, strict=True):
            if cut <= config.horizon + 1:
                raise DataError(
                    describe(
                        f"series {key!r}",
                        f"more than {config.horizon + 1} training steps",
                        f"{n} steps",
                        problem="is too short.",
                    )
                )
        self.targets_ = source.targets
        self.streams_ = list(source.keys)
        train_lengths = [cut - config.horizon for cut in cuts]
        lanes = config.lanes or self._auto_lanes(sum(train_lengths))
        self.lanes_ = lanes
        # Where every series goes is decided from the lengths alone, alike on every process;
        # each reads the series with a piece in its block of lanes, and scores (validation,
        # moments, final carry) those that start there: each series on exactly one process.
        ranks = Ranks.current(device_for(config.device))
        block = place_lanes(train_lengths, lanes=lanes, chunk=config.chunk, split=True).block(
            ranks.lanes(lanes)
        )
        owned = block.starts
        read = ranks.together(lambda: source.read(block.sequences))
        self.scaler_ = Scaler.from_moments(
            ranks.add(_moments([read[i][0][: cuts[i]] for i in owned], source.targets))
        )
        self.covariate_scaler_ = None
        if source.covariates:
            parts = [_present(read[i][1])[: cuts[i]] for i in owned]
            self.covariate_scaler_ = Scaler.from_moments(
                ranks.add(_moments(parts, source.covariates))
            )
            del parts
        # Series by series, so that the values read can go before the lanes are packed.
        inputs: dict[int, NDArray[np.float32]] = {}
        train_x, train_y, held_x, held_y = {}, {}, [], []
        for i in sorted(read):
            series, extra = read.pop(i)
            # float32, as the model reads them (fit would cast each chunk's float64 the
            # same way): the lanes, validation and final carries then hold half the bytes.
            x = self._inputs([series], None if extra is None else [extra])[0].astype(np.float32)
            y, cut = x[:, : self.targets_], cuts[i]  # the scaled targets lead the inputs
            inputs[i] = x
            train_x[i], train_y[i] = self._supervised(x[:cut], y[:cut])
            if i in owned and cut < len(y):
                warm = max(0, cut - config.chunk)
                x_part, y_part = self._supervised(x[warm:], y[warm:])
                if len(x_part):
                    held_x.append(x_part)
                    held_y.append(y_part)
        del read, series, extra
        layout = block.pack(train_x, targets=train_y)
        del train_x, train_y
        validation = (
            None
            if not held_x
            else pack_lanes(
                held_x, targets=held_y, lanes=min(lanes, len(held_x)), chunk=config.chunk
            )
        )
        del held_x, held_y

        with seeded(config.seed):  # the caller's global generators stay as they were
            self.model_ = SequenceModel(
                config.model_config(
                    inputs=next(iter(inputs.values())).shape[1],
                    outputs=config.horizon * self.targets_,
                )
            )
        self.history_ = fit(
            self.model_,
            layout,
            config=config.train_config(),
            validation=validation,
            rank_layouts=True,
        )
        self.model_.eval()  # its own model: predicted with, not trained, from here
        del layout, validation
        self.carry_ = self._final_carry(ranks, owned, [inputs[i] for i in owned])
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
        row = self._row_of(key)
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
        return select_rows(self.carry_, torch.tensor([self._row_of(stream)]))

    def _row_of(self, stream: Hashable) -> int:
        if stream not in self.streams_:
            shown = self.streams_ if len(self.streams_) <= 10 else [*self.streams_[:10], "..."]
            raise DataError(
                describe("stream", f"one of {shown}", repr(stream), problem="is unknown.")
            )
        return self.streams_.index(stream)

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
        model, carry, metadata = load_estimator(directory, "Forecaster", needs_carry=True)
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
        self, x: NDArray[FloatT], y: NDArray[FloatT]
    ) -> tuple[NDArray[FloatT], NDArray[FloatT]]:
        horizon = self.config.horizon
        steps = len(y) - horizon
        if steps <= 0:
            return x[:0], np.zeros((0, horizon * y.shape[1]), dtype=y.dtype)
        ahead = np.stack([y[1 + k : 1 + k + steps] for k in range(horizon)], axis=1)
        return x[:steps], ahead.reshape(steps, -1)

    def _final_carry(
        self, ranks: Ranks, owned: Sequence[int], inputs: list[NDArray[np.float32]]
    ) -> Carry:
        """The carry of every series after its last step: each process runs the series it
        owns, and they are gathered in the series' order."""
        assert self.model_ is not None
        mine: Carry | None = None
        batches = []
        # A few hundred series at a time: one batch of all of them, each padded to the
        # longest, held more memory than the series themselves.
        for first in range(0, len(inputs), FINAL_CARRY_BATCH):
            batch = inputs[first : first + FINAL_CARRY_BATCH]
            layout = pack_lanes(batch, lanes=len(batch), chunk=max(len(x) for x in batch))
            _, carry = run_layout(self.model_, layout, device=self.config.device)
            order = sorted(layout.placements, key=lambda placement: placement.sequence)
            lanes = torch.tensor([placement.lane for placement in order])
            # Sequences shorter than the longest ended early; their carry is held (masked steps).
            batches.append(
                tuple(part.cpu() for part in select_rows(carry, lanes.to(carry[0].device)))
            )
        if batches:
            mine = tuple(torch.cat(parts, dim=1) for parts in zip(*batches, strict=True))
        if ranks.world == 1:
            assert mine is not None
            return mine
        gathered = cast(list[tuple[list[int], Carry | None]], ranks.gather((list(owned), mine)))
        parts = [(positions, carry) for positions, carry in gathered if carry is not None]
        everyone = [position for positions, _ in parts for position in positions]
        joined = tuple(
            torch.cat(pieces, dim=1) for pieces in zip(*(c for _, c in parts), strict=True)
        )
        return select_rows(joined, torch.as_tensor(np.argsort(everyone)))


@dataclass(frozen=True)
class _Source:
    """The series to fit: every key and length up front, the values of some on demand
    (``read(positions) -> {position: (series, covariates or None)}``)."""

    keys: Sequence[Hashable]
    lengths: Sequence[int]
    targets: int
    covariates: int
    read: Callable[
        [Sequence[int]], dict[int, tuple[NDArray[np.float64], NDArray[np.float64] | None]]
    ]


def _source(
    data: Any, covariates: Any, target: Any, features: Any, time: Any, group: Any
) -> _Source:
    if is_parquet_source(data):
        return _parquet_source(data, covariates, target, features, time, group)
    series, extra, keys = _series(data, covariates, target, features, time, group)
    return _Source(
        keys=keys,
        lengths=[len(s) for s in series],
        targets=series[0].shape[1],
        covariates=0 if extra is None else extra[0].shape[1],
        read=lambda positions: {
            i: (series[i], None if extra is None else extra[i]) for i in positions
        },
    )


def _parquet_source(
    path: Any, covariates: Any, target: Any, features: Any, time: Any, group: Any
) -> _Source:
    if target is None:
        raise ConfigError(
            describe("target", "the column(s) to forecast", "None", problem="is missing.")
        )
    if covariates is not None:
        raise ConfigError(
            describe(
                "covariates",
                "None with a Parquet dataset",
                "arrays",
                problem="cannot go with a Parquet dataset.",
                fix="Name the covariate columns with features=[...].",
            )
        )
    names = [target] if isinstance(target, str) else list(target)
    if not names:
        raise ConfigError(
            describe("target", "the column(s) to forecast", "an empty list", problem="is empty.")
        )
    extra = list(features or [])
    dataset = scan_parquet(path, group=group, columns=[*names, *extra], time=time)
    width = len(names)

    def read(
        positions: Sequence[int],
    ) -> dict[int, tuple[NDArray[np.float64], NDArray[np.float64] | None]]:
        values = dataset.read(positions, time=time)
        return {i: (v[:, :width], v[:, width:] if extra else None) for i, v in values.items()}

    return _Source(
        keys=dataset.keys,
        lengths=dataset.lengths,
        targets=width,
        covariates=len(extra),
        read=read,
    )


def _moments(parts: list[NDArray[np.float64]], width: int) -> Moments:
    return Moments.of(parts) if parts else Moments.empty(width)


def _present(array: NDArray[np.float64] | None) -> NDArray[np.float64]:
    assert array is not None
    return array


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
        names = [str(target)] if isinstance(target, str | int | np.integer) else list(target)
        table = load_table(data, time=time, features=names, group=group)
        extra = None
        if features:
            extra = load_table(data, time=time, features=list(features), group=group).features
        return table.features, extra, list(table.groups)
    keys: list[Hashable] | None = None
    if isinstance(data, Mapping):  # named series: the names are the streams
        keys = list(data)
        if isinstance(covariates, Mapping):
            missing = [key for key in keys if key not in covariates]
            if missing:
                raise DataError(
                    describe(
                        "covariates",
                        "covariates for every named series",
                        f"none for {missing[:5]!r}",
                        problem="are missing.",
                    )
                )
            covariates = [covariates[key] for key in keys]
        data = [data[key] for key in keys]
    if (
        isinstance(data, (list, tuple))
        and data
        and np.ndim(data[0]) >= 1
        and not np.isscalar(data[0])
    ):
        labels: list[Hashable] = keys or list(range(len(data)))
        series = [
            _as_series(item, f"data[{k!r}]", None) for k, item in zip(labels, data, strict=True)
        ]
        if covariates is not None and len(covariates) != len(data):
            raise ShapeError(
                describe(
                    "covariates",
                    f"one covariate series per series: {len(data)}",
                    f"{len(covariates)}",
                    problem="has the wrong length.",
                )
            )
        extra = (
            None
            if covariates is None
            else [
                _as_series(item, f"covariates[{k!r}]", None)
                for k, item in zip(labels, covariates, strict=True)
            ]
        )
    else:
        series = [_as_series(data, "data", None)]
        extra = None if covariates is None else [_as_series(covariates, "covariates", None)]
    check_features(series, "data")
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
    return series, extra, keys or list(range(len(series)))
