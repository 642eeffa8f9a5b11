"""A layout's targets checked against the model's outputs and the task, before training.

The losses broadcast: a model of one output trained on targets of three
columns, or binary logits on labels 0..4, would train without a word and learn
nothing useful. :func:`check_targets` refuses such targets, reading only the
real steps (padding may hold anything).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._errors import DataError, ShapeError, describe

__all__ = ["check_targets", "model_outputs"]


def model_outputs(model: Any) -> int | None:
    """The number of outputs per step the model's config declares (None: not declared)."""
    outputs = getattr(getattr(model, "config", None), "outputs", None)
    return outputs if isinstance(outputs, int) else None


def check_targets(
    y: NDArray[Any], real: NDArray[np.bool_], *, task: str, outputs: int | None, name: str
) -> None:
    """Refuse targets ``y`` (``(chunks, lanes, chunk[, k])``) that ``task`` cannot read
    for a model of ``outputs`` outputs per step; ``real`` marks the real steps.

    >>> y = np.zeros((1, 2, 3, 3))
    >>> check_targets(y, np.ones((1, 2, 3), bool), task="regression", outputs=1, name="layout.y")
    Traceback (most recent call last):
    ...
    stateline._errors.ShapeError: layout.y does not fit the model's outputs.
      Expected: one target per step, or (..., 1) targets per step (the model's outputs)
      Received: 3 targets per step
      Fix: Give the model as many outputs as the targets have columns, or pick columns.
    """
    per_step = 1 if y.ndim == 3 else int(y.shape[3])
    if task == "multiclass":
        if y.ndim != 3:
            raise ShapeError(
                describe(
                    name,
                    "one class id per step ((chunks, lanes, chunk))",
                    f"shape {y.shape}",
                    problem="does not fit the task 'multiclass'.",
                )
            )
        _check_classes(y[real], outputs, name)
        return
    if y.ndim > 4:
        raise ShapeError(
            describe(
                name,
                "(chunks, lanes, chunk) or (chunks, lanes, chunk, targets)",
                f"shape {y.shape}",
                problem="has too many axes.",
            )
        )
    if outputs is not None and per_step != outputs:
        raise ShapeError(
            describe(
                name,
                f"one target per step, or (..., {outputs}) targets per step (the model's outputs)"
                if outputs == 1
                else f"(..., {outputs}) targets per step (the model's outputs)",
                f"{per_step} target{'s' if per_step != 1 else ''} per step",
                problem="does not fit the model's outputs.",
                fix="Give the model as many outputs as the targets have columns, or pick columns.",
            )
        )
    if task == "binary":
        values = np.asarray(y[real], dtype=np.float64)
        outside = ~((values >= 0) & (values <= 1))
        if outside.any():
            raise DataError(
                describe(
                    name,
                    "labels in [0, 1] on every real step (task 'binary')",
                    f"{values[outside][0]!r} ({int(outside.sum())} values outside)",
                    problem="does not fit the task 'binary'.",
                    fix="Map the labels to 0 and 1, or use task='multiclass' for class ids.",
                )
            )


def _check_classes(labels: NDArray[Any], outputs: int | None, name: str) -> None:
    values = np.asarray(labels, dtype=np.float64)
    top = "" if outputs is None else f" below {outputs} (the model's outputs)"
    bad = ~(np.isfinite(values) & (values >= 0) & (values == np.round(values)))
    if outputs is not None:
        bad |= values >= outputs
    if bad.any():
        raise DataError(
            describe(
                name,
                f"class ids: whole numbers from 0{top} on every real step",
                f"{values[bad][0]!r} ({int(bad.sum())} such values)",
                problem="does not fit the task 'multiclass'.",
                fix="Encode the classes as 0 .. classes - 1 and give the model that many outputs.",
            )
        )
