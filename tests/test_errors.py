from __future__ import annotations

import pytest

from stateline import ConfigError, DataError, NotFittedError, ShapeError, StatelineError


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (ShapeError, ValueError),
        (DataError, ValueError),
        (ConfigError, ValueError),
        (NotFittedError, RuntimeError),
    ],
)
def test_every_error_is_a_stateline_error_and_its_builtin(
    error: type[Exception], builtin: type[Exception]
) -> None:
    assert issubclass(error, StatelineError)
    assert issubclass(error, builtin)
