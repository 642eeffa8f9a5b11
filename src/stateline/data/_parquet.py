"""A Parquet dataset read one series at a time: a folder of files, one column naming the series.

:func:`scan_parquet` reads the group column alone, one record batch at a time (never the
whole column at once), and gives every series' key and length in order of first appearance:
enough to place all of them on lanes (:func:`~stateline.data.place_lanes`).
:meth:`ParquetSeries.read` then reads only the series asked for, through a pyarrow dataset
filter on the group column and only the columns named, so a process that trains on some of the
series never holds the others. Rows keep the dataset's order (files by path, then rows), which
is the order ``pandas.read_parquet`` of the same folder gives.

>>> import pandas as pd, tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> frame = pd.DataFrame({"id": ["a", "b", "a", "b", "b"], "v": [1.0, 2.0, 3.0, 4.0, 5.0]})
>>> frame.iloc[:2].to_parquet(folder / "part-0.parquet")
>>> frame.iloc[2:].to_parquet(folder / "part-1.parquet")
>>> data = scan_parquet(folder, group="id")
>>> data.keys, data.lengths, data.columns
(('a', 'b'), (2, 3), ('v',))
>>> data.read([1])[1][:, 0].tolist()
[2.0, 4.0, 5.0]
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._errors import ConfigError, DataError, describe
from ._checks import check_times, require_finite

__all__ = ["ParquetSeries", "is_parquet_source", "scan_parquet"]

SUFFIXES = (".parquet", ".pq")


def _scan_options() -> dict[str, Any]:
    """One file at a time, one batch of 16,384 rows ahead, decoded on the calling thread, row
    groups read as decoded. pyarrow's defaults (4 files and 16 batches of 131,072 rows
    ahead, whole row groups buffered) held 33 MB of Arrow memory at peak reading half of a
    20 MB test dataset into a table. With one file and two batches ahead but decoding on
    Arrow's thread pool, the decoders ran ahead of the reader: half of a 166 MB folder (5
    million rows, 8 files) peaked at 72 MB, and the peak changed from run to run (7-20 MB
    reading the 20 MB one). These hold 7.7-8.3 MB for the 166 MB folder in every run, and
    read it slower on 2 cores (0.79-1.00 s against 0.58-0.74 s, once per fit, which then
    trains for minutes on those rows; memory measured with
    pyarrow.default_memory_pool().max_memory())."""
    import pyarrow.dataset as ds

    return {
        "fragment_readahead": 1,
        "batch_readahead": 1,
        "batch_size": 16_384,
        "use_threads": False,
        "fragment_scan_options": ds.ParquetFragmentScanOptions(pre_buffer=False),
    }


def is_parquet_source(data: object) -> bool:
    """Whether ``data`` names a Parquet dataset on disk (a folder, or a file): a ``str`` or
    path, which in-memory data never is."""
    return isinstance(data, (str, PathLike))


@dataclass(frozen=True, eq=False)
class ParquetSeries:
    """The series of a Parquet dataset, by key and length; their values are read on demand.

    Attributes:
        source: the folder (or file) read.
        group: the column naming the series.
        keys: every series' key, in order of first appearance.
        lengths: every series' number of rows, in the same order.
        columns: the value columns :meth:`read` reads by default.
        labels: the value of the label column of every series (one per series), or ``None``.
    """

    source: Path
    group: str
    keys: tuple[Hashable, ...]
    lengths: tuple[int, ...]
    columns: tuple[str, ...]
    labels: tuple[Hashable, ...] | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def read(
        self,
        positions: Sequence[int],
        columns: Sequence[str] | None = None,
        *,
        time: str | None = None,
    ) -> dict[int, NDArray[np.float64]]:
        """``{position: (length, columns) float array}`` for the series at ``positions`` only
        (their rows in dataset order; by default the columns scanned); ``time`` is checked
        to increase within each series."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.dataset as ds

        columns = self.columns if columns is None else tuple(columns)
        wanted = sorted(set(positions))
        if not wanted:
            return {}
        dataset = _dataset(self.source)
        keys = pa.array([self.keys[p] for p in wanted], type=_key_type(dataset, self.group))
        expected = np.array([self.lengths[p] for p in wanted], dtype=np.int64)
        offsets = np.cumsum(expected) - expected  # where each series' rows begin
        filled = np.zeros(len(wanted), dtype=np.int64)  # and how many have come so far
        values = np.empty((int(expected.sum()), len(columns)), dtype=np.float64)
        stamps: NDArray[Any] | None = None
        names = [self.group, *columns, *([time] if time is not None else [])]
        # Batch by batch, each row straight to its place: neither the table nor a second
        # copy of the values is ever held.
        for batch in _batches(
            self.source,
            lambda: dataset.to_batches(
                columns=list(dict.fromkeys(names)),
                filter=ds.field(self.group).isin(keys),
                **_scan_options(),
            ),
        ):
            which = pc.index_in(_decoded(batch.column(self.group)), value_set=keys).to_numpy(
                zero_copy_only=False
            )
            counts = np.bincount(which, minlength=len(wanted))
            if (filled + counts > expected).any():
                break  # more rows than scanned: reported below
            order = np.argsort(which, kind="stable")
            ahead = np.cumsum(counts) - counts  # of each series' rows within the batch
            within = np.arange(len(which)) - ahead[which[order]]
            rows = np.empty(len(which), dtype=np.int64)
            rows[order] = offsets[which[order]] + filled[which[order]] + within
            filled += counts
            for j, name in enumerate(columns):
                values[rows, j] = (
                    batch.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False)
                )
            if time is not None:
                times = _times(batch.column(time), time)
                if stamps is None:
                    stamps = np.empty(len(values), dtype=times.dtype)
                stamps[rows] = times
        if (filled != expected).any():
            raise DataError(
                describe(
                    f"source {str(self.source)!r}",
                    f"the rows counted when it was scanned ({int(expected.sum())})",
                    "other rows when read again",
                    problem="changed while it was read.",
                )
            )
        series: dict[int, NDArray[np.float64]] = {}
        for k, position in enumerate(wanted):
            span = slice(int(offsets[k]), int(offsets[k] + expected[k]))
            key = self.keys[position]
            require_finite(values[span], f"series {key!r} (columns {list(columns)})")
            if stamps is not None and time is not None:
                _check_increasing(stamps[span], time, key)
            series[position] = values[span]
        return series


def scan_parquet(
    source: str | PathLike[str],
    *,
    group: str | None,
    columns: Sequence[str] | None = None,
    time: str | None = None,
    label: str | None = None,
) -> ParquetSeries:
    """The keys and lengths of the series of a Parquet folder (or file), from ``group`` alone.

    ``columns`` (and ``time``) are checked to exist, the columns to be numeric; by default
    every column but ``group``, ``time`` and ``label``. With ``label``, every series must
    carry one value of that column (its label).
    """
    if group is None:
        raise ConfigError(
            describe(
                "group",
                "the column that names each series of the Parquet dataset",
                "None",
                problem="is missing.",
                fix="Pass group='<column>'; a single series needs a column with one value.",
            )
        )
    path = Path(source)
    dataset = _dataset(path)
    schema = dataset.schema
    reserved = {name for name in (group, time, label) if name is not None}
    if columns is None:
        columns = [name for name in schema.names if name not in reserved]
    if not columns:
        raise DataError(
            describe(
                "features",
                "at least one value column",
                f"only {sorted(reserved)} in {str(path)!r}",
                problem="is empty.",
            )
        )
    needed = [group, *columns, *(name for name in (time, label) if name is not None)]
    missing = [name for name in needed if name not in schema.names]
    if missing:
        raise DataError(
            describe(
                "columns",
                f"columns present in the Parquet dataset: {schema.names}",
                f"missing {missing} in {str(path)!r}",
                problem="are missing.",
            )
        )
    _require_in_every_file(path, dataset, needed)
    for name in columns:
        _require_numeric(name, schema.field(name).type)
    if time is not None:
        _require_time(time, schema.field(time).type)
    counts: dict[Hashable, int] = {}
    labels: dict[Hashable, Hashable] = {}
    read = [group] if label is None else [group, label]
    for batch in _batches(path, lambda: dataset.to_batches(columns=read, **_scan_options())):
        _count(batch, group, label, counts, labels)
    if not counts:
        raise DataError(
            describe("source", "at least one row", f"no rows in {str(path)!r}", problem="is empty.")
        )
    return ParquetSeries(
        source=path,
        group=group,
        keys=tuple(counts),
        lengths=tuple(counts.values()),
        columns=tuple(columns),
        labels=None if label is None else tuple(labels[key] for key in counts),
    )


def _dataset(path: Path) -> Any:
    try:
        import pyarrow.dataset as ds
    except ImportError as error:  # pragma: no cover - installed with every extra that reads data
        raise ConfigError(
            describe(
                "data",
                "pyarrow installed, to read Parquet",
                f"{str(path)!r} and no pyarrow",
                problem="cannot be read.",
                fix="pip install 'stateline[parquet]'",
            )
        ) from error
    if not path.exists():
        raise DataError(
            describe(
                "data",
                "a folder of .parquet files, or one .parquet file",
                f"{str(path)!r}, which does not exist",
                problem="is not a Parquet dataset.",
            )
        )
    files = [path]
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and p.suffix.lower() in SUFFIXES
            and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
        )
        if not files:
            raise DataError(
                describe(
                    "data",
                    "a folder of .parquet files",
                    f"{str(path)!r}, with no .parquet file in it",
                    problem="is not a Parquet dataset.",
                )
            )
    elif path.suffix.lower() not in SUFFIXES:
        raise DataError(
            describe(
                "data",
                "a folder of .parquet files, or one .parquet file",
                f"{str(path)!r}",
                problem="is not a Parquet dataset.",
                fix="Read other files with pandas and pass the DataFrame.",
            )
        )
    # Hive partitioning, as pandas.read_parquet does: a folder "sensor=7" is a column, its
    # values kept as written ("01" and "1" are two series, not one series 1). Only the
    # .parquet/.pq files are read (a README or _SUCCESS beside them is not data).
    with _arrow_errors(path):
        return ds.dataset(
            [str(file) for file in files],
            format="parquet",
            partitioning=_hive(path, files),
            partition_base_dir=str(path) if path.is_dir() else None,
        )


def _count(
    batch: Any,
    group: str,
    label: str | None,
    counts: dict[Hashable, int],
    labels: dict[Hashable, Hashable],
) -> None:
    """Add one record batch's rows to each key's count (keys in order of first appearance)."""
    import pyarrow.compute as pc

    keys = _decoded(batch.column(0))  # a categorical column: its values, not its categories
    if keys.null_count:
        raise DataError(
            describe(
                f"column {group!r}",
                "a series key on every row",
                f"{keys.null_count} row(s) without one",
                problem="has gaps.",
            )
        )
    encoded = pc.dictionary_encode(keys)  # the dictionary lists keys in order of appearance
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    names = encoded.dictionary.to_pylist()
    for key, count in zip(names, np.bincount(codes, minlength=len(names)).tolist(), strict=True):
        counts[key] = counts.get(key, 0) + count
    if label is None:
        return
    values = batch.column(1)
    if values.null_count:
        raise DataError(
            describe(
                f"column {label!r}",
                "a label on every row",
                f"{values.null_count} row(s) without one",
                problem="has gaps.",
            )
        )
    import pandas as pd

    pairs = pd.DataFrame({"code": codes, "label": values.to_pandas()}).drop_duplicates()
    for code, value in zip(pairs["code"].tolist(), pairs["label"].tolist(), strict=True):
        key = names[code]
        if labels.setdefault(key, value) != value:
            raise DataError(
                describe(
                    f"column {label!r}",
                    f"one label per series ({group!r})",
                    f"series {key!r} labelled {labels[key]!r} and {value!r}",
                    problem="varies within a series.",
                )
            )


def _hive(path: Path, files: list[Path]) -> Any:
    """Hive partitioning whose keys are text, as the folder names write them."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    names: dict[str, None] = {}
    if path.is_dir():
        for file in files:
            names.update(dict.fromkeys(_folder_keys(path, file)))
    return ds.HivePartitioning.discover(schema=pa.schema([(name, pa.string()) for name in names]))


def _folder_keys(path: Path, file: Path) -> list[str]:
    """The Hive keys that the folders of ``file`` name ("site=7": site), outermost first, as
    Arrow reads them: the folders below ``path`` when it is a folder, else every folder of
    the file's path as given."""
    parts = (file.relative_to(path) if path.is_dir() else file).parts[:-1]
    return [part.split("=", 1)[0] for part in parts if "=" in part]


def _batches(source: Path, scan: Any) -> Any:
    """The record batches of ``scan()``, Arrow's errors on the way named as the source's."""
    with _arrow_errors(source):
        batches = iter(scan())
    while True:
        with _arrow_errors(source):
            batch = next(batches, None)
        if batch is None:
            return
        yield batch


def _decoded(column: Any) -> Any:
    """A dictionary-encoded (categorical) column as its values; other columns as they are."""
    import pyarrow as pa

    return column.dictionary_decode() if pa.types.is_dictionary(column.type) else column


def _key_type(dataset: Any, group: str) -> Any:
    import pyarrow as pa

    kind = dataset.schema.field(group).type
    return kind.value_type if pa.types.is_dictionary(kind) else kind


@contextlib.contextmanager
def _arrow_errors(source: Path) -> Iterator[None]:
    """Arrow's errors while reading ``source`` (files that disagree, unreadable files) as a
    :class:`DataError` naming it."""
    import pyarrow as pa

    try:
        yield
    except (pa.ArrowException, OSError) as error:
        raise DataError(
            describe(
                "data",
                "Parquet files that pyarrow reads as one dataset (the same columns, "
                "of the same types, in every file)",
                f"{str(source)!r}: {type(error).__name__}: {str(error).splitlines()[0]}",
                problem="cannot be read.",
                fix="Rewrite the files with one schema, or remove the file named.",
            )
        ) from error


def _require_in_every_file(path: Path, dataset: Any, needed: Sequence[str]) -> None:
    """Every file holds the columns read (its folder keys aside): Arrow reads a column that
    one file lacks as nulls there, which would come out as gaps in the series of that file."""
    for fragment in dataset.get_fragments():
        file = Path(fragment.path)
        with _arrow_errors(file):
            present = {*fragment.physical_schema.names, *_folder_keys(path, file)}
        lacking = [name for name in needed if name not in present]
        if lacking:
            raise DataError(
                describe(
                    "data",
                    f"the columns read ({list(needed)}) in every file of the dataset",
                    f"{fragment.path!r} without {lacking}",
                    problem="cannot be read as one dataset.",
                    fix="Add the columns to that file, or move it out of the folder.",
                )
            )


def _require_numeric(name: str, kind: Any) -> None:
    import pyarrow as pa

    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        raise DataError(
            describe(f"column {name!r}", "numbers", f"Arrow type {kind}", problem="is not numeric.")
        )


def _require_time(name: str, kind: Any) -> None:
    import pyarrow as pa

    if not (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_temporal(kind)
        or pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
    ):
        raise DataError(
            describe(
                f"column {name!r}",
                "times or numbers",
                f"Arrow type {kind}",
                problem="is not a time column.",
            )
        )


def _times(column: Any, name: str) -> NDArray[Any]:
    import pyarrow as pa

    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        import pandas as pd

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                stamps = np.asarray(pd.to_datetime(column.to_pandas()).to_numpy())
        except (TypeError, ValueError) as error:
            raise DataError(
                describe(
                    f"column {name!r}",
                    "times or numbers",
                    f"values that do not parse as times ({error})",
                    problem="is not a time column.",
                )
            ) from error
    else:
        stamps = np.asarray(column.to_numpy(zero_copy_only=False))
    gaps = int(column.null_count) + (int(np.isnan(stamps).sum()) if stamps.dtype.kind == "f" else 0)
    if gaps:
        raise DataError(
            describe(
                f"column {name!r}",
                "a time stamp on every row",
                f"{gaps} row(s) without one",
                problem="has gaps.",
                fix="Fill or drop the rows without a time stamp.",
            )
        )
    return stamps


def _check_increasing(stamps: NDArray[Any], time: str, key: Hashable) -> None:
    """Strictly increasing within series ``key`` (rows counted within it)."""
    check_times(stamps, f"column {time!r}", where=f" in series {key!r}")
