"""One stream's event as the service takes it, and the checks of its values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._errors import describe

__all__ = ["Event", "event_steps", "event_values"]


@dataclass(frozen=True)
class Event:
    """One stream's step(s): ``values`` is ``(inputs,)`` or ``(k, inputs)`` in original units."""

    stream: str
    values: Any
    seq: int | None = None
    start: bool = False
    end: bool = False


def event_steps(event: Event) -> int:
    """How many steps ``event`` holds, from the shape of its values alone (before they are
    checked: what batching under ``--max-steps`` needs to know).

    >>> event_steps(Event("a", [1.0, 2.0])), event_steps(Event("a", [[1.0], [2.0], [3.0]]))
    (1, 3)
    """
    values = event.values
    return len(values) if len(values) and isinstance(values[0], (list, tuple)) else 1


def event_values(
    event: Event, *, inputs: int, max_steps: int
) -> tuple[NDArray[np.float64] | None, str | None]:
    """``(values (k, inputs), None)``, or ``(None, why not)`` naming the field.

    >>> event_values(Event("a", [1.0, 2.0]), inputs=2, max_steps=8)[0].shape
    (1, 2)
    >>> print(event_values(Event("a", [1.0]), inputs=2, max_steps=8)[1])
    values has the wrong shape.
      Expected: 2 numbers per step (or a list of such steps)
      Received: shape (1,)
    """
    try:
        values = np.asarray(event.values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int past any float
        return None, describe(
            "values", "numbers", repr(event.values)[:80], problem="are not numbers."
        )
    if values.ndim == 1:
        values = values[None]
    if values.ndim != 2 or values.shape[1] != inputs or len(values) == 0:
        return None, describe(
            "values",
            f"{inputs} numbers per step (or a list of such steps)",
            f"shape {tuple(np.shape(event.values))}",
            problem="has the wrong shape.",
        )
    if not np.isfinite(values).all():
        return None, describe("values", "finite numbers", "NaN or inf", problem="hold NaN or inf.")
    if len(values) > max_steps:
        return None, describe(
            "values",
            f"at most --max-event-steps {max_steps} steps per event",
            f"{len(values)} steps",
            problem="hold too many steps.",
            fix="Split the event into several with consecutive seq.",
        )
    return values, None
