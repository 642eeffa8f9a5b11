"""Load a CSV, Parquet file or pandas DataFrame into per-stream sequences."""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from .._errors import ConfigError, DataError, describe
from ._checks import check_times
from ._lanes import LaneLayout, pack_lanes

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SequenceSet", "load_table", "time_disorder"]


@dataclass(frozen=True, eq=False)
class SequenceSet:
    """Time-ordered sequences read from a table, one per stream (group).

    Attributes:
        features: one ``(length_i, features)`` float array per stream.
        targets: one ``(length_i,)`` array per stream for a single target column,
            ``(length_i, targets)`` for several, or ``None``.
        times: one ``(length_i,)`` array of time stamps per stream, or ``None``.
        groups: the stream key of every sequence, in order of first appearance.
        feature_names, target_names: column names, in array order.
    """

    features: list[NDArray[np.float64]]
    targets: list[NDArray[np.float64]] | None
    times: list[NDArray[Any]] | None
    groups: list[Hashable]
    feature_names: tuple[str, ...]
    target_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.features)

    @property
    def lengths(self) -> list[int]:
        """Number of time steps of each sequence."""
        return [len(array) for array in self.features]

    def pack(self, *, lanes: int, chunk: int, split: bool = False) -> LaneLayout:
        """Pack these sequences (and their targets) into stateful lanes."""
        return pack_lanes(
            self.features, lanes=lanes, chunk=chunk, targets=self.targets, split=split
        )


def load_table(
    source: str | PathLike[str] | pd.DataFrame,
    *,
    time: str | None = None,
    features: Sequence[str] | None = None,
    targets: str | Sequence[str] | None = None,
    group: str | None = None,
    sep: str = ",",
    time_order: Literal["strict", "file"] = "strict",
) -> SequenceSet:
    """Read a table into one sequence per stream.

    Args:
        source: a DataFrame, or the path of a ``.csv`` (``sep``-separated) or
            ``.parquet`` file.
        time: time column; parsed to datetimes when it holds text. Within each
            stream it must be strictly increasing (sort the table first),
            unless ``time_order="file"``: then rows stay in file order even
            where a time stamp repeats or steps back (a clock change, a
            stream replayed as it arrived); :func:`time_disorder` counts them.
        features: feature columns; by default every column that is not the
            time, group or a target column (all of them must then be numeric).
        targets: one target column (targets are 1-D per step) or a list.
        group: stream/group column; each distinct value becomes one sequence,
            in order of first appearance, keeping the table's row order.

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"t": [1, 2, 1, 2, 3], "sensor": list("aabbb"),
    ...                       "value": [0.1, 0.2, 1.0, 1.1, 1.2], "y": [0, 1, 0, 0, 1]})
    >>> table = load_table(frame, time="t", targets="y", group="sensor")
    >>> table.groups, table.lengths, table.feature_names
    (['a', 'b'], [2, 3], ('value',))
    """
    import pandas as pd

    frame = _plain_names(_read(source, sep))
    time, group = _name(time), _name(group)
    if features is not None:
        features = [_name(name) for name in features]
    if targets is not None:
        targets = _name(targets) if _scalar(targets) else [_name(name) for name in targets]
    target_names = _names(targets, "targets")
    feature_names = _feature_names(frame, features, time, group, target_names)
    _require_columns(
        frame,
        [*feature_names, *target_names, *(name for name in (time, group) if name is not None)],
    )
    if time is not None and not (
        pd.api.types.is_numeric_dtype(frame[time])
        or pd.api.types.is_datetime64_any_dtype(frame[time])
    ):
        try:
            with warnings.catch_warnings():
                # pandas warns when it cannot infer one format; a failure still raises below.
                warnings.simplefilter("ignore", UserWarning)
                parsed = _parse_times(frame[time])
            frame = frame.assign(**{time: parsed})
        except (TypeError, ValueError) as error:
            raise DataError(
                describe(
                    f"column {time!r}",
                    "times or numbers",
                    f"values that do not parse as times ({error})",
                    problem="is not a time column.",
                )
            ) from error

    for name in [*feature_names, *target_names]:
        _check_column(frame, name)

    if group is None:
        parts: list[tuple[Hashable, pd.DataFrame]] = [("all", frame)]
    else:
        if frame[group].isna().any():
            row = frame.index[frame[group].isna().to_numpy()][0]
            raise DataError(
                describe(
                    f"column {group!r}",
                    "a stream key on every row",
                    f"a missing key at row {row}",
                    problem="has gaps.",
                )
            )
        # One pass (a mask per key was a scan per key: 5,000 streams took 23 s); keys in the
        # order they first appear, each stream's rows in file order.
        grouped = frame.groupby(group, sort=False, observed=True)
        parts = [(key, frame.iloc[rows]) for key, rows in grouped.indices.items()]

    if time_order not in ("strict", "file"):
        raise ConfigError(
            describe("time_order", "'strict' or 'file'", repr(time_order), problem="is unknown.")
        )
    if time is not None:  # time_order="file": rows in file order, but every one has a time
        for key, part in parts:
            _check_times(part, time, key if group is not None else None, time_order == "strict")

    return SequenceSet(
        features=[part[list(feature_names)].to_numpy(dtype=np.float64) for _, part in parts],
        targets=None
        if not target_names
        else [
            part[target_names[0]].to_numpy(dtype=np.float64)
            if isinstance(targets, str)
            else part[list(target_names)].to_numpy(dtype=np.float64)
            for _, part in parts
        ],
        times=None if time is None else [part[time].to_numpy() for _, part in parts],
        groups=[key for key, _ in parts],
        feature_names=feature_names,
        target_names=target_names,
    )


def _read(source: str | PathLike[str] | pd.DataFrame, sep: str) -> pd.DataFrame:
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        frame = source
    else:
        path = Path(source)
        if not path.is_file():
            raise DataError(
                describe(
                    "source",
                    "an existing .csv or .parquet file",
                    f"{str(path)!r}, which does not exist",
                    problem="is not a file.",
                )
            )
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep=sep)
    if len(frame) == 0:
        raise DataError(
            describe("source", "at least one row", "an empty table", problem="is empty.")
        )
    return frame


def _parse_times(column: pd.Series) -> pd.Series:
    """Text as datetimes; stamps of several UTC offsets (a local clock across a daylight
    saving change, as pandas writes it) as the instants they name, in UTC."""
    import pandas as pd

    try:
        parsed = pd.to_datetime(column)
    except ValueError:
        return pd.to_datetime(column, utc=True)  # raises too when the text is not times
    if not pd.api.types.is_datetime64_any_dtype(parsed):  # offsets kept apart, as objects
        return pd.to_datetime(column, utc=True)
    return parsed


def _plain_names(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its column names as text (``pd.DataFrame(array)`` names them 0, 1, ...),
    refused when two columns share a name (which of them would be read?)."""
    names = [str(name) for name in frame.columns]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(
            describe(
                "source",
                "one column per name",
                f"columns named {repeated[:5]} more than once",
                problem="has repeated column names.",
                fix="Rename or drop the repeated columns.",
            )
        )
    if all(isinstance(name, str) for name in frame.columns):
        return frame
    return frame.set_axis(names, axis=1)


def _scalar(name: object) -> bool:
    return isinstance(name, str | int | np.integer)


def _name(name: Any) -> Any:
    """A column named as :func:`_plain_names` names it (``0`` -> ``"0"``)."""
    return str(name) if isinstance(name, int | np.integer) and not isinstance(name, bool) else name


def _names(columns: str | Sequence[str] | None, argument: str) -> tuple[str, ...]:
    if columns is None:
        return ()
    names = (columns,) if isinstance(columns, str) else tuple(columns)
    if not names:
        raise ConfigError(
            describe(argument, "at least one column name", "an empty list", problem="is invalid.")
        )
    return names


def _feature_names(
    frame: pd.DataFrame,
    features: Sequence[str] | None,
    time: str | None,
    group: str | None,
    target_names: tuple[str, ...],
) -> tuple[str, ...]:
    import pandas as pd

    if features is not None:
        return _names(features, "features")
    reserved = {name for name in (time, group) if name is not None} | set(target_names)
    names = tuple(str(column) for column in frame.columns if column not in reserved)
    text = [name for name in names if not pd.api.types.is_numeric_dtype(frame[name])]
    if text:
        raise DataError(
            describe(
                "features",
                "numeric feature columns",
                f"non-numeric column(s) {text}",
                problem="cannot be chosen automatically.",
                fix="Pass features=[...] naming the feature columns, and time=/group= "
                "for the time and stream columns.",
            )
        )
    if not names:
        raise DataError(
            describe(
                "features",
                "at least one feature column",
                "no columns left after time, group and targets",
                problem="is empty.",
            )
        )
    return names


def _require_columns(frame: pd.DataFrame, names: list[str]) -> None:
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise DataError(
            describe(
                "columns",
                f"columns present in the table: {[str(column) for column in frame.columns]}",
                f"missing {missing}",
                problem="are missing.",
            )
        )


def _check_column(frame: pd.DataFrame, name: str) -> None:
    import pandas as pd

    column = frame[name]
    numeric = pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)
    if not numeric or pd.api.types.is_complex_dtype(column):  # complex: imaginary part lost
        raise DataError(
            describe(
                f"column {name!r}", "numbers", f"dtype {column.dtype}", problem="is not numeric."
            )
        )
    values = column.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row = frame.index[bad][0]
        raise DataError(
            describe(
                f"column {name!r}",
                "finite values (no NaN or inf)",
                f"{int(bad.sum())} missing or infinite value(s); the first at row {row}",
                problem="holds NaN or inf.",
                fix="Fill or drop them first (for example DataFrame.interpolate()).",
            )
        )


def time_disorder(times: NDArray[Any]) -> int:
    """How many time stamps repeat or step back from the one before them.

    >>> time_disorder(np.array([1, 2, 2, 1, 5]))
    2
    """
    stamps = np.asarray(times)
    return int((stamps[1:] <= stamps[:-1]).sum()) if len(stamps) > 1 else 0


def _check_times(part: pd.DataFrame, time: str, key: Hashable | None, increasing: bool) -> None:
    where = f" in stream {key!r}" if key is not None else ""
    stamps = part[time].to_numpy()
    check_times(stamps, f"column {time!r}", increasing=increasing, where=where, rows=part.index)
