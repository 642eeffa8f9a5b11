"""Checks of option values shared by every layer (framework-free)."""

from __future__ import annotations

from ._errors import ConfigError, describe

__all__ = ["require_positive_int"]


def require_positive_int(name: str, value: object, *, optional: bool = False) -> None:
    """Raise ConfigError unless ``value`` is an int >= 1 (or None when ``optional``).

    Booleans are refused although Python counts them as ints.

    >>> require_positive_int("lanes", 0)
    Traceback (most recent call last):
    ...
    stateline._errors.ConfigError: lanes is invalid.
      Expected: an integer >= 1
      Received: 0
    """
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        expected = "None or an integer >= 1" if optional else "an integer >= 1"
        raise ConfigError(describe(name, expected, repr(value), problem="is invalid."))
