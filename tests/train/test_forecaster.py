from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from stateline import (
    ConfigError,
    DataError,
    Forecaster,
    ForecasterConfig,
    NotFittedError,
    ShapeError,
)
from stateline.data import taylor_electricity

QUICK = {"hidden": 8, "chunk": 16, "epochs": 3, "progress": False}


def wave(n: int, phase: float = 0.0) -> np.ndarray:
    t = np.arange(n)
    return np.sin(2 * np.pi * t / 24 + phase) + 0.1 * np.cos(2 * np.pi * t / 7)


def test_continuing_the_carried_state_equals_running_the_whole_series() -> None:
    series = wave(300)
    forecaster = Forecaster(ForecasterConfig(**QUICK)).fit(series[:200])
    whole = forecaster.predict(series)
    continued = forecaster.update(series[200:])
    np.testing.assert_allclose(continued.values, whole.values[200:], atol=1e-5)
    np.testing.assert_allclose(forecaster.forecast()[0], whole.values[-1], atol=1e-5)


def test_horizon_and_several_targets_shapes() -> None:
    series = np.stack([wave(200), wave(200, 1.0)], axis=1)
    forecaster = Forecaster(ForecasterConfig(horizon=3, **QUICK)).fit(series)
    assert forecaster.forecast().shape == (1, 3, 2)
    assert forecaster.predict(series[:50]).values.shape == (50, 3, 2)


def test_dataframe_with_streams_and_covariates() -> None:
    frame = pd.DataFrame(
        {
            "t": np.tile(np.arange(150), 2),
            "sensor": np.repeat(["a", "b"], 150),
            "load": np.concatenate([wave(150), wave(150, 2.0)]),
            "hour": np.tile(np.arange(150) % 24, 2) / 24,
        }
    )
    forecaster = Forecaster(ForecasterConfig(**QUICK)).fit(
        frame, target="load", features=["hour"], time="t", group="sensor"
    )
    assert forecaster.streams_ == ["a", "b"]
    assert forecaster.forecast().shape == (2, 1, 1)
    before_b = forecaster.forecast()[1].copy()
    forecaster.update(wave(5), stream="a", covariates=np.arange(5)[:, None] / 24)
    np.testing.assert_array_equal(forecaster.forecast()[1], before_b)  # b's carry untouched
    with pytest.raises(ShapeError, match="covariates"):
        forecaster.update(wave(5), stream="a")


def test_named_series_keep_their_names(tmp_path: Path) -> None:
    """A dict of series: the names are the streams (`stateline train --group` passes one,
    so a saved model is updated by name), through save and load."""
    data = {"pump-1": wave(120), "pump-2": wave(90, 1.0)}
    covariates = {"pump-2": np.ones((90, 1)), "pump-1": np.zeros((120, 1))}
    forecaster = Forecaster(ForecasterConfig(**QUICK)).fit(data, covariates=covariates)
    assert forecaster.streams_ == ["pump-1", "pump-2"]
    loaded = Forecaster.load(forecaster.save(tmp_path / "named"))
    assert loaded.streams_ == ["pump-1", "pump-2"]
    loaded.update(wave(3), stream="pump-2", covariates=np.ones((3, 1)))
    with pytest.raises(DataError, match="pump-3"):
        loaded.update(wave(3), stream="pump-3", covariates=np.ones((3, 1)))
    with pytest.raises(DataError, match="covariates are missing"):
        Forecaster(ForecasterConfig(**QUICK)).fit(data, covariates={"pump-1": np.zeros((120, 1))})
    with pytest.raises(ShapeError, match=r"data\['short'\]"):
        Forecaster(ForecasterConfig(**QUICK)).fit({"short": np.zeros((0,))})


def test_save_and_load_give_identical_forecasts(tmp_path: Path) -> None:
    series = wave(200)
    forecaster = Forecaster(ForecasterConfig(cell="gru", **QUICK)).fit(series)
    forecaster.save(tmp_path / "model")
    loaded = Forecaster.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.forecast(), forecaster.forecast())
    np.testing.assert_array_equal(
        loaded.update(series[:10]).values, forecaster.update(series[:10]).values
    )
    assert loaded.streams_ == forecaster.streams_ == [0]
    np.testing.assert_array_equal(
        loaded.update(series[:3], stream=0).values, forecaster.update(series[:3], stream=0).values
    )


def test_lanes_are_chosen_from_the_data() -> None:
    forecaster = Forecaster(ForecasterConfig(**QUICK)).fit(wave(2000))
    assert forecaster.lanes_ == 2000 * 9 // 10 // (16 * 16)


def test_errors() -> None:
    with pytest.raises(NotFittedError, match="fit"):
        Forecaster().forecast()
    with pytest.raises(ConfigError, match="horizon"):
        ForecasterConfig(horizon=0)
    with pytest.raises(ConfigError, match="validation_share"):
        ForecasterConfig(validation_share=0.7)
    with pytest.raises(DataError, match="too short"):
        Forecaster(ForecasterConfig(**QUICK)).fit(np.arange(2.0))
    with pytest.raises(DataError, match="NaN"):
        Forecaster(ForecasterConfig(**QUICK)).fit(np.array([1.0, np.nan] * 50))
    forecaster = Forecaster(ForecasterConfig(**QUICK)).fit(wave(100))
    with pytest.raises(ShapeError, match="1 target"):
        forecaster.predict(np.zeros((5, 2)))
    with pytest.raises(DataError, match="unknown"):
        forecaster.update(wave(3), stream="nope")
    with pytest.raises(ConfigError, match="target"):
        Forecaster(ForecasterConfig(**QUICK)).fit(pd.DataFrame({"x": [1.0, 2.0]}))


def test_beats_seasonal_naive_and_persistence_on_real_electricity_load() -> None:
    """Taylor half-hourly demand: 10 weeks to train, 2 weeks held back, one step ahead."""
    y = taylor_electricity()
    cut = 3360
    config = ForecasterConfig(hidden=64, chunk=48, lanes=4, epochs=40, progress=False)
    forecaster = Forecaster(config).fit(y[:cut])
    first = forecaster.forecast()[0, 0, 0]
    predictions = np.concatenate([[first], forecaster.update(y[cut:-1]).values[:, 0, 0]])
    ours = np.mean(np.abs(predictions - y[cut:]))
    seasonal_naive = np.mean(np.abs(y[cut - 336 : -336] - y[cut:]))
    persistence = np.mean(np.abs(y[cut - 1 : -1] - y[cut:]))
    assert ours < 0.8 * seasonal_naive
    assert ours < 0.8 * persistence


def test_fitting_leaves_the_global_random_generator_alone() -> None:
    """#15, finding 17: fit is seeded by its config, not by reseeding the caller's generator."""
    torch.manual_seed(1234)
    before = torch.random.get_rng_state()
    expected_next = torch.rand(3)
    torch.random.set_rng_state(before)
    series = np.sin(np.arange(200.0) / 5)
    config = ForecasterConfig(hidden=4, chunk=20, epochs=2, progress=False, seed=7)
    first = Forecaster(config).fit(series)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert torch.equal(torch.rand(3), expected_next)
    second = Forecaster(config).fit(series)  # still reproducible from its own seed
    for a, b in zip(first.model_.parameters(), second.model_.parameters(), strict=True):
        assert torch.equal(a, b)


def test_numpy_numbers_are_taken_wherever_plain_ones_are(tmp_path: Path) -> None:
    """#15, finding 16: ``ForecasterConfig(chunk=np.int64(48))`` works, fits and saves."""
    config = ForecasterConfig(
        chunk=np.int64(20), hidden=np.int32(4), epochs=np.int64(1), learning_rate=np.float32(0.01),
        progress=False,
    )  # fmt: skip
    assert type(config.chunk) is int and type(config.learning_rate) is float
    model = Forecaster(config).fit(np.sin(np.arange(200.0) / 5))
    model.save(tmp_path / "model")
    assert Forecaster.load(tmp_path / "model").config == config


def test_an_unknown_stream_is_named_by_carry_of_too() -> None:
    forecaster = Forecaster(ForecasterConfig(**QUICK)).fit({"p1": wave(60)})
    with pytest.raises(DataError, match=r"(?s)stream is unknown.*'zzz'"):
        forecaster.carry_of("zzz")
    assert forecaster.carry_of("p1")[0].shape[1] == 1
