from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stateline import ConfigError, DataError, ShapeError, windows

TABLE = np.arange(20.0).reshape(10, 2)  # row t holds [2t, 2t + 1]
LABELS = np.arange(10) * 100  # row t holds 100 t


def test_shift_features_uses_lags_and_current_step() -> None:
    w = windows(TABLE, LABELS, steps=2)
    assert w.x.shape == (8, 3, 2)
    assert w.x[0].tolist() == [[0, 1], [2, 3], [4, 5]]
    assert w.y.tolist() == [200, 300, 400, 500, 600, 700, 800, 900]
    assert w.index.tolist() == list(range(2, 10))


def test_shift_labels_uses_previous_labels_only() -> None:
    w = windows(labels=LABELS, steps=3, shift="labels")
    assert w.x.shape == (7, 3, 1)
    assert w.x[0, :, 0].tolist() == [0, 100, 200]
    assert w.y[0] == 300
    assert w.index[0] == 3


def test_shift_both_excludes_the_current_step() -> None:
    w = windows(TABLE, LABELS, steps=2, shift="both")
    assert w.x.shape == (8, 2, 3)
    assert w.x[0].tolist() == [[0, 1, 0], [2, 3, 100]]
    assert w.y[0] == 200


def test_sequence_target_features_gives_each_steps_own_label() -> None:
    w = windows(TABLE, LABELS, steps=2, target="sequence")
    assert w.y.shape == (8, 3)
    assert w.y[0].tolist() == [0, 100, 200]
    assert w.target_index[0].tolist() == [0, 1, 2]


def test_sequence_target_labels_gives_each_step_the_next_label() -> None:
    w = windows(labels=LABELS, steps=3, shift="labels", target="sequence")
    assert w.x[0, :, 0].tolist() == [0, 100, 200]
    assert w.y[0].tolist() == [100, 200, 300]


def test_horizon_returns_the_next_targets_and_trims_the_end() -> None:
    w = windows(labels=LABELS, steps=2, shift="labels", horizon=3)
    assert w.y.shape == (6, 3)
    assert w.y[0].tolist() == [200, 300, 400]
    assert w.y[-1].tolist() == [700, 800, 900]
    assert w.target_index[-1].tolist() == [7, 8, 9]


def test_sequence_target_with_horizon() -> None:
    w = windows(TABLE, LABELS, steps=1, target="sequence", horizon=2)
    assert w.y.shape == (8, 2, 2)
    assert w.y[0].tolist() == [[0, 100], [100, 200]]


def test_multi_target_labels_keep_their_axis() -> None:
    labels = np.stack([LABELS, -LABELS], axis=1)
    w = windows(TABLE, labels, steps=1, horizon=2)
    assert w.y.shape == (8, 2, 2)
    assert w.y[0].tolist() == [[100, -100], [200, -200]]
    w = windows(labels=labels, steps=2, shift="labels")
    assert w.x.shape == (8, 2, 2)


def test_stride_skips_current_steps() -> None:
    w = windows(TABLE, LABELS, steps=2, stride=3)
    assert w.index.tolist() == [2, 5, 8]


def test_time_of_each_window_target() -> None:
    stamps = np.arange("2026-01-01T00", "2026-01-01T10", dtype="datetime64[h]")
    w = windows(TABLE, LABELS, steps=4, time=stamps)
    assert w.time[0] == np.datetime64("2026-01-01T04")


def test_place_puts_predictions_back_on_the_time_axis() -> None:
    w = windows(labels=LABELS.astype(float), steps=2, shift="labels", horizon=2)
    timeline = w.place(w.y[:, 1], lead=1)
    assert np.isnan(timeline[:3]).all()
    assert timeline[3:].tolist() == [300.0, 400.0, 500.0, 600.0, 700.0, 800.0, 900.0]
    with pytest.raises(ConfigError, match="lead"):
        w.place(w.y[:, 0], lead=2)
    with pytest.raises(ShapeError, match="values"):
        w.place(np.zeros(3))


def test_without_labels_only_inputs() -> None:
    w = windows(TABLE, steps=3)
    assert w.y is None and w.target_index is None
    assert w.x.shape == (7, 4, 2)


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        (
            {"features": np.arange(5.0), "labels": np.arange(5), "steps": 1},
            ShapeError,
            "values\\[:, None\\]",
        ),
        ({"features": TABLE, "labels": LABELS[:5], "steps": 1}, ShapeError, "10 rows"),
        ({"features": TABLE, "labels": LABELS, "steps": 0}, ConfigError, "steps"),
        ({"features": TABLE, "labels": LABELS, "steps": 2, "stride": 0}, ConfigError, "stride"),
        (
            {"features": TABLE, "labels": LABELS, "steps": 2, "shift": "past"},
            ConfigError,
            "'features', 'labels', 'both'",
        ),
        ({"features": TABLE, "labels": LABELS, "steps": 2, "target": "all"}, ConfigError, "target"),
        ({"features": TABLE, "labels": LABELS, "steps": 9, "horizon": 2}, DataError, "too short"),
        (
            {"features": TABLE, "labels": LABELS, "steps": 2, "shift": "labels"},
            ConfigError,
            "ignored",
        ),
        ({"labels": LABELS, "steps": 2}, ConfigError, "features is missing"),
        ({"features": TABLE, "steps": 2, "shift": "both"}, ConfigError, "labels is missing"),
        ({"features": TABLE, "steps": 2, "horizon": 2}, ConfigError, "labels is missing"),
        (
            {"features": np.where(TABLE == 7, np.nan, TABLE), "labels": LABELS, "steps": 1},
            DataError,
            "index \\(3, 1\\)",
        ),
        ({"features": TABLE, "labels": np.full(10, np.inf), "steps": 1}, DataError, "NaN or inf"),
        (
            {"features": TABLE, "labels": LABELS, "steps": 1, "time": np.arange(3)},
            ShapeError,
            "time",
        ),
        ({"features": [["a", "b"]], "labels": [1], "steps": 1}, DataError, "not numeric"),
    ],
)
def test_bad_input_names_the_argument(
    kwargs: dict[str, object], error: type[Exception], needle: str
) -> None:
    with pytest.raises(error, match=needle):
        windows(**kwargs)  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(
    samples=st.integers(1, 40),
    width=st.integers(1, 3),
    steps=st.integers(1, 6),
    shift=st.sampled_from(["features", "labels", "both"]),
    target=st.sampled_from(["last", "sequence"]),
    horizon=st.one_of(st.none(), st.integers(1, 4)),
    stride=st.integers(1, 4),
)
def test_every_window_matches_its_definition(
    samples: int, width: int, steps: int, shift: str, target: str, horizon: int | None, stride: int
) -> None:
    table = np.arange(samples * width, dtype=float).reshape(samples, width)
    labels = -np.arange(samples, dtype=float) - 1
    features = None if shift == "labels" else table
    h = horizon or 1
    if samples < steps + h:
        with pytest.raises(DataError):
            windows(
                features,
                labels,
                steps=steps,
                shift=shift,
                target=target,  # type: ignore[arg-type]
                horizon=horizon,
                stride=stride,
            )
        return
    w = windows(
        features,
        labels,
        steps=steps,
        shift=shift,
        target=target,  # type: ignore[arg-type]
        horizon=horizon,
        stride=stride,
    )
    assert w.index.tolist() == list(range(steps, samples - h + 1, stride))
    for row, t in enumerate(w.index):
        if shift == "features":
            expected = table[t - steps : t + 1]
        elif shift == "labels":
            expected = labels[t - steps : t, None]
        else:
            expected = np.concatenate([table[t - steps : t], labels[t - steps : t, None]], axis=1)
        np.testing.assert_array_equal(w.x[row], expected)
    assert w.target_index is not None and w.y is not None
    np.testing.assert_array_equal(w.y, labels[w.target_index])
    last_target = w.target_index if target == "last" else w.target_index[:, -1]
    first_of_horizon = last_target if horizon is None else last_target[..., 0]
    np.testing.assert_array_equal(first_of_horizon, w.index)
    assert w.target_index.max() < samples


def test_time_stamps_must_increase_and_be_there() -> None:
    """From a review: docs/data.md says non-monotonic and duplicate time stamps are refused;
    windows(time=...) took descending, repeated and missing ones."""
    x, y = np.arange(20.0).reshape(10, 2), np.arange(10.0)
    for time, problem in (
        (np.arange(10)[::-1], "is not monotonic"),
        (np.zeros(10), "is not monotonic"),
        (np.array([*np.arange(9.0), np.nan]), "has missing time stamps"),
        (np.array(["2020-01-01"] * 9 + ["NaT"], dtype="datetime64[D]"), "missing time stamps"),
    ):
        with pytest.raises(DataError, match=problem):
            windows(x, y, steps=2, time=time)


def test_no_features_complex_or_masked_values_are_refused() -> None:
    """From a review: each was taken silently (x of shape (8, 3, 0); a complex dtype; the
    mask dropped, the masked values read as numbers)."""
    y = np.arange(10.0)
    with pytest.raises(DataError, match="has no features"):
        windows(np.zeros((10, 0)), y, steps=2)
    with pytest.raises(DataError, match="is not numeric"):
        windows(np.ones((10, 2)) + 1j, y, steps=2)
    masked = np.ma.masked_array(np.ones((10, 2)), mask=np.eye(10, 2, dtype=bool))
    with pytest.raises(DataError, match="2 masked values"):
        windows(masked, y, steps=2)
    windows(np.ma.masked_array(np.ones((10, 2))), y, steps=2)  # nothing masked: fine


def test_a_huge_steps_is_too_short_data_not_numpys_error() -> None:
    with pytest.raises(DataError, match="too short for one window"):
        windows(np.ones((10, 2)), np.arange(10.0), steps=10**30)
