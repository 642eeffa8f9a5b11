from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stateline import ConfigError, DataError, load_table

CSV = """timestamp;sensor;pressure;flow;label
2026-01-01 00:00:00;a;1.0;10;0
2026-01-01 00:00:00;b;5.0;50;0
2026-01-01 00:00:01;a;1.1;11;1
2026-01-01 00:00:01;b;5.1;51;0
2026-01-01 00:00:02;b;5.2;52;1
"""


def write(tmp_path: Path, text: str = CSV) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_groups_time_features_and_target(tmp_path: Path) -> None:
    table = load_table(write(tmp_path), time="timestamp", group="sensor", targets="label", sep=";")
    assert table.groups == ["a", "b"]
    assert table.lengths == [2, 3]
    assert table.feature_names == ("pressure", "flow")
    assert table.features[1].tolist() == [[5.0, 50.0], [5.1, 51.0], [5.2, 52.0]]
    assert table.targets is not None and table.targets[0].tolist() == [0.0, 1.0]
    assert table.times is not None and table.times[0].dtype.kind == "M"
    layout = table.pack(lanes=2, chunk=2)
    assert layout.steps == 5


def test_several_targets_and_chosen_features() -> None:
    frame = pd.DataFrame({"t": [0, 1, 2], "x": [1.0, 2.0, 3.0], "u": [0, 1, 2], "v": [5, 6, 7]})
    table = load_table(frame, time="t", features=["x"], targets=["u", "v"])
    assert table.targets is not None and table.targets[0].shape == (3, 2)
    assert table.groups == ["all"]


def test_parquet_path_is_read_when_pyarrow_is_installed(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    path = tmp_path / "data.parquet"
    pd.DataFrame({"t": [0, 1], "x": [1.0, 2.0]}).to_parquet(path)
    assert load_table(path, time="t").lengths == [2]


@pytest.mark.parametrize(
    ("csv", "kwargs", "error", "needle"),
    [
        (
            CSV.replace("00:00:01;b", "00:00:09;b"),
            {"time": "timestamp", "group": "sensor"},
            DataError,
            "not monotonic(.|\\n)*stream 'b'(.|\\n)*Sort",
        ),
        (
            CSV.replace("5.1", ""),
            {"time": "timestamp", "group": "sensor"},
            DataError,
            "'pressure' holds NaN(.|\\n)*row 3",
        ),
        (CSV, {"time": "timestamp", "group": "sensor", "targets": "y"}, DataError, "'y'"),
        (CSV, {"time": "timestamp"}, DataError, "non-numeric column\\(s\\) \\['sensor'\\]"),
        (CSV, {"time": "sensor", "features": ["flow"]}, DataError, "not a time column"),
        (
            CSV,
            {"time": "timestamp", "group": "sensor", "targets": []},
            ConfigError,
            "targets is invalid",
        ),
    ],
)
def test_bad_tables_get_clear_errors(
    tmp_path: Path, csv: str, kwargs: dict[str, object], error: type[Exception], needle: str
) -> None:
    with pytest.raises(error, match=needle):
        load_table(write(tmp_path, csv), sep=";", **kwargs)  # type: ignore[arg-type]


def test_missing_file_and_empty_table(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_table(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="empty"):
        load_table(pd.DataFrame({"x": []}))


def test_duplicate_time_stamps_are_refused() -> None:
    frame = pd.DataFrame({"t": [0, 1, 1], "x": [1.0, 2.0, 3.0]})
    with pytest.raises(DataError, match="1 followed by 1"):
        load_table(frame, time="t")


def test_nothing_is_dropped(rng: np.random.Generator) -> None:
    frame = pd.DataFrame(
        {"t": np.tile(np.arange(50), 3), "g": np.repeat([3, 1, 2], 50), "x": rng.normal(size=150)}
    )
    table = load_table(frame, time="t", group="g")
    assert sum(table.lengths) == 150
    assert table.groups == [3, 1, 2]


@settings(max_examples=40, deadline=None)
@given(
    keys=st.lists(st.sampled_from(["b", "a", "é", "10", "x y"]), min_size=1, max_size=60),
    as_category=st.booleans(),
)
def test_streams_come_in_first_seen_order_with_their_rows_in_file_order(
    keys: list[str], as_category: bool
) -> None:
    """Streams are split in one pass (a scan per key took 23 s for 5,000 streams): the same
    streams, order and rows as selecting each key in turn."""
    frame = pd.DataFrame({"g": keys, "v": np.arange(len(keys), dtype=float)})
    if as_category:
        frame["g"] = pd.Categorical(frame["g"], categories=["zz", *sorted(set(keys))])
    table = load_table(frame, group="g", features=["v"])
    expected = list(dict.fromkeys(keys))
    assert table.groups == expected
    for key, values in zip(table.groups, table.features, strict=True):
        assert values[:, 0].tolist() == frame.index[frame["g"] == key].astype(float).tolist()


def test_columns_named_by_numbers_and_repeated_names(tmp_path: Path) -> None:
    """From a review: pd.DataFrame(array) names its columns 0, 1, ...: they were looked up
    as "0", "1" (a bare KeyError); two columns of one name gave an AttributeError."""
    frame = pd.DataFrame(np.arange(12.0).reshape(4, 3))
    table = load_table(frame, time=0, targets=2)
    assert table.feature_names == ("1",) and table.targets is not None
    assert table.targets[0].tolist() == [2.0, 5.0, 8.0, 11.0]
    repeated = pd.DataFrame([[1, 2.0, 3.0], [2, 2.0, 3.0]], columns=["t", "v", "v"])
    with pytest.raises(DataError, match=r"(?s)repeated column names.*\['v'\]"):
        load_table(repeated, time="t", features=["v"])


def test_local_time_across_a_daylight_saving_change(tmp_path: Path) -> None:
    """From a review: stamps of two UTC offsets (a local clock across a change, as pandas
    writes them) were refused as "mixed timezones"; they are the instants they name."""
    times = pd.date_range("2021-03-27 22:00", periods=8, freq="h", tz="Europe/London")
    path = tmp_path / "dst.csv"
    pd.DataFrame({"time": times, "v": np.arange(8.0)}).to_csv(path, index=False)
    assert "+00:00" in path.read_text() and "+01:00" in path.read_text()
    table = load_table(path, time="time", features=["v"])
    assert table.times is not None
    assert list(table.times[0]) == list(times.tz_convert("UTC"))


def test_missing_time_stamps_and_complex_columns_are_refused() -> None:
    """From a review: NaT passed in a one-row stream and with time_order="file", and was
    reported as "not monotonic" elsewhere; a complex column lost its imaginary part."""
    frame = pd.DataFrame(
        {"t": pd.to_datetime(["2020-01-01", "2020-01-02", None]), "g": list("aab"), "v": 1.0}
    )
    with pytest.raises(DataError, match=r"(?s)missing time stamps.*in stream 'b'"):
        load_table(frame, time="t", group="g")
    with pytest.raises(DataError, match="missing time stamps"):
        load_table(frame.assign(g="a"), time="t", group="g", time_order="file")
    with pytest.raises(DataError, match="is not numeric"):
        load_table(pd.DataFrame({"t": [1, 2], "v": [1 + 5j, 2]}), time="t")
