"""scan_parquet / ParquetSeries: keys and lengths from the group column alone, in the order
pandas reads the folder; reading some series returns exactly their rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stateline import DataError
from stateline.data import scan_parquet


def _folder(rng: np.random.Generator, tmp_path: Path, count: int = 30) -> pd.DataFrame:
    """Rows of ``count`` series shuffled over 4 files (out of name order), small row groups."""
    lengths = rng.integers(1, 60, size=count)
    keys = np.repeat(np.arange(count) * 7 % 31, lengths)  # keys not in first-seen order
    frame = pd.DataFrame(
        {"id": keys, "a": rng.standard_normal(len(keys)), "b": rng.integers(0, 9, len(keys))}
    ).sample(frac=1.0, random_state=1, ignore_index=True)
    bounds = np.linspace(0, len(frame), 5).astype(int)
    for k, name in enumerate(["part-10", "part-2", "part-1", "b"]):
        part = frame.iloc[bounds[k] : bounds[k + 1]]
        part.to_parquet(tmp_path / f"{name}.parquet", index=False, row_group_size=16)
    return pd.read_parquet(tmp_path)


def test_keys_lengths_and_rows_as_pandas_reads_them(
    rng: np.random.Generator, tmp_path: Path
) -> None:
    frame = _folder(rng, tmp_path)
    data = scan_parquet(tmp_path, group="id", columns=["a", "b"])
    assert list(data.keys) == list(pd.unique(frame["id"]))
    assert list(data.lengths) == [int((frame["id"] == key).sum()) for key in data.keys]
    assert data.columns == ("a", "b")
    some = [3, 0, 17, 3]
    read = data.read(some)
    assert sorted(read) == [0, 3, 17]
    for position, values in read.items():
        rows = frame[frame["id"] == data.keys[position]]
        np.testing.assert_array_equal(values, rows[["a", "b"]].to_numpy(dtype=np.float64))
    assert data.read([]) == {}


def test_hive_partitions_and_single_files(tmp_path: Path) -> None:
    frame = pd.DataFrame({"site": ["x", "x", "y"], "v": [1.0, 2.0, 3.0], "t": [1, 2, 1]})
    frame.to_parquet(tmp_path / "hive", partition_cols=["site"], index=False)
    data = scan_parquet(tmp_path / "hive", group="site", time="t")
    assert (data.keys, data.lengths, data.columns) == (("x", "y"), (2, 1), ("v",))
    assert data.read([0], time="t")[0][:, 0].tolist() == [1.0, 2.0]
    frame.to_parquet(tmp_path / "one.parquet", index=False)
    assert scan_parquet(tmp_path / "one.parquet", group="site", columns=["v"]).lengths == (2, 1)
    (tmp_path / "table.csv").write_text("site,v\nx,1\n")
    with pytest.raises(DataError, match="is not a Parquet dataset"):
        scan_parquet(tmp_path / "table.csv", group="site")


def test_labels_one_per_series_and_gaps_refused(tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": [1, 2, 1, 2], "v": [0.0, 1.0, 2.0, 3.0], "y": ["a", "b", "a", "b"]})
    frame.to_parquet(tmp_path / "ok.parquet", index=False)
    data = scan_parquet(tmp_path / "ok.parquet", group="id", label="y")
    assert (data.keys, data.labels, data.columns) == ((1, 2), ("a", "b"), ("v",))
    frame.assign(id=[1, None, 1, 2]).to_parquet(tmp_path / "gap.parquet", index=False)
    with pytest.raises(DataError, match=r"column 'id' has gaps"):
        scan_parquet(tmp_path / "gap.parquet", group="id", columns=["v"])
    frame.assign(v=["p", "q", "r", "s"]).to_parquet(tmp_path / "text.parquet", index=False)
    with pytest.raises(DataError, match=r"column 'v' is not numeric"):
        scan_parquet(tmp_path / "text.parquet", group="id", columns=["v"])


# From a hostile review of the folder path (#18): each of these failed before its fix.


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"g": np.repeat(["a", "b"], 30), "t": np.tile(np.arange(30), 2), "v": np.arange(60.0)}
    )


def test_a_categorical_group_column_reads_its_values_in_order_of_appearance(
    tmp_path: Path,
) -> None:
    frame = _frame()
    frame["g"] = pd.Categorical(frame["g"], categories=["unused", "b", "a"])  # pandas writes
    frame.to_parquet(tmp_path / "a.parquet")  # ... a dictionary<string> column
    data = scan_parquet(tmp_path, group="g", columns=["v"], time="t")
    assert data.keys == ("a", "b") and data.lengths == (30, 30)  # no phantom "unused"
    assert data.read([1])[1][:, 0].tolist() == list(range(30, 60))


def test_hive_keys_stay_as_the_folder_names_write_them(tmp_path: Path) -> None:
    frame = _frame().assign(g=np.repeat(["01", "1"], 30))
    frame.to_parquet(tmp_path, partition_cols=["g"])
    data = scan_parquet(tmp_path, group="g", columns=["v"], time="t")
    assert data.keys == ("01", "1") and data.lengths == (30, 30)  # two series, not one "1"


def test_gaps_in_time_and_unreadable_or_disagreeing_files_are_named(tmp_path: Path) -> None:
    gaps = _frame().assign(t=pd.date_range("2024-01-01", periods=60, freq="h"))
    gaps.loc[5, "t"] = pd.NaT
    gaps.to_parquet(tmp_path / "gaps.parquet")
    with pytest.raises(DataError, match="column 't' has gaps"):
        scan_parquet(tmp_path / "gaps.parquet", group="g", columns=["v"], time="t").read(
            [0, 1], time="t"
        )
    folder = tmp_path / "mixed"
    folder.mkdir()
    _frame().iloc[:30].assign(v=np.arange(30)).to_parquet(folder / "a.parquet")  # int64
    _frame().iloc[30:].assign(v=np.arange(30) + 0.5).to_parquet(folder / "b.parquet")
    (folder / "README.txt").write_text("not data")  # ignored: not a .parquet file
    with pytest.raises(DataError, match="data cannot be read"):
        data = scan_parquet(folder, group="g", columns=["v"])
        data.read([0, 1])
    (folder / "b.parquet").write_bytes(b"")  # an empty file
    with pytest.raises(DataError, match="data cannot be read"):
        scan_parquet(folder, group="g", columns=["v"])
    (folder / "b.parquet").unlink()
    assert scan_parquet(folder, group="g", columns=["v"]).keys == ("a",)  # README.txt skipped


def test_a_file_without_a_column_read_is_named_not_read_as_gaps(tmp_path: Path) -> None:
    _frame().iloc[:30].to_parquet(tmp_path / "a.parquet")
    _frame().iloc[30:].drop(columns="v").to_parquet(tmp_path / "b.parquet")
    with pytest.raises(DataError, match=r"b\.parquet' without \['v'\]"):
        scan_parquet(tmp_path, group="g", columns=["v"])
    hive = tmp_path / "hive"  # a column from the folder names is in no file, and is read
    for key, rows in (("x", slice(0, 30)), ("y", slice(30, 60))):
        (hive / f"site={key}").mkdir(parents=True)
        _frame().iloc[rows].to_parquet(hive / f"site={key}" / "part.parquet")
    assert scan_parquet(hive, group="site", columns=["v"]).keys == ("x", "y")

    one = hive / "site=x" / "part.parquet"  # one file: Arrow reads the keys of all its folders
    assert scan_parquet(one, group="site", columns=["v"]).keys == ("x",)


_READ_HALF = """
import sys
import pyarrow as pa
from stateline.data import scan_parquet
data = scan_parquet(sys.argv[1], group="id", columns=["a", "b", "c"], time="t")
values = data.read(range(0, len(data), 2), time="t")
print(sum(len(v) for v in values.values()), pa.default_memory_pool().max_memory())
"""


def test_reading_half_a_folder_holds_a_batch_of_arrow_memory_not_a_table(
    tmp_path: Path,
) -> None:
    """The scan reads one file and one batch ahead, decoded on the calling thread: half of a
    137 MB folder takes about 11 MB of Arrow memory, a few row groups, the same in every run
    (decoded on Arrow's threads, the decoders ran ahead of the reader: half of a 166 MB
    folder took 72 MB). In a process of its own: the pool's peak is the process's."""
    import subprocess
    import sys

    import pyarrow as pa
    import pyarrow.parquet as pq

    count, length = 12_000, 300
    rng = np.random.default_rng(5)
    table = pa.table(
        {
            "id": np.tile(np.arange(count), length),  # rows in time order across series
            "t": np.repeat(np.arange(length), count),
            **{name: rng.standard_normal(count * length) for name in ("a", "b", "c")},
        }
    )
    bounds = np.linspace(0, table.num_rows, 5).astype(int)
    for k in range(4):
        part = table.slice(bounds[k], bounds[k + 1] - bounds[k])
        pq.write_table(part, tmp_path / f"part-{k}.parquet", row_group_size=50_000)
    read = subprocess.run(
        [sys.executable, "-c", _READ_HALF, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows, peak = map(int, read.stdout.split())
    assert rows == count * length // 2
    print({"table MB": table.nbytes / 2**20, "Arrow peak MB": peak / 2**20})
    assert peak < 0.15 * table.nbytes, (peak, table.nbytes)
