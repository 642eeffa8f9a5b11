"""A worker's Prometheus metrics: events, answers, lag and checkpoint age per partition."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

if TYPE_CHECKING:  # pragma: no cover
    from ._partition import PartitionState
    from ._worker import Worker

__all__ = ["WorkerMetrics"]


class WorkerMetrics:
    """The worker's counters and gauges, in their own registry (Prometheus text on a port)."""

    def __init__(self, worker: Worker) -> None:
        registry = self.registry = CollectorRegistry()
        self.events = Counter(
            "stateline_worker_events",
            "Input events stepped (answered or replayed).",
            registry=registry,
        )
        self.answers = Counter("stateline_worker_answers", "Answers produced.", registry=registry)
        self.refused = Counter(
            "stateline_worker_refused_events",
            "Malformed input messages (each answered with an error).",
            registry=registry,
        )
        self.error_answers = Counter(
            "stateline_worker_error_answers",
            "Answers with status error (Arrow answers: their rows with it): malformed messages, "
            "events the service refused (a bad value, seq or width), answers too large.",
            registry=registry,
        )
        self.replayed = Counter(
            "stateline_worker_replayed_events",
            "Events stepped again after taking a partition, not answered again.",
            registry=registry,
        )
        self.rebalances = Counter(
            "stateline_worker_rebalances",
            "Partition assignments, revokes and losses.",
            registry=registry,
        )
        self.gaps = Counter(
            "stateline_worker_input_gaps",
            "Partitions whose input no longer held what their state needed (logged).",
            registry=registry,
        )
        self.delivery_failures = Counter(
            "stateline_worker_delivery_failures",
            "Answers the brokers did not take.",
            registry=registry,
        )
        self.checkpoint_failures = Counter(
            "stateline_worker_checkpoint_failures",
            "Checkpoints that could not be written (the worker then stops).",
            registry=registry,
        )
        self.commit_failures = Counter(
            "stateline_worker_commit_failures",
            "Offset commits that failed (retried).",
            registry=registry,
        )
        self.aborts = Counter(
            "stateline_worker_aborted_transactions",
            "Transactions aborted (--exactly-once); their partitions went back to a checkpoint.",
            registry=registry,
        )
        self.kafka_errors = Counter(
            "stateline_worker_kafka_errors", "Errors the Kafka client reported.", registry=registry
        )
        self.checkpoint_seconds = Histogram(
            "stateline_worker_checkpoint_seconds",
            "Time to write one partition's checkpoint.",
            registry=registry,
        )
        self.lag = Gauge(
            "stateline_worker_partition_lag",
            "Input messages not yet stepped, per owned partition (from the last fetch).",
            ["partition"],
            registry=registry,
        )
        self.streams = Gauge(
            "stateline_worker_partition_streams",
            "Streams held, per owned partition.",
            ["partition"],
            registry=registry,
        )
        checkpoint_age = Gauge(
            "stateline_worker_checkpoint_age_seconds",
            "Seconds since the least recently durable owned partition was checkpointed (or "
            "taken, or found unchanged at a checkpoint); 0: none owned.",
            registry=registry,
        )
        checkpoint_age.set_function(lambda: _oldest(worker))
        owned = Gauge("stateline_worker_partitions", "Input partitions owned.", registry=registry)
        owned.set_function(lambda: float(len(worker.partitions)))
        self._known: set[int] = set()
        self._worker = worker

    def observe_partition(self, state: PartitionState, consumer: Any) -> None:
        """Lag and streams of a partition after a poll (lag from the last fetch's high mark)."""
        from confluent_kafka import TopicPartition

        label = str(state.partition)
        try:
            _, high = consumer.get_watermark_offsets(
                TopicPartition(state.topic, state.partition), cached=True
            )
        except Exception:  # pragma: no cover - no fetch yet
            high = -1
        if high >= 0:  # nothing read yet (and no checkpoint): all of it is to come
            self.lag.labels(label).set(max(0, high - (state.next_offset or 0)))
        self.streams.labels(label).set(state.streams)
        self._known.add(state.partition)
        for gone in self._known - set(self._worker.partitions):
            for gauge in (self.lag, self.streams):
                with contextlib.suppress(KeyError):  # never set for it
                    gauge.remove(str(gone))
        self._known &= set(self._worker.partitions)

    def serve(self, host: str, port: int) -> None:
        """Serve ``/metrics`` (Prometheus text) on ``host:port`` in a daemon thread."""
        start_http_server(port, addr=host, registry=self.registry)

    def text(self) -> str:
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()


def _oldest(worker: Worker) -> float:
    stamps = [state.checkpointed_at for state in list(worker.partitions.values())]
    return time.time() - min(stamps) if stamps else 0.0
