"""A small trained model on real data (the serve tests' fixtures), and a mock Kafka cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..serve.conftest import model_dir, temperatures_csv  # noqa: F401 - fixtures

pytest.importorskip("confluent_kafka")


@pytest.fixture
def cluster() -> Iterator[object]:
    """Three mock brokers on 127.0.0.1 with topics ``events`` and ``answers`` (6 partitions)."""
    from stateline.kafka import MockCluster

    with MockCluster(brokers=3, topics={"events": 6, "answers": 6}) as mock:
        yield mock
