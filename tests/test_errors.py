from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stateline import ConfigError, DataError, NotFittedError, ShapeError, StatelineError
from stateline._errors import describe
from stateline.anomaly import DetectorConfig, ForecastDetector

from .cli.test_main import run


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


def test_every_error_names_its_own_problem(tmp_path: Path) -> None:
    """#15, finding 16: no default headline; errors that are not about shapes do not say so."""
    with pytest.raises(TypeError):
        describe("x", "y", "z")  # type: ignore[call-arg]
    table = tmp_path / "t.csv"
    pd.DataFrame({"v": [1.0, 2.0]}).to_csv(table, index=False)
    rate = run("replay", str(table), "--token", "t", "--rate", "-1")
    assert rate.returncode == 1 and "--rate is invalid" in rate.stderr
    assert "wrong shape" not in rate.stderr
    with pytest.raises(ValueError, match="holds NaN or inf") as refused:
        ForecastDetector(DetectorConfig(predictor="moving_average", reference=5, warmup=1)).fit(
            np.array([[1.0], [float("nan")], [2.0]])
        )
    assert "wrong shape" not in str(refused.value)
