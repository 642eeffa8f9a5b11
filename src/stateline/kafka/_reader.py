"""Reading a worker's answers back, each input event's answer once."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from .._errors import DataError, describe
from ..serve._columns import ColumnAnswer
from ..serve._wire import answer_from_arrow
from ._messages import OFFSET, PARTITION, ROW, ROWS, is_arrow

__all__ = ["Answer", "AnswerReader", "RepeatFilter"]


@dataclass(frozen=True)
class Answer:
    """One answer message: the input position it answers, and its content.

    ``answer`` is the answer dict of one event (a JSON event's, in the shape
    of ``POST /v1/streams/{id}/steps``) or the :class:`ColumnAnswer` of a
    batch of columns (rows ``row`` to ``row + rows - 1`` of the input message).
    """

    partition: int
    offset: int
    row: int
    rows: int
    key: bytes | None
    answer: dict[str, Any] | ColumnAnswer


class RepeatFilter:
    """Drops answers to input positions already answered (a partition moved, and its new owner
    answered again what the old one had answered after its last commit).

    Answers to one input partition reach one output partition in input order
    from whichever worker owns it, so a high-water mark per (output partition,
    input partition) suffices: memory does not grow with the number of answers.

    >>> repeats = RepeatFilter()
    >>> [repeats.new(0, input_partition=3, offset=o) for o in (5, 6, 7, 6, 7, 8)]
    [True, True, True, False, False, True]
    >>> repeats.dropped
    2
    """

    def __init__(self) -> None:
        self._mark: dict[tuple[int, int], tuple[int, int]] = {}
        self.dropped = 0
        """Answers dropped as repeats so far."""

    def new(
        self, output_partition: int, *, input_partition: int, offset: int, row: int = 0
    ) -> bool:
        """Whether this answer is the first for its input position (else it counts as a repeat)."""
        where = (output_partition, input_partition)
        position = (offset, row)
        if where in self._mark and position <= self._mark[where]:
            self.dropped += 1
            return False
        self._mark[where] = position
        return True


class AnswerReader:
    """Consumes a worker's output topic from the start and yields each answer once.

    >>> # with AnswerReader("127.0.0.1:9092", "answers") as reader:
    >>> #     for answer in reader.poll(timeout=1.0):
    >>> #         print(answer.answer["stream"], answer.answer["forecast"])
    """

    def __init__(
        self,
        brokers: str,
        topic: str,
        *,
        group: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        from confluent_kafka import Consumer

        self.topic = topic
        self.repeats = RepeatFilter()
        self._consumer = Consumer(
            {
                "bootstrap.servers": brokers,
                "group.id": group or f"stateline-reader-{uuid.uuid4().hex[:12]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                **(options or {}),
            }
        )
        self._consumer.subscribe([topic])

    def poll(self, *, timeout: float = 1.0, limit: int = 10_000) -> list[Answer]:
        """The new answers that arrive within ``timeout`` seconds (at most ``limit`` messages)."""
        answers = []
        for message in self._consumer.consume(num_messages=limit, timeout=timeout):
            if message.error() is not None:
                continue  # end of partition and the like: nothing to read
            headers: dict[str, bytes] = {}
            for item in message.headers() or []:
                value = item[1]
                headers[str(item[0])] = value.encode() if isinstance(value, str) else value or b""
            try:
                partition, offset = int(headers[PARTITION]), int(headers[OFFSET])
                row, rows = int(headers.get(ROW, b"0")), int(headers.get(ROWS, b"1"))
            except (KeyError, ValueError):
                raise DataError(
                    describe(
                        "headers",
                        f"{PARTITION} and {OFFSET} (an answer of stateline worker)",
                        repr(headers)[:120],
                        problem="are missing.",
                    )
                ) from None
            if not self.repeats.new(
                int(message.partition() or 0), input_partition=partition, offset=offset, row=row
            ):
                continue
            value = message.value() or b""
            content: dict[str, Any] | ColumnAnswer = (
                answer_from_arrow(value) if is_arrow(value) else json.loads(value)
            )
            answers.append(Answer(partition, offset, row, rows, message.key(), content))
        return answers

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> AnswerReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
