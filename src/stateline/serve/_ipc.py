"""Reading an untrusted Arrow IPC stream: bounded before anything is decoded, validated fully.

``pyarrow.ipc.open_stream(...).read_all()`` trusts its input more than a server
may: a compressed batch decompresses to whatever size it declares, a column of
the ``null`` type needs no bytes at all, and only a cheap check of string
offsets runs before compute kernels read them. So, before any batch is
decoded, each message's metadata (a FlatBuffer) is read for its row count and
compression; the schema is checked for the columns' types and sizes; and the
decoded table gets Arrow's full validation.
"""

from __future__ import annotations

import struct
from typing import Any

from .._errors import DataError, describe

__all__ = ["read_ipc"]

_NUMERIC = "fixed_size_list of float or integer numbers"


def read_ipc(body: bytes, *, max_rows: int, max_values: int) -> Any:
    """The table of an Arrow IPC stream, refused (DataError naming the part) past the bounds.

    ``max_rows``: rows over all record batches; ``max_values``: rows times the
    ``values`` list size. Compressed batches and dictionary batches are refused.

    >>> import pyarrow as pa
    >>> sink = pa.BufferOutputStream()
    >>> table = pa.table({"stream": ["a"], "values": pa.FixedSizeListArray.from_arrays(
    ...     pa.array([1.0]), 1)})
    >>> with pa.ipc.new_stream(sink, table.schema) as writer:
    ...     writer.write_table(table)
    >>> read_ipc(sink.getvalue().to_pybytes(), max_rows=10, max_values=10).num_rows
    1
    """
    import pyarrow as pa

    buffer = pa.py_buffer(body)
    try:
        rows = _count_rows(buffer)
        reader = pa.ipc.open_stream(buffer)
        _check_schema(reader.schema, rows, max_rows, max_values)
        table = reader.read_all()
        table.validate(full=True)
    except (pa.ArrowException, OSError, struct.error, ValueError, IndexError) as error:
        if isinstance(error, DataError):
            raise
        raise _unreadable(f"{type(error).__name__}: {str(error)[:120]}") from None
    return table


def _count_rows(buffer: Any) -> int:
    """Rows over the record batches, from their metadata alone; compression refused."""
    import pyarrow as pa

    reader = pa.ipc.MessageReader.open_stream(buffer)
    rows = 0
    while True:
        try:
            message = reader.read_next_message()
        except StopIteration:
            return rows
        if message.type == "dictionary batch":
            raise _unreadable("a dictionary batch (send plain string or integer ids)")
        if message.type != "record batch":
            continue
        metadata = message.metadata.to_pybytes()
        root = struct.unpack_from("<I", metadata, 0)[0]
        header = _field(metadata, root, 2)
        if header is None:
            raise _unreadable("a record batch without its header")
        batch = header + struct.unpack_from("<I", metadata, header)[0]
        if _field(metadata, batch, 3) is not None:
            raise _unreadable("a compressed record batch (send it uncompressed)")
        length = _field(metadata, batch, 0)
        count = 0 if length is None else struct.unpack_from("<q", metadata, length)[0]
        if count < 0:
            raise _unreadable(f"a record batch of {count} rows")
        rows += count


def _field(buffer: bytes, table: int, index: int) -> int | None:
    """Where field ``index`` of the FlatBuffer table at ``table`` is (None: absent)."""
    vtable = table - struct.unpack_from("<i", buffer, table)[0]
    size = struct.unpack_from("<H", buffer, vtable)[0]
    if 4 + 2 * index >= size:
        return None
    offset = struct.unpack_from("<H", buffer, vtable + 4 + 2 * index)[0]
    return None if offset == 0 else table + offset


def _check_schema(schema: Any, rows: int, max_rows: int, max_values: int) -> None:
    import pyarrow as pa

    names = list(schema.names)
    if len(set(names)) != len(names):
        raise DataError(
            describe("body", "each column once", f"columns {names}", problem="repeats a column.")
        )
    if rows > max_rows:
        raise DataError(
            describe(
                "stream",
                f"at most --max-events {max_rows} rows per request",
                f"{rows} rows",
                problem="has too many rows.",
                fix="Split the batch.",
            )
        )
    if "values" not in names:
        return  # the caller names the missing column
    kind = schema.field("values").type
    if not pa.types.is_fixed_size_list(kind) or not (
        pa.types.is_floating(kind.value_type) or pa.types.is_integer(kind.value_type)
    ):
        raise DataError(describe("values", _NUMERIC, str(kind), problem="has the wrong type."))
    if kind.list_size < 1 or rows * kind.list_size > max_values:
        raise DataError(
            describe(
                "values",
                f"1 .. {max_values // max(rows, 1)} numbers per row here "
                f"(at most {max_values} in a request)",
                f"{kind.list_size} per row, {rows} rows",
                problem="hold too many numbers.",
                fix="Split the batch.",
            )
        )


def _unreadable(why: str) -> DataError:
    return DataError(
        describe("body", "an uncompressed Arrow IPC stream", why, problem="is not readable.")
    )
