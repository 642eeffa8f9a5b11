"""Messages: the partition of a stream id is librdkafka's, and batches split by it."""

from __future__ import annotations

from typing import Any

import numpy as np

from stateline.kafka import partition_of, split_columns
from stateline.serve import ColumnBatch


def test_partition_of_is_where_the_default_partitioner_puts_a_key(cluster: Any) -> None:
    from confluent_kafka import Producer

    placed: dict[bytes, int] = {}
    producer = Producer({"bootstrap.servers": cluster.bootstrap})
    keys = [f"s{i}" for i in range(120)] + ["pump-é", "x" * 256, "温度"]
    for key in keys:
        producer.produce(
            "events",
            key=key.encode(),
            value=b"{}",
            on_delivery=lambda error, message: placed.__setitem__(
                message.key(), message.partition()
            ),
        )
    producer.flush(30)
    assert {key: placed[key.encode()] for key in keys} == {
        key: partition_of(key, 6) for key in keys
    }


def test_split_columns_keeps_each_rows_fields_and_refusals() -> None:
    ids = [f"s{i}" for i in range(50)] + ["bad/id"]
    refused = {50: "stream is not a valid stream id."}  # as decoding a request says it
    batch = ColumnBatch.of(ids, np.arange(51.0).reshape(51, 1), seq=np.arange(51), refused=refused)
    parts = split_columns(batch, 4)
    rows = sorted(
        (stream, float(part.values[i, 0, 0]), int(part.seq[i]))
        for part in parts.values()
        for i, stream in enumerate(part.stream.tolist())
    )
    assert rows == sorted((ids[i], float(i), i) for i in range(51))
    for partition, part in parts.items():
        assert {partition_of(s, 4) for s in part.stream.tolist()} == {partition}
        for row, reason in part.refused.items():
            assert part.stream[row] == "bad/id" and "stream" in reason
