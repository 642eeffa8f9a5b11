"""Columns on the wire: JSON columns and Apache Arrow IPC streams, both ways.

A request is the columns ``stream``, ``values`` and optionally ``seq``,
``start``, ``end``; an answer is ``stream``, ``status``, ``seq``,
``forecast``, ``scores``, ``flags``, ``anomaly_scores``, ``level`` and the
errors by row. In JSON, ``values`` is a nested list ``(n, inputs)`` or
``(n, k, inputs)`` and the answer's NaN are null. In Arrow (content type
:data:`ARROW`, one record batch per message), ``values`` is a
``fixed_size_list<double>[k * inputs]`` column with ``k`` in the schema
metadata (``steps``, default 1), ``stream`` a string or integer column; the
answer's lists are fixed-size too (``forecast``: ``k * horizon * targets``,
with ``steps``, ``horizon`` and ``targets`` in its metadata), ``status``
dictionary-encoded, ``error`` null where there is none.

Stream ids follow :data:`STREAM_ID_RULE`; a row whose id breaks it is
refused alone, as is a row with NaN/inf values or an out-of-range seq.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._errors import DataError, describe
from ..stream._engine import STATUS_NAMES
from ._answers import nullable
from ._columns import SEQ_RULE, ColumnAnswer, ColumnBatch, seq_out_of_range
from ._ipc import read_ipc

__all__ = [
    "ARROW",
    "STREAM_ID_RULE",
    "answer_from_arrow",
    "answer_from_json",
    "answer_to_arrow",
    "answer_to_json",
    "batch_from_arrow",
    "batch_from_json",
    "batch_to_arrow",
    "batch_to_json",
]

ARROW = "application/vnd.apache.arrow.stream"
"""The content type of Arrow IPC stream bodies."""

STREAM_ID_RULE = (
    "1 to 256 characters of Unicode text, without '/', control characters or U+FFFD "
    "(what undecodable bytes become), and not '.' or '..' (clients drop them from paths)"
)
"""The one grammar of stream ids, for every endpoint and format."""

_BAD_CHARACTERS = "/\\x00-\\x1f\\x7f-\\x9f\\ufffd"  # C0, DEL and C1 controls
_VALID_ID = re.compile(f"(?:(?![{_BAD_CHARACTERS}]).){{1,256}}", re.DOTALL)
STREAM_ID_PATTERN = f"^[^{_BAD_CHARACTERS}]{{1,256}}$"
"""The grammar as a regular expression, for a schema (``.`` and ``..`` aside)."""


def json_type(content_type: str) -> bool:
    """Whether a ``Content-Type`` declares JSON (``application/json`` or ``...+json``).

    >>> json_type("application/json; charset=utf-8"), json_type("text/plain")
    (True, False)
    """
    kind = content_type.split(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


def valid_stream_id(value: object) -> bool:
    """Whether ``value`` is a stream id by :data:`STREAM_ID_RULE`.

    >>> valid_stream_id("pump-7"), valid_stream_id("pump/7"), valid_stream_id("\\ud800")
    (True, False, False)
    """
    if not isinstance(value, str) or value in (".", "..") or _VALID_ID.fullmatch(value) is None:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def _id_error(value: object) -> str:
    return describe("stream", STREAM_ID_RULE, repr(value)[:80], problem="is not a valid stream id.")


# --------------------------------------------------------------------- JSON
def batch_from_json(document: Any) -> ColumnBatch:
    """JSON columns -> :class:`ColumnBatch`; a row with a bad id or values is refused alone.

    >>> document = {"stream": ["a", "b/c"], "values": [[1.0], [2.0]], "seq": [0, 0]}
    >>> batch = batch_from_json(document)
    >>> batch.values.shape, sorted(batch.refused)
    ((2, 1, 1), [1])
    """
    if not isinstance(document, dict):
        raise DataError(
            describe(
                "body", "a JSON object of columns", type(document).__name__, problem="is invalid."
            )
        )
    unknown = sorted(set(document) - {"stream", "values", "seq", "start", "end"})
    if unknown:
        raise DataError(
            describe(
                "body",
                "the columns stream, values, seq, start, end",
                f"also {unknown}",
                problem="has unknown columns.",
            )
        )
    ids, values = document.get("stream"), document.get("values")
    if not isinstance(ids, list) or not isinstance(values, list):
        raise DataError(
            describe(
                "stream and values",
                "two lists of the same length",
                f"{type(ids).__name__} and {type(values).__name__}",
                problem="are missing.",
            )
        )
    if len(ids) != len(values):
        raise DataError(
            describe(
                "values",
                f"one row per stream id: {len(ids)}",
                f"{len(values)} rows",
                problem="has the wrong length.",
            )
        )
    valid = [valid_stream_id(value) for value in ids]
    refused = {row: _id_error(value) for row, value in enumerate(ids) if not valid[row]}
    stream = [value if ok else "" for value, ok in zip(ids, valid, strict=True)] if refused else ids
    array = _numbers(values, refused) if ids else None
    seq = _json_seq(document.get("seq"), len(ids), refused)
    flags = {name: _json_column(document, name, len(ids)) for name in ("start", "end")}
    if array is None:  # an empty batch (its columns checked): nothing to do, nothing refused
        return ColumnBatch.of([], np.zeros((0, 1, 0)))
    return ColumnBatch.of(stream, array, seq=seq, refused=refused, **flags)


def _numbers(values: list[Any], refused: dict[int, str]) -> NDArray[np.float64]:
    """The values matrix; a row that is not numbers of the common shape is refused alone."""
    try:
        array = np.asarray(values)
    except ValueError:  # ragged
        array = np.asarray([], dtype=object)
    fast = array.dtype.kind in "iuf" and array.ndim in (2, 3) and len(array) == len(values)
    if fast and not _has_bool(values, array.ndim):  # NumPy reads true as 1.0: refuse it
        return array.astype(np.float64)
    shape = _common_shape(values)
    clean = np.full((len(values), *shape), np.nan)
    for row, item in enumerate(values):  # the error path only: find the bad rows
        numbers = np.asarray(item, dtype=object)
        good = numbers.shape == shape and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in numbers.ravel()
        )
        if good:
            try:
                clean[row] = numbers.astype(np.float64)
            except OverflowError:  # an integer past float64 (1e400 written out)
                good = False
        if not good:
            refused.setdefault(
                row,
                describe(
                    "values",
                    f"{shape} numbers (not strings or booleans) like the other rows",
                    repr(item)[:80],
                    problem="are not numbers of the batch's shape.",
                ),
            )
    return clean


def _has_bool(values: list[Any], depth: int) -> bool:
    """Whether nested lists ``depth`` deep hold a JSON boolean (NumPy would read it as 1.0)."""
    items: Any = values
    for _ in range(depth - 1):
        items = itertools.chain.from_iterable(items)
    return any(type(item) is bool for item in items)


def _json_seq(value: Any, count: int, refused: dict[int, str]) -> NDArray[Any] | None:
    """The seq column; integers out of 0 .. 2**63 - 1 refuse their row, other types the batch."""
    if value is None:
        return None
    exact = isinstance(value, list) and len(value) == count
    if exact and all(type(item) is int for item in value):  # exact ints, no bools or floats
        limit = np.iinfo(np.int64).max
        outside = [row for row, item in enumerate(value) if not 0 <= item <= limit]
        for row in outside:
            refused.setdefault(row, seq_out_of_range(value[row]))
        if outside:
            bad = set(outside)
            value = [0 if row in bad else item for row, item in enumerate(value)]
        return np.array(value, dtype=np.int64)
    raise DataError(
        describe(
            "seq",
            f"a list of {count} values, each {SEQ_RULE}",
            repr(value)[:80],
            problem="is invalid.",
        )
    )


def _common_shape(values: list[Any]) -> tuple[int, ...]:
    shapes: dict[tuple[int, ...], int] = {}
    for item in values:
        try:
            shape = np.shape(item)
        except ValueError:
            continue
        shapes[shape] = shapes.get(shape, 0) + 1
    candidates = [s for s in shapes if len(s) in (1, 2) and 0 not in s]
    if not candidates:
        raise DataError(
            describe(
                "values",
                "rows of numbers: (inputs,) or (k, inputs)",
                "no such row",
                problem="has the wrong shape.",
            )
        )
    return max(candidates, key=lambda s: shapes[s])


def _json_column(document: dict[str, Any], name: str, count: int) -> NDArray[Any] | None:
    value = document.get(name)
    if value is None:
        return None
    try:
        array = np.asarray(value) if isinstance(value, list) else np.asarray(object())
    except ValueError:  # ragged lists
        array = np.asarray(object())
    if array.shape != (count,) or (count and array.dtype.kind != "b"):  # []: no booleans
        raise DataError(
            describe(name, f"a list of {count} booleans", repr(value)[:80], problem="is invalid.")
        )
    return array


def batch_to_json(batch: ColumnBatch) -> dict[str, Any]:
    """The JSON columns of a batch (what a client sends)."""
    document: dict[str, Any] = {"stream": batch.stream.tolist(), "values": batch.values.tolist()}
    if batch.seq is not None:
        document["seq"] = batch.seq.tolist()
    if batch.start.any():
        document["start"] = batch.start.tolist()
    if batch.end.any():
        document["end"] = batch.end.tolist()
    return document


def answer_to_json(answer: ColumnAnswer) -> dict[str, Any]:
    """The JSON columns of an answer: NaN as null, seq null where none, errors by row."""
    seq: list[Any] = answer.seq.tolist()  # exact integers (not through float)
    if (answer.seq < 0).any():
        boxed = answer.seq.astype(object)
        boxed[answer.seq < 0] = None
        seq = boxed.tolist()
    return {
        "stream": answer.stream.tolist(),
        "status": answer.status_names.tolist(),
        "seq": seq,
        "forecast": nullable(answer.forecast),
        "scores": nullable(answer.scores),
        "flags": answer.flags.tolist(),
        "anomaly_scores": nullable(answer.anomaly_scores),
        "level": nullable(answer.level),
        "errors": {str(row): message for row, message in sorted(answer.errors.items())},
    }


def answer_from_json(document: dict[str, Any]) -> ColumnAnswer:
    """A JSON columns answer back into arrays (null -> NaN, seq null -> -1)."""
    codes = {name: code for code, name in enumerate(STATUS_NAMES)}
    seq = [-1 if value is None else value for value in document["seq"]]
    return ColumnAnswer(
        stream=np.array(document["stream"], dtype=object),
        status=np.array([codes[name] for name in document["status"]], dtype=np.int8),
        seq=np.array(seq, dtype=np.int64),
        forecast=_floats(document["forecast"]),
        scores=_floats(document["scores"]),
        flags=np.array(document["flags"], dtype=bool),
        anomaly_scores=_floats(document["anomaly_scores"]),
        level=_floats(document["level"]),
        errors={int(row): message for row, message in document["errors"].items()},
    )


def _floats(nested: Any) -> NDArray[np.float64]:
    return np.array(nested, dtype=object).astype(np.float64)  # None -> nan


# -------------------------------------------------------------------- Arrow
def batch_to_arrow(batch: ColumnBatch) -> bytes:
    """An Arrow IPC stream of one record batch (what a client sends).

    >>> batch = ColumnBatch.of(["a", "b"], np.ones((2, 3, 2)), seq=[0, 5])
    >>> again = batch_from_arrow(batch_to_arrow(batch))
    >>> again.values.shape, again.seq.tolist(), again.stream.tolist()
    ((2, 3, 2), [0, 5], ['a', 'b'])
    """
    import pyarrow as pa

    _, steps, inputs = batch.values.shape
    values = pa.FixedSizeListArray.from_arrays(
        pa.array(np.ascontiguousarray(batch.values, dtype=np.float64).ravel()), steps * inputs
    )
    columns = {"stream": pa.array(batch.stream.tolist(), type=pa.string()), "values": values}
    if batch.seq is not None:
        columns["seq"] = pa.array(batch.seq, type=pa.int64())
    if batch.start.any():
        columns["start"] = pa.array(batch.start)
    if batch.end.any():
        columns["end"] = pa.array(batch.end)
    table = pa.table(columns).replace_schema_metadata({"steps": str(steps)})
    return _ipc(table)


def batch_from_arrow(
    body: bytes, *, max_rows: int = 1_000_000, max_values: int = 1 << 26
) -> ColumnBatch:
    """An Arrow IPC stream -> :class:`ColumnBatch`, checked column by column (no per-row Python).

    The stream is bounded before it is decoded (``max_rows`` rows, ``max_values``
    numbers; no compression) and validated fully after (see :mod:`._ipc`).
    """
    return arrow_request(body, max_rows=max_rows, max_values=max_values)[0]


def arrow_request(
    body: bytes, *, max_rows: int = 1_000_000, max_values: int = 1 << 26
) -> tuple[ColumnBatch, Any]:
    """:func:`batch_from_arrow`, and its ids as the Arrow string array they came in: the
    answer sends them back as they are (:func:`answer_to_arrow`'s ``stream``), not rebuilt
    from Python strings. What Arrow itself cannot read is a DataError too."""
    import pyarrow as pa

    try:
        return _arrow_request(body, max_rows=max_rows, max_values=max_values)
    except pa.ArrowException as error:  # a body no check above foresaw: still the client's
        raise DataError(
            describe(
                "body",
                "an Arrow batch of stateline's columns",
                f"{type(error).__name__}: {error}"[:300],
                problem="cannot be read.",
            )
        ) from error


def _arrow_request(body: bytes, *, max_rows: int, max_values: int) -> tuple[ColumnBatch, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    table = read_ipc(body, max_rows=max_rows, max_values=max_values)
    names = set(table.column_names)
    unknown = sorted(names - {"stream", "values", "seq", "start", "end"})
    if unknown or not {"stream", "values"} <= names:
        raise DataError(
            describe(
                "body",
                "Arrow columns stream, values (seq, start, end optional)",
                str(sorted(names)),
                problem="has the wrong columns.",
            )
        )
    count = table.num_rows
    metadata = table.schema.metadata or {}
    steps = _positive(metadata.get(b"steps", b"1"))
    ids = table.column("stream").combine_chunks()
    if pa.types.is_integer(ids.type):
        ids = pc.cast(ids, pa.string())
    if not (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)):
        raise DataError(
            describe(
                "stream", "a string or integer column", str(ids.type), problem="has the wrong type."
            )
        )
    bad_rows = np.flatnonzero(bad_arrow_ids(ids))
    stream = ids.to_numpy(zero_copy_only=False).astype(object, copy=False)
    refused = {int(row): _id_error(stream[row]) for row in bad_rows.tolist()}
    values = table.column("values").combine_chunks()
    if not pa.types.is_fixed_size_list(values.type) or values.type.list_size % steps:
        raise DataError(
            describe(
                "values",
                "fixed_size_list<double>[steps * inputs]",
                str(values.type),
                problem="has the wrong type.",
            )
        )
    size = values.type.list_size
    missing = values.is_null().to_numpy(zero_copy_only=False) if values.null_count else None
    # integers past 2**53 round, as the same numbers in JSON do (a safe cast refuses them)
    exact = not pa.types.is_integer(values.type.value_type)
    flat = pc.cast(values.flatten(), pa.float64(), safe=exact).to_numpy(zero_copy_only=False)
    if missing is not None:  # a null row has no numbers in flatten(): put NaN rows back
        for row in np.flatnonzero(missing).tolist():
            refused.setdefault(row, describe("values", "numbers", "null", problem="are missing."))
        full = np.full((count, size), np.nan)
        full[~missing] = flat.reshape(-1, size)
        flat = full.reshape(-1)
    matrix = (
        flat.reshape(count, steps, values.type.list_size // steps)
        if count
        else np.zeros((0, steps, values.type.list_size // steps))
    )
    columns = {}
    for name, kind in (
        ("seq", pa.types.is_integer),
        ("start", pa.types.is_boolean),
        ("end", pa.types.is_boolean),
    ):
        if name in names:
            column = table.column(name).combine_chunks()
            if not kind(column.type) or column.null_count:
                raise DataError(
                    describe(
                        name,
                        "integers" if name == "seq" else "booleans, no nulls",
                        f"{column.type} with {column.null_count} nulls",
                        problem="is invalid.",
                    )
                )
            columns[name] = column.to_numpy(zero_copy_only=False)
    return ColumnBatch.of(stream, matrix, refused=refused, **columns), ids


def bad_arrow_ids(ids: Any) -> NDArray[np.bool_]:
    """Which rows of an Arrow string array break :data:`STREAM_ID_RULE` (nulls do), found
    by one pass over the UTF-8 bytes (Arrow has checked they are UTF-8).

    >>> import pyarrow as pa
    >>> ids = ["ok", "a/b", "", None, "..", "\ufffd", "x" * 257, "a\x85b", "é\xa0"]
    >>> bad_arrow_ids(pa.array(ids)).tolist()
    [False, True, True, True, True, True, True, True, False]
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    count = len(ids)
    bad = np.zeros(count, dtype=bool)
    if count == 0:
        return bad
    width = np.int64 if pa.types.is_large_string(ids.type) else np.int32
    _, offsets_buffer, data_buffer = ids.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=width)[ids.offset : ids.offset + count + 1]
    offsets = offsets.astype(np.int64)
    first, last = int(offsets[0]), int(offsets[-1])
    data = (
        np.frombuffer(data_buffer, dtype=np.uint8)[first:last]
        if data_buffer is not None and last > first
        else np.zeros(0, dtype=np.uint8)
    )
    # '/', control characters (C0, DEL, and C1: C2 80 .. C2 9F) and U+FFFD (EF BF BD),
    # by byte position
    banned = (data < 0x20) | (data == 0x7F) | (data == 0x2F)
    if len(data) >= 2:
        banned[:-1] |= (data[:-1] == 0xC2) & (data[1:] >= 0x80) & (data[1:] <= 0x9F)
    if len(data) >= 3:
        banned[:-2] |= (data[:-2] == 0xEF) & (data[1:-1] == 0xBF) & (data[2:] == 0xBD)
    bad[np.searchsorted(offsets, np.flatnonzero(banned) + first, side="right") - 1] = True
    characters = pc.utf8_length(ids).fill_null(0).to_numpy(zero_copy_only=False)
    bad |= (characters < 1) | (characters > 256)
    size = np.diff(offsets)
    padded = np.concatenate([data, np.zeros(2, dtype=np.uint8)])
    starts = offsets[:-1] - first
    head, second = padded[np.minimum(starts, len(data))], padded[np.minimum(starts + 1, len(data))]
    bad |= (size == 1) & (head == 0x2E) | (size == 2) & (head == 0x2E) & (second == 0x2E)
    if ids.null_count:
        bad |= ~ids.is_valid().to_numpy(zero_copy_only=False)
    return bad


def answer_to_arrow(answer: ColumnAnswer, *, stream: Any = None) -> bytes:
    """An answer as an Arrow IPC stream; ``stream``: the request's ids as an Arrow string
    array (:func:`arrow_request`), sent back as they are."""
    import pyarrow as pa

    if stream is not None and len(stream) != len(answer.stream):
        raise ValueError(f"stream: {len(stream)} ids for an answer of {len(answer.stream)} rows")

    count, steps, horizon, targets = answer.forecast.shape

    def fixed(array: NDArray[Any], size: int) -> Any:
        return pa.FixedSizeListArray.from_arrays(
            pa.array(np.ascontiguousarray(array).ravel()), size
        )

    if answer.errors:
        error = np.full(count, None, dtype=object)
        for row, message in answer.errors.items():
            error[row] = message
        errors = pa.array(error.tolist(), type=pa.string())
    else:
        errors = pa.nulls(count, type=pa.string())
    table = pa.table(
        {
            "stream": (
                pa.array(answer.stream.tolist(), type=pa.string()) if stream is None else stream
            ),
            "status": pa.DictionaryArray.from_arrays(
                pa.array(answer.status, type=pa.int8()), pa.array(list(STATUS_NAMES))
            ),
            "seq": pa.array(answer.seq, mask=answer.seq < 0, type=pa.int64()),
            "forecast": fixed(answer.forecast, steps * horizon * targets),
            "scores": fixed(answer.scores, steps),
            "flags": fixed(answer.flags, steps),
            "anomaly_scores": fixed(answer.anomaly_scores, steps),
            "level": pa.array(answer.level, type=pa.float64()),
            "error": errors,
        }
    ).replace_schema_metadata(
        {"steps": str(steps), "horizon": str(horizon), "targets": str(targets)}
    )
    return _ipc(table)


def answer_from_arrow(body: bytes) -> ColumnAnswer:
    """An Arrow answer back into arrays (seq null -> -1)."""
    table = _read_answer(body)
    metadata = table.schema.metadata or {}
    steps, horizon, targets = (int(metadata[key]) for key in (b"steps", b"horizon", b"targets"))
    count = table.num_rows

    def flat(name: str) -> NDArray[Any]:
        array = table.column(name).combine_chunks()
        values: NDArray[Any] = array.flatten().to_numpy(zero_copy_only=False)
        return values

    status = table.column("status").combine_chunks()
    codes = {name: code for code, name in enumerate(STATUS_NAMES)}
    mapping = np.array([codes[name] for name in status.dictionary.to_pylist()], dtype=np.int8)
    errors = table.column("error").combine_chunks()
    error_rows = np.flatnonzero(errors.is_valid().to_numpy(zero_copy_only=False))
    messages = errors.to_pylist() if len(error_rows) else []
    return ColumnAnswer(
        stream=table.column("stream").to_numpy().astype(object),
        status=mapping[status.indices.to_numpy(zero_copy_only=False)],
        seq=table.column("seq").combine_chunks().fill_null(-1).to_numpy(zero_copy_only=False),
        forecast=flat("forecast").reshape(count, steps, horizon, targets),
        scores=flat("scores").reshape(count, steps),
        flags=flat("flags").astype(bool).reshape(count, steps),
        anomaly_scores=flat("anomaly_scores").reshape(count, steps),
        level=table.column("level").to_numpy(),
        errors={int(row): messages[row] for row in error_rows.tolist()},
    )


def _ipc(table: Any) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def _read_answer(body: bytes) -> Any:
    """A server's answer (dictionary-encoded status: not for untrusted input, see :mod:`._ipc`)."""
    import pyarrow as pa

    try:
        return pa.ipc.open_stream(pa.py_buffer(body)).read_all()
    except (pa.ArrowException, OSError) as error:
        raise DataError(
            describe(
                "answer",
                "an Arrow IPC stream",
                f"{type(error).__name__}: {str(error)[:120]}",
                problem="is not readable.",
            )
        ) from None


def _positive(raw: bytes) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise DataError(
            describe(
                "steps",
                "a positive integer in the schema metadata",
                repr(raw)[:40],
                problem="is invalid.",
            )
        )
    return value
