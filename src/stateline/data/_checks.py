"""Argument checks shared by the data layer; every failure names the argument."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._errors import ConfigError, DataError, ShapeError, describe


def positive_int(value: object, argument: str) -> int:
    """Return ``value`` as an int if it is an integer >= 1, else raise ConfigError.

    >>> positive_int(3, "chunk")
    3
    >>> positive_int(0, "chunk")
    Traceback (most recent call last):
    ...
    stateline._errors.ConfigError: chunk is invalid.
      Expected: an integer >= 1
      Received: 0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise ConfigError(describe(argument, "an integer >= 1", repr(value), problem="is invalid."))
    return int(value)


def choice(value: object, argument: str, options: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``options``, else raise ConfigError."""
    if not isinstance(value, str) or value not in options:
        expected = "one of " + ", ".join(repr(option) for option in options)
        raise ConfigError(describe(argument, expected, repr(value), problem="is invalid."))
    return value


def as_array(value: object, argument: str) -> NDArray[Any]:
    """Convert ``value`` to a NumPy array, refusing non-numeric content, complex numbers
    (their imaginary part would be dropped on the way to a float model) and masked arrays
    (their mask would be dropped: masked values read as numbers)."""
    if isinstance(value, np.ma.MaskedArray) and np.ma.getmaskarray(value).any():
        raise DataError(
            describe(
                argument,
                "a plain numeric array",
                f"a masked array with {int(np.ma.getmaskarray(value).sum())} masked values",
                problem="has masked values.",
                fix="Fill them (value.filled(...)), or drop those steps; for sequences of "
                "different lengths, pass a list of arrays (pack_lanes masks the padding).",
            )
        )
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise DataError(
            describe(
                argument,
                "a numeric array",
                f"{type(value).__name__} ({error})",
                problem="is not an array.",
            )
        ) from error
    if (
        array.dtype == object
        or array.dtype.kind == "c"
        or not (np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_))
    ):
        raise DataError(
            describe(
                argument,
                "a numeric array",
                f"dtype {array.dtype}",
                problem="is not numeric.",
                fix="Convert the values to numbers (for example with astype(float)).",
            )
        )
    return array


def require_ndim(
    array: NDArray[Any], argument: str, ndims: tuple[int, ...], meaning: str, fix: str | None = None
) -> None:
    """Raise ShapeError unless ``array.ndim`` is one of ``ndims``."""
    if array.ndim not in ndims:
        raise ShapeError(
            describe(
                argument,
                meaning,
                f"{array.ndim}-D array of shape {array.shape}",
                fix=fix,
                problem="has the wrong shape.",
            )
        )


def require_finite(array: NDArray[Any], argument: str) -> None:
    """Raise DataError naming the first NaN or inf in ``array``."""
    if not np.issubdtype(array.dtype, np.inexact):
        return
    bad = ~np.isfinite(array)
    if bad.any():
        position = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            describe(
                argument,
                "finite values (no NaN or inf)",
                f"{int(bad.sum())} non-finite value(s); the first is {array[position]!r} "
                f"at index {position}",
                problem="holds NaN or inf.",
                fix="Fill or drop the missing values before windowing or packing "
                "(for example DataFrame.interpolate() or dropna()).",
            )
        )


def require_nonempty(array: NDArray[Any], argument: str) -> None:
    """Raise DataError if ``array`` has no time steps, or (2-D and more) no features."""
    if array.shape[0] == 0:
        raise DataError(
            describe(
                argument, "at least one time step", f"shape {array.shape}", problem="is empty."
            )
        )
    if array.ndim >= 2 and 0 in array.shape[1:]:
        raise DataError(
            describe(
                argument,
                "at least one feature per time step",
                f"shape {array.shape}",
                problem="has no features.",
            )
        )


def check_features(arrays: list[NDArray[Any]], argument: str = "sequences") -> None:
    """Every array has the first one's number of features (its second axis)."""
    width = arrays[0].shape[1]
    for index, array in enumerate(arrays):
        if array.shape[1] != width:
            raise ShapeError(
                describe(
                    f"{argument}[{index}]",
                    f"{width} features, like {argument}[0]",
                    f"{array.shape[1]} features (shape {array.shape})",
                    problem="has the wrong shape.",
                )
            )


def check_times(
    stamps: NDArray[Any],
    argument: str,
    *,
    increasing: bool = True,
    where: str = "",
    rows: Any = None,
) -> None:
    """Refuse missing time stamps (NaT, NaN, None) and, when ``increasing``, any that do not
    strictly increase; ``where`` (" in stream 'a'") and ``rows`` (the row labels) say where.

    >>> check_times(np.array(["2024-01-02", "2024-01-01"], dtype="datetime64[D]"), "time")
    Traceback (most recent call last):
    ...
    stateline._errors.DataError: time is not monotonic.
      Expected: strictly increasing time
      Received: 2024-01-02 followed by 2024-01-01 at row 1
      Fix: Sort by time and remove duplicate time stamps.
    """
    labels = rows if rows is not None else np.arange(len(stamps))
    if stamps.dtype.kind in "mM":
        missing = np.isnat(stamps)
    elif stamps.dtype.kind == "f":
        missing = np.isnan(stamps)
    elif stamps.dtype.kind == "O":
        missing = np.fromiter((v is None or v != v for v in stamps), dtype=bool, count=len(stamps))
    else:
        missing = np.zeros(len(stamps), dtype=bool)
    if missing.any():
        position = int(np.argmax(missing))
        raise DataError(
            describe(
                argument,
                f"a time stamp on every row{where}",
                f"{stamps[position]} at row {labels[position]} ({int(missing.sum())} missing)",
                problem="has missing time stamps.",
                fix="Drop the rows without a time stamp, or fill them in.",
            )
        )
    if not increasing or len(stamps) < 2:
        return
    order = stamps[1:] > stamps[:-1]
    if not order.all():
        position = int(np.argmin(order)) + 1
        raise DataError(
            describe(
                argument,
                f"strictly increasing time{where}",
                f"{stamps[position - 1]} followed by {stamps[position]} at row {labels[position]}",
                problem="is not monotonic.",
                fix=f"Sort by {argument} and remove duplicate time stamps.",
            )
        )
