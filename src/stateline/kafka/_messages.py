"""What travels on the topics: events in (JSON or Arrow columns), answers out, and their headers.

An input message is keyed by its stream id and holds one event as JSON,
``{"values": [...], "seq": 7, "start": false, "end": false}`` (the fields
and meaning of an event of ``POST /v1/steps``; ``values`` one step
``(inputs,)`` or k steps ``(k, inputs)``), or a batch of columns as an Arrow
IPC stream (:func:`stateline.serve.batch_to_arrow`; its rows name their
streams). Every answer carries the input position it answers in its headers
(:data:`PARTITION`, :data:`OFFSET`, :data:`ROW`), so a reader can drop repeats
(:class:`~stateline.kafka.AnswerReader`).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import describe
from ..serve._columns import ColumnBatch
from ..serve._events import Event
from ..serve._wire import STREAM_ID_RULE, batch_to_arrow, valid_stream_id

__all__ = [
    "ARROW_MAGIC",
    "OFFSET",
    "PARTITION",
    "ROW",
    "ROWS",
    "Incoming",
    "answer_headers",
    "decode_event",
    "encode_event",
    "is_arrow",
    "partition_of",
    "produce_columns",
    "split_columns",
]

PARTITION = "stateline-partition"
"""Answer header: the input partition of the event answered (decimal text)."""
OFFSET = "stateline-offset"
"""Answer header: the input offset of the event answered (decimal text)."""
ROW = "stateline-row"
"""Answer header: the first row of the input message this answer covers (0 for a JSON event)."""
ROWS = "stateline-rows"
"""Answer header: how many rows this answer covers (1 for a JSON event)."""
ARROW_MAGIC = b"\xff\xff\xff\xff"
"""How an Arrow IPC stream begins (the continuation marker); a JSON event begins with ``{``."""

_FIELDS = {"stream", "values", "seq", "start", "end"}
MAX_SEQ = 2**63 - 1


@dataclass(frozen=True)
class Incoming:
    """One input message: its position, and its event or why it was refused."""

    partition: int
    offset: int
    event: Event | None = None
    error: str | None = None
    stream: str | None = None  # the key, when it is a valid stream id (for refused events)


def is_arrow(value: bytes | None) -> bool:
    """Whether a message value is an Arrow IPC stream (a batch of columns)."""
    return value is not None and value[:4] == ARROW_MAGIC


def encode_event(
    values: Any, *, seq: int | None = None, start: bool = False, end: bool = False
) -> bytes:
    """One event's message value (the key is its stream id).

    >>> encode_event([20.5], seq=3)
    b'{"values": [20.5], "seq": 3}'
    """
    document: dict[str, Any] = {"values": values}
    if seq is not None:
        document["seq"] = seq
    if start:
        document["start"] = True
    if end:
        document["end"] = True
    return json.dumps(document).encode()


def decode_event(key: bytes | None, value: bytes | None, partition: int, offset: int) -> Incoming:
    """A JSON event message -> :class:`Incoming` (an event, or the reason it is refused).

    >>> decode_event(b"pump-1", b'{"values": [20.5], "seq": 3}', 0, 9).event
    Event(stream='pump-1', values=[20.5], seq=3, start=False, end=False)
    >>> print(decode_event(b"pump-1", b'{"values": ["20.5"]}', 0, 9).error)
    values are not numbers.
      Expected: a list of numbers (one step) or a list of such lists (k steps)
      Received: ['20.5']
    """
    stream = _stream(key)
    if isinstance(stream, _Refusal):
        return Incoming(partition, offset, error=stream.reason)
    try:
        document = json.loads(value or b"")
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        reason = describe(
            "value",
            "a JSON event object or an Arrow IPC stream",
            f"{type(error).__name__}: {str(error)[:80]}",
            problem="is not readable.",
        )
        return Incoming(partition, offset, error=reason, stream=stream)
    problem = _check(document, stream)
    if problem is not None:
        return Incoming(partition, offset, error=problem, stream=stream)
    event = Event(
        stream,
        document["values"],
        document.get("seq"),
        bool(document.get("start", False)),
        bool(document.get("end", False)),
    )
    return Incoming(partition, offset, event=event, stream=stream)


def answer_headers(partition: int, offset: int, row: int = 0, rows: int = 1) -> list[Any]:
    """The headers that tie an answer to the input it answers."""
    return [
        (PARTITION, str(partition).encode()),
        (OFFSET, str(offset).encode()),
        (ROW, str(row).encode()),
        (ROWS, str(rows).encode()),
    ]


class _Refusal:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _stream(key: bytes | None) -> str | _Refusal:
    if key is None:
        return _Refusal(
            describe(
                "key",
                "the event's stream id",
                "no key",
                problem="is missing.",
                fix="Produce each event keyed by its stream id.",
            )
        )
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or not valid_stream_id(text):
        return _Refusal(
            describe("key", STREAM_ID_RULE, repr(key)[:80], problem="is not a valid stream id.")
        )
    return text


def _check(document: Any, stream: str) -> str | None:
    if not isinstance(document, dict):
        return describe(
            "value", "a JSON object", type(document).__name__, problem="is not an event."
        )
    unknown = sorted(set(document) - _FIELDS)
    if unknown:
        return describe(
            "value",
            f"the fields {sorted(_FIELDS)}",
            f"also {unknown}",
            problem="has unknown fields.",
        )
    if "stream" in document and document["stream"] != stream:
        return describe(
            "stream",
            f"the message key {stream!r} (or no stream field)",
            repr(document["stream"])[:80],
            problem="does not match the key.",
        )
    if "values" not in document:
        return describe(
            "values", "one step or k steps of numbers", "nothing", problem="is missing."
        )
    if not _numbers(document["values"]):
        return describe(
            "values",
            "a list of numbers (one step) or a list of such lists (k steps)",
            repr(document["values"])[:80],
            problem="are not numbers.",
        )
    seq = document.get("seq")
    if seq is not None and (
        not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= MAX_SEQ
    ):
        return describe(
            "seq", "an integer in 0 .. 2**63 - 1, or null", repr(seq)[:40], problem="is invalid."
        )
    for name in ("start", "end"):
        if not isinstance(document.get(name, False), bool):
            return describe(name, "true or false", repr(document[name])[:40], problem="is invalid.")
    return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numbers(values: Any) -> bool:
    if not isinstance(values, list) or not values:
        return False
    if all(_number(value) for value in values):
        return True
    return all(
        isinstance(row, list) and row and all(_number(value) for value in row) for row in values
    )


def partition_of(stream: str, partitions: int) -> int:
    """The partition librdkafka's default partitioner (``consistent_random``) gives a message
    keyed by ``stream``: CRC-32 of the key's UTF-8 bytes, modulo the partition count.

    >>> partition_of("pump-1", 6)
    2
    """
    return zlib.crc32(stream.encode()) % partitions


def split_columns(batch: ColumnBatch, partitions: int) -> dict[int, ColumnBatch]:
    """A batch of columns split by the partition of each row's stream (:func:`partition_of`):
    produce each part to its partition, so that a stream's rows always reach the worker that
    holds its state, whether they come as JSON events or in batches.

    >>> batch = ColumnBatch.of(["pump-1", "pump-2", "pump-1"], [[1.0], [2.0], [3.0]])
    >>> parts = split_columns(batch, 6)
    >>> {partition: part.stream.tolist() for partition, part in sorted(parts.items())}
    {0: ['pump-2'], 2: ['pump-1', 'pump-1']}
    """
    where = np.fromiter(
        (partition_of(str(stream), partitions) for stream in batch.stream.tolist()),
        dtype=np.int64,
        count=len(batch),
    )
    parts = {}
    for partition in np.unique(where).tolist():
        rows = np.flatnonzero(where == partition)
        parts[partition] = ColumnBatch(
            stream=batch.stream[rows],
            values=batch.values[rows],
            seq=None if batch.seq is None else batch.seq[rows],
            start=batch.start[rows],
            end=batch.end[rows],
            refused={
                int(np.searchsorted(rows, row)): reason
                for row, reason in batch.refused.items()
                if where[row] == partition
            },
        )
    return parts


def produce_columns(producer: Any, topic: str, batch: ColumnBatch, partitions: int) -> int:
    """Produce ``batch`` as one Arrow message per partition it spans (:func:`split_columns`),
    each keyed by its first stream id; returns the number of messages."""
    parts = split_columns(batch, partitions)
    for partition, part in parts.items():
        key = str(part.stream[0]).encode()
        producer.produce(topic, value=batch_to_arrow(part), key=key, partition=partition)
    return len(parts)
