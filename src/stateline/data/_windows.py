"""Supervised windows from a time-ordered table: ``(samples, features)`` to
``(windows, steps, features)`` inputs with matching targets.

This is the shaping that stateless (windowed) LSTM models need. It is also the
peer that stateline's stateful lanes are measured against: every time step is
copied into up to ``steps + 1`` windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._errors import ConfigError, DataError, ShapeError, describe
from ._checks import (
    as_array,
    check_times,
    choice,
    positive_int,
    require_finite,
    require_ndim,
    require_nonempty,
)

__all__ = ["Windows", "windows"]

Shift = Literal["features", "labels", "both"]
Target = Literal["last", "sequence"]

_SHIFTS: tuple[str, ...] = ("features", "labels", "both")
_TARGETS: tuple[str, ...] = ("last", "sequence")


@dataclass(frozen=True, eq=False)
class Windows:
    """Windows cut from one table, with the time index of every target.

    Attributes:
        x: inputs, shape ``(windows, window_length, inputs)``.
        y: targets, or ``None`` when no labels were given. Shape ``(windows,)``
            for ``target="last"`` (plus a ``horizon`` axis and the label axis when
            present), ``(windows, window_length, ...)`` for ``target="sequence"``.
        index: ``(windows,)`` table row of each window's *current label*, the one
            its last input step predicts.
        target_index: table row of every entry of ``y`` (same leading shape as
            ``y`` without the label axis), or ``None`` when there are no labels.
        time: ``time[index]`` when a time column was given, else ``None``.
        samples: number of rows in the source table.
    """

    x: NDArray[Any]
    y: NDArray[Any] | None
    index: NDArray[np.int64]
    target_index: NDArray[np.int64] | None
    time: NDArray[Any] | None
    samples: int
    horizon: int | None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def place(self, values: ArrayLike, *, lead: int = 0) -> NDArray[np.float64]:
        """Put one value per window back on the time axis of the source table.

        ``values[w]`` lands on row ``index[w] + lead``; rows without a value are
        NaN. Use ``lead=k`` to place the ``k``-th step of a horizon forecast.

        >>> w = windows(labels=np.arange(6.0), steps=2, shift="labels")
        >>> w.place(w.y * 10).tolist()
        [nan, nan, 20.0, 30.0, 40.0, 50.0]
        """
        array = np.asarray(values, dtype=np.float64)
        if array.ndim == 0 or array.shape[0] != len(self):
            raise ShapeError(
                describe(
                    "values",
                    f"one value per window: leading axis {len(self)}",
                    f"shape {array.shape}",
                    problem="has the wrong shape.",
                )
            )
        largest_lead = (self.horizon or 1) - 1
        if isinstance(lead, bool) or not isinstance(lead, int) or not 0 <= lead <= largest_lead:
            raise ConfigError(
                describe(
                    "lead",
                    f"an integer in 0..{largest_lead} (horizon - 1)",
                    repr(lead),
                    problem="is invalid.",
                )
            )
        timeline = np.full((self.samples, *array.shape[1:]), np.nan)
        timeline[self.index + lead] = array
        return timeline


def windows(
    features: ArrayLike | None = None,
    labels: ArrayLike | None = None,
    *,
    steps: int,
    shift: Shift = "features",
    target: Target = "last",
    horizon: int | None = None,
    stride: int = 1,
    time: ArrayLike | None = None,
) -> Windows:
    """Cut a time-ordered table into supervised windows.

    Row ``t`` is the *current* step; its label ``labels[t]`` is what a window
    predicts. ``shift`` chooses what the inputs are:

    ===========  ==========================================  =============
    shift        inputs of the window whose current step is t  window length
    ===========  ==========================================  =============
    "features"   ``features[t-steps : t+1]`` (lags and now)  ``steps + 1``
    "labels"     ``labels[t-steps : t]``                     ``steps``
    "both"       ``features`` and ``labels`` of
                 ``[t-steps : t]`` side by side              ``steps``
    ===========  ==========================================  =============

    ``target="last"`` gives one target per window (many-to-one),
    ``target="sequence"`` one per input step (many-to-many: the step's own label
    for ``"features"``, the next label for ``"labels"``/``"both"``).
    ``horizon=h`` replaces each target by the next ``h`` targets starting at it
    (seq2seq). ``stride`` skips current steps. Windows start at the first row
    with a full history and end where the horizon still fits.

    Args:
        features: ``(samples, features)`` inputs; not allowed with ``shift="labels"``.
        labels: ``(samples,)`` or ``(samples, targets)``; required unless
            ``shift="features"`` (then ``y`` is ``None``).
        steps: number of previous time steps in each window (>= 1).
        time: optional ``(samples,)`` time stamps, strictly increasing with none missing;
            ``Windows.time`` gives the
            time of every window's current label.

    >>> table = np.arange(12.0).reshape(6, 2)       # 6 samples, 2 features
    >>> w = windows(table, labels=np.arange(6) * 10, steps=2)
    >>> w.x.shape, w.y.tolist(), w.index.tolist()
    ((4, 3, 2), [20, 30, 40, 50], [2, 3, 4, 5])
    >>> w = windows(labels=np.arange(6.0), steps=3, shift="labels", horizon=2)
    >>> w.x[0, :, 0].tolist(), w.y[0].tolist()
    ([0.0, 1.0, 2.0], [3.0, 4.0])
    """
    steps = positive_int(steps, "steps")
    stride = positive_int(stride, "stride")
    shift_name = choice(shift, "shift", _SHIFTS)
    target_name = choice(target, "target", _TARGETS)
    horizon_length = 1 if horizon is None else positive_int(horizon, "horizon")

    x_table = _features_table(features, shift_name)
    y_table = _labels_table(labels, shift_name, target_name, horizon)
    samples = _common_length(x_table, y_table)
    time_values = _time_column(time, samples)

    if steps + horizon_length > samples:  # no window (and np.arange of a huge steps fails)
        raise DataError(
            describe(
                "features" if x_table is not None else "labels",
                f"at least steps + horizon = {steps + horizon_length} samples",
                f"{samples} samples",
                problem="is too short for one window.",
                fix="Use fewer steps or a shorter horizon, or provide more data.",
            )
        )
    current = np.arange(steps, samples - horizon_length + 1, stride, dtype=np.int64)

    own_step = shift_name == "features"
    window_length = steps + 1 if own_step else steps
    first_row = current - steps
    rows = first_row[:, None] + np.arange(window_length, dtype=np.int64)

    parts: list[NDArray[Any]] = []
    if x_table is not None:
        parts.append(x_table[rows])
    if shift_name in ("labels", "both") and y_table is not None:
        parts.append(_as_columns(y_table)[rows])
    x = (
        parts[0]
        if len(parts) == 1
        else np.concatenate(
            [part.astype(np.result_type(*parts), copy=False) for part in parts], axis=-1
        )
    )

    y: NDArray[Any] | None = None
    target_index: NDArray[np.int64] | None = None
    if y_table is not None:
        anchors = current if target_name == "last" else rows + (0 if own_step else 1)
        target_index = anchors
        if horizon is not None:
            target_index = anchors[..., None] + np.arange(horizon_length, dtype=np.int64)
        y = y_table[target_index]

    return Windows(
        x=x,
        y=y,
        index=current,
        target_index=target_index,
        time=None if time_values is None else time_values[current],
        samples=samples,
        horizon=horizon,
    )


def _features_table(features: ArrayLike | None, shift: str) -> NDArray[Any] | None:
    if features is None:
        if shift in ("features", "both"):
            raise ConfigError(
                describe(
                    "features",
                    f"a (samples, features) array for shift={shift!r}",
                    "None",
                    problem="is missing.",
                    fix='Pass features, or use shift="labels" to predict from past labels.',
                )
            )
        return None
    if shift == "labels":
        raise ConfigError(
            describe(
                "features",
                'None with shift="labels" (inputs are past labels only)',
                "an array",
                problem="would be ignored.",
                fix='Use shift="both" to feed past features and labels, or drop features.',
            )
        )
    table = as_array(features, "features")
    require_ndim(
        table,
        "features",
        (2,),
        "a 2-D array (samples, features)",
        fix="For one feature use values[:, None] or values.reshape(-1, 1).",
    )
    require_nonempty(table, "features")
    require_finite(table, "features")
    return table


def _labels_table(
    labels: ArrayLike | None, shift: str, target: str, horizon: int | None
) -> NDArray[Any] | None:
    if labels is None:
        if shift != "features":
            raise ConfigError(
                describe(
                    "labels",
                    f"a (samples,) or (samples, targets) array for shift={shift!r}",
                    "None",
                    problem="is missing.",
                )
            )
        if target != "last" or horizon is not None:
            raise ConfigError(
                describe(
                    "labels",
                    "an array when target or horizon is set",
                    "None",
                    problem="is missing.",
                )
            )
        return None
    table = as_array(labels, "labels")
    require_ndim(table, "labels", (1, 2), "a 1-D (samples,) or 2-D (samples, targets) array")
    require_finite(table, "labels")
    return table


def _as_columns(table: NDArray[Any]) -> NDArray[Any]:
    return table[:, None] if table.ndim == 1 else table


def _common_length(x_table: NDArray[Any] | None, y_table: NDArray[Any] | None) -> int:
    if x_table is not None and y_table is not None and len(x_table) != len(y_table):
        raise ShapeError(
            describe(
                "labels",
                f"one label row per feature row: {len(x_table)} rows",
                f"{len(y_table)} rows",
                problem="has the wrong shape.",
            )
        )
    table = x_table if x_table is not None else y_table
    assert table is not None
    return len(table)


def _time_column(time: ArrayLike | None, samples: int) -> NDArray[Any] | None:
    if time is None:
        return None
    values = np.asarray(time)
    if values.ndim != 1 or len(values) != samples:
        raise ShapeError(
            describe(
                "time",
                f"a 1-D array of {samples} time stamps",
                f"shape {values.shape}",
                problem="has the wrong shape.",
            )
        )
    check_times(values, "time")  # each window's time names one instant, in order
    return values
