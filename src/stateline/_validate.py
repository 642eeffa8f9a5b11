"""Checks of option values shared by every layer (framework-free)."""

from __future__ import annotations

import math
import numbers

from ._errors import ConfigError, describe

__all__ = ["require_number", "require_positive_int"]


def require_positive_int(name: str, value: object, *, optional: bool = False) -> None:
    """Raise ConfigError unless ``value`` is an int >= 1 (or None when ``optional``).

    Booleans are refused although Python counts them as ints; NumPy integers
    are ints.

    >>> require_positive_int("lanes", 0)
    Traceback (most recent call last):
    ...
    stateline._errors.ConfigError: lanes is invalid.
      Expected: an integer >= 1
      Received: 0
    """
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        expected = "None or an integer >= 1" if optional else "an integer >= 1"
        raise ConfigError(describe(name, expected, repr(value), problem="is invalid."))


def require_number(name: str, value: object, expected: str, low: float, high: float) -> None:
    """Raise ConfigError unless ``value`` is a finite real number in ``[low, high]``.

    >>> require_number("alarm", "0.5", "a score in (0, 1]", 0.0, 1.0)
    Traceback (most recent call last):
    ...
    stateline._errors.ConfigError: alarm is invalid.
      Expected: a score in (0, 1]
      Received: '0.5'
    """
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not number or not math.isfinite(float(value)) or not low <= float(value) <= high:  # type: ignore[arg-type]
        raise ConfigError(describe(name, expected, repr(value), problem="is invalid."))
