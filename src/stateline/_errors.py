"""One exception hierarchy for stateline.

Every error stateline raises on purpose is a :class:`StatelineError`. The
subclasses also inherit the matching builtin, so ``except ValueError`` keeps
working for code that does not know about stateline.

Messages follow one shape: what was wrong, ``Expected: ...``, ``Received: ...``
and, where there is a known fix, what to do.

>>> try:
...     message = describe(
...         "x", "a 2-D array (samples, features)", "shape (5,)", problem="has the wrong shape."
...     )
...     raise ShapeError(message)
... except ValueError as error:
...     print(error)
x has the wrong shape.
  Expected: a 2-D array (samples, features)
  Received: shape (5,)
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "NotFittedError",
    "ShapeError",
    "StatelineError",
    "describe",
]


class StatelineError(Exception):
    """Base class of every error stateline raises on purpose."""


class ShapeError(StatelineError, ValueError):
    """An array has the wrong number of dimensions or the wrong size."""


class DataError(StatelineError, ValueError):
    """Values are unusable: NaN or inf, empty, unordered time, missing columns."""


class ConfigError(StatelineError, ValueError):
    """An option or argument has an invalid value."""


class NotFittedError(StatelineError, RuntimeError):
    """An estimator or scaler was used before it was fitted."""


def describe(
    argument: str,
    expected: str,
    received: str,
    *,
    problem: str,
    fix: str | None = None,
) -> str:
    """Build an error message in stateline's shape; ``problem`` says what is wrong.

    (It has no default: a default headline ended up on errors it did not fit.)

    >>> print(describe("lanes", "an integer >= 1", "0", problem="is invalid.",
    ...                fix="Pass lanes=1 or more."))
    lanes is invalid.
      Expected: an integer >= 1
      Received: 0
      Fix: Pass lanes=1 or more.
    """
    lines = [f"{argument} {problem}", f"  Expected: {expected}", f"  Received: {received}"]
    if fix:
        lines.append(f"  Fix: {fix}")
    return "\n".join(lines)
