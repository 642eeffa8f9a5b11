"""Checks of option values shared by every layer (framework-free)."""

from __future__ import annotations

import dataclasses
import math
import numbers

from ._errors import ConfigError, describe

__all__ = ["plain_numbers", "require_number", "require_positive_int", "require_seed"]


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


def require_seed(value: object, name: str = "seed") -> None:
    """Raise ConfigError unless ``value`` is an int in [0, 2**64 - 1] (what PyTorch's
    generator takes; NumPy's takes any int >= 0).

    >>> require_seed(-1)
    Traceback (most recent call last):
    ...
    stateline._errors.ConfigError: seed is invalid.
      Expected: an integer from 0 to 2**64 - 1
      Received: -1
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or not 0 <= int(value) < 2**64
    ):
        raise ConfigError(
            describe(name, "an integer from 0 to 2**64 - 1", repr(value), problem="is invalid.")
        )


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


def plain_numbers(config: object) -> None:
    """Turn NumPy integers and floats in a (frozen) dataclass's fields into Python ones.

    Configuration takes ``np.int64(48)`` wherever it takes ``48`` (the value
    a NumPy computation gives), and keeps plain numbers, so that PyTorch and
    JSON take them too. Booleans stay as they are.

    >>> import numpy as np
    >>> @dataclasses.dataclass(frozen=True)
    ... class Example:
    ...     chunk: int
    ...     rate: float
    ...     def __post_init__(self) -> None:
    ...         plain_numbers(self)
    >>> example = Example(np.int64(48), np.float32(0.5))
    >>> type(example.chunk).__name__, type(example.rate).__name__
    ('int', 'float')
    """
    for item in dataclasses.fields(config):  # type: ignore[arg-type]
        value = getattr(config, item.name)
        if isinstance(value, bool) or type(value) in (int, float):
            continue
        if isinstance(value, numbers.Integral):
            object.__setattr__(config, item.name, int(value))
        elif isinstance(value, numbers.Real) and type(value).__module__ == "numpy":
            object.__setattr__(config, item.name, float(value))
