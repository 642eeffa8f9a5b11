"""librdkafka's mock Kafka cluster, reached on 127.0.0.1 by any process: for tests and benches.

The ``confluent-kafka`` wheel ships librdkafka, which holds a mock cluster
(``rd_kafka_mock_*``): brokers that speak the Kafka protocol on loopback
ports, with consumer groups and transactions, inside the process that made
them. It is no Kafka: see docs/scaling.md for what it does and does not show.
"""

from __future__ import annotations

import ctypes
import glob
import os
from types import TracebackType

from .._errors import ConfigError, describe

__all__ = ["MockCluster"]


def _library() -> ctypes.CDLL:
    """The librdkafka that confluent-kafka ships (the one its Python module runs on)."""
    import confluent_kafka

    folder = os.path.join(os.path.dirname(confluent_kafka.__file__), os.pardir)
    found = sorted(glob.glob(os.path.join(folder, "confluent_kafka.libs", "librdkafka*.so*")))
    if not found:
        raise ConfigError(
            describe(
                "confluent-kafka",
                "a wheel that bundles librdkafka (confluent_kafka.libs/librdkafka*.so)",
                os.path.abspath(folder),
                problem="has no bundled librdkafka.",
                fix="pip install 'stateline[kafka]' (it pins a wheel that bundles it).",
            )
        )
    library = ctypes.CDLL(found[0])
    void, text, size = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t
    library.rd_kafka_conf_new.restype = void
    library.rd_kafka_conf_set.argtypes = [void, text, text, text, size]
    library.rd_kafka_new.restype = void
    library.rd_kafka_new.argtypes = [ctypes.c_int, void, text, size]
    library.rd_kafka_destroy.argtypes = [void]
    library.rd_kafka_mock_cluster_new.restype = void
    library.rd_kafka_mock_cluster_new.argtypes = [void, ctypes.c_int]
    library.rd_kafka_mock_cluster_destroy.argtypes = [void]
    library.rd_kafka_mock_cluster_bootstraps.restype = text
    library.rd_kafka_mock_cluster_bootstraps.argtypes = [void]
    library.rd_kafka_mock_topic_create.restype = ctypes.c_int
    library.rd_kafka_mock_topic_create.argtypes = [void, text, ctypes.c_int, ctypes.c_int]
    return library


class MockCluster:
    """A mock Kafka cluster of ``brokers`` brokers on 127.0.0.1, with ``topics`` (name: partitions).

    It serves as long as this object lives (until :meth:`close`), for every
    process that connects to :attr:`bootstrap`.

    >>> from confluent_kafka import Consumer, Producer
    >>> with MockCluster(topics={"events": 2}) as cluster:
    ...     producer = Producer({"bootstrap.servers": cluster.bootstrap})
    ...     producer.produce("events", key=b"pump-1", value=b"{}")
    ...     producer.flush(10)
    0
    """

    def __init__(self, *, brokers: int = 1, topics: dict[str, int] | None = None) -> None:
        self._library = _library()
        error = ctypes.create_string_buffer(512)
        conf = self._library.rd_kafka_conf_new()
        self._library.rd_kafka_conf_set(conf, b"log_level", b"0", error, len(error))
        self._handle = self._library.rd_kafka_new(1, conf, error, len(error))  # a consumer handle
        if not self._handle:
            raise ConfigError(f"librdkafka could not start a mock cluster: {error.value.decode()}")
        self._cluster = self._library.rd_kafka_mock_cluster_new(self._handle, brokers)
        if not self._cluster:
            self._library.rd_kafka_destroy(self._handle)
            raise ConfigError("librdkafka could not start a mock cluster")
        self.bootstrap: str = self._library.rd_kafka_mock_cluster_bootstraps(self._cluster).decode()
        """``host:port,...`` of the brokers, for ``bootstrap.servers``."""
        for name, partitions in (topics or {}).items():
            self.create_topic(name, partitions)

    def create_topic(self, name: str, partitions: int) -> None:
        """Create a topic (the mock has no admin API; unknown topics are made with defaults)."""
        code = self._library.rd_kafka_mock_topic_create(
            self._cluster, name.encode(), int(partitions), 1
        )
        if code:
            raise ConfigError(f"the mock cluster refused topic {name!r}: error code {code}")

    def close(self) -> None:
        """Stop the brokers (clients still connected then see them go)."""
        if self._cluster:
            self._library.rd_kafka_mock_cluster_destroy(self._cluster)
            self._library.rd_kafka_destroy(self._handle)
            self._cluster = self._handle = None

    def __enter__(self) -> MockCluster:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
