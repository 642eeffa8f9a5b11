"""``stateline worker``: events from a Kafka topic through per-partition state, answers to another.

The stream id is the message key, so a partition is a shard of state: each
input partition the consumer group gives this worker gets its own state
store (restored from its checkpoint), and the group moves partitions between
workers as they join, leave or die (cooperative-sticky assignment).

How nothing is lost or doubled, in order:

1. A poll's events are stepped partition by partition, each stream's events in
   input order, and one answer per event is produced (keyed by stream id, with
   the input position in its headers).
2. Every ``commit_interval`` the producer is flushed (every answer so far is on
   the brokers), then the input offsets after them are committed: the
   committed offset of a partition means "answered up to here".
3. Every ``checkpoint_interval``, and when a partition is taken away, the
   producer is flushed, then the partition's state is written with the offset
   it covers, in one atomic file, then that offset is committed.
4. A worker given a partition restores its checkpoint, reads the input from the
   checkpoint's offset (not from the committed offset: the state must see
   every event), and steps the events before the committed offset without
   answering them again; past it, it answers.

A worker that dies loses at most what it stepped after its last commit: the
new owner answers those events again (the same answers), and
:class:`~stateline.kafka.AnswerReader` drops the repeats by input position.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError, DataError, StatelineError, describe
from ..serve._answers import blank_answer
from ..serve._columns import ColumnBatch
from ..serve._events import Event, event_steps
from ..serve._wire import ARROW, answer_to_arrow, arrow_request
from ..stream._engine import ERROR
from ._config import WorkerConfig
from ._messages import Incoming, answer_headers, decode_event, is_arrow
from ._metrics import WorkerMetrics
from ._partition import PartitionState

if TYPE_CHECKING:
    from ..serve._service import StreamService

__all__ = ["Worker"]

LOG = logging.getLogger("stateline.worker")

CONNECT_TIMEOUT = 15.0
"""Seconds the worker waits for the brokers' metadata before it says they are unreachable."""


class Worker:
    """Runs one ``stateline worker``: :meth:`run` until :meth:`stop` (or SIGTERM/SIGINT)."""

    def __init__(self, config: WorkerConfig, *, kafka: dict[str, Any] | None = None) -> None:
        from confluent_kafka import Consumer, Producer

        self.config = config
        extra = dict(kafka or {})
        common = {"bootstrap.servers": config.brokers, "error_cb": self._kafka_error}
        self.consumer = Consumer(
            {
                **common,
                "group.id": config.group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "partition.assignment.strategy": "cooperative-sticky",
                "isolation.level": "read_committed",
                "session.timeout.ms": config.session_timeout_ms,
                "heartbeat.interval.ms": max(100, config.session_timeout_ms // 3),
                **extra,
            }
        )
        self._producer_settings = {
            **common, "enable.idempotence": True, "linger.ms": 5, **_producer_only(extra)
        }  # fmt: skip
        self.producer = Producer(self._producer_settings)
        """Where answers go (without --exactly-once)."""
        self._transactional: dict[int, Any] = {}  # --exactly-once: a producer per partition
        self.partitions: dict[int, PartitionState] = {}
        self._unresolved: set[int] = set()  # taken partitions whose committed offset is unread
        self.metrics = WorkerMetrics(self)
        self.failure: str | None = None
        self._stopping = threading.Event()
        self._last_commit = time.monotonic()
        self._last_checkpoint = time.monotonic()

    # ------------------------------------------------------------------ public
    def run(self, *, seconds: float | None = None, handle_signals: bool = True) -> None:
        """Consume, step and answer until stopped; then checkpoint and leave the group.

        Raises :class:`ConfigError` for an unreachable broker or a missing topic,
        and :class:`StatelineError` when answers could not be delivered (the
        partitions' state is then not checkpointed past them).
        """
        self._check_topics()
        previous: dict[signal.Signals, Any] = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            for number in (signal.SIGTERM, signal.SIGINT):
                previous[number] = signal.signal(number, lambda *_: self.stop())
        if self.config.metrics_port is not None:
            self.metrics.serve(self.config.metrics_host, self.config.metrics_port)
        deadline = None if seconds is None else time.monotonic() + seconds
        self.consumer.subscribe(
            [self.config.input],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        LOG.info("worker in group %s reading %s", self.config.group, self.config.input)
        try:
            while not self._stopping.is_set():
                if deadline is not None and time.monotonic() > deadline:
                    break
                self._poll_once()
            self._commit(checkpoint=True)
        except BaseException as error:
            # A poll that failed half way has stepped events past its partitions' offsets:
            # leaving now must write no checkpoint and commit nothing (the next owner
            # restores the last good checkpoint and steps them again).
            if self.failure is None:
                self.failure = f"{type(error).__name__}: {error}"
                LOG.error("the worker stops: %s", self.failure)
            raise
        finally:
            try:  # revokes: each partition is checkpointed on its way out (not after a failure)
                self._unsubscribe()
                self.consumer.close()
            except Exception as error:  # the failure that got here says more
                LOG.warning("leaving the group failed: %s", error)
            for state in self.partitions.values():  # left without a revoke
                state.close()
            for number, handler in previous.items():
                signal.signal(number, handler)
        if self.failure is not None:
            raise StatelineError(self.failure)

    def _unsubscribe(self, seconds: float = 10.0) -> None:
        """Leave the group's assignment before closing: unsubscribe, then serve the rebalance
        callbacks until no partition is assigned (at most ``seconds``).

        Closing while an incremental assignment was still in progress (taken in a rebalance,
        its offsets still being fetched) aborted the process in librdkafka
        (``rd_kafka_cgrp_terminated: assert: !rd_kafka_assignment_in_progress``, seen once
        when a worker was stopped right after taking a dead worker's partitions;
        confluentinc/librdkafka#4792). Messages a poll here returns are not stepped: their
        offsets are not committed, so the next owner steps them.
        """
        self.consumer.unsubscribe()
        deadline = time.monotonic() + seconds
        while self.consumer.assignment() and time.monotonic() < deadline:
            self.consumer.poll(0.1)

    def stop(self) -> None:
        """Ask :meth:`run` to finish its poll, checkpoint and leave the group."""
        self._stopping.set()

    # --------------------------------------------------------------- the loop
    def _poll_once(self) -> None:
        config = self.config
        messages = self.consumer.consume(
            num_messages=config.max_poll, timeout=config.poll_ms / 1000
        )
        self._resolve_answered()
        by_partition: dict[int, list[Any]] = {}
        for message in messages:
            if message.error() is not None:
                self._kafka_error(message.error())
                continue
            by_partition.setdefault(int(message.partition() or 0), []).append(message)
        if by_partition:
            LOG.debug(
                "polled %s", {p: (m[0].offset(), m[-1].offset()) for p, m in by_partition.items()}
            )
        for partition, mine in by_partition.items():
            state = self.partitions.get(partition)
            if state is None:  # revoked while these were in flight: its new owner reads them
                continue
            if config.exactly_once:
                self._step_in_transaction(state, mine)
            else:
                self._step_partition(state, mine)
        for producer in [self.producer, *self._transactional.values()]:
            producer.poll(0)
        if self.failure is not None:
            raise StatelineError(self.failure)
        now = time.monotonic()
        if now - self._last_checkpoint >= config.checkpoint_interval:
            self._commit(checkpoint=True)
        elif now - self._last_commit >= config.commit_interval:
            self._commit(checkpoint=False)

    def _step_partition(self, state: PartitionState, messages: list[Any]) -> None:
        """Step one partition's messages in input order: runs of JSON events in one call each,
        each Arrow batch in its own call."""
        first = messages[0].offset()
        if state.next_offset is None and first > 0:
            LOG.warning(
                "%s[%d]: no checkpoint, and the input begins at offset %d: the streams' state "
                "is rebuilt from there (what came before is gone from the topic)",
                state.topic, state.partition, first,
            )  # fmt: skip
            self.metrics.gaps.inc()
        elif state.next_offset is not None and first > state.next_offset:
            LOG.error(
                "%s[%d]: the checkpoint covers the input up to offset %d but the topic now "
                "begins at %d: events in between are gone (retention shorter than the "
                "checkpoint interval?); their streams' state is not what it should be",
                state.topic, state.partition, state.next_offset, first,
            )  # fmt: skip
            self.metrics.gaps.inc()
        run: list[Any] = []
        for message in messages:
            if is_arrow(message.value()):
                self._step_events(state, run)
                run = []
                self._step_columns(state, message)
            else:
                run.append(message)
        self._step_events(state, run)
        state.next_offset = messages[-1].offset() + 1
        self.metrics.observe_partition(state, self.consumer)

    def _step_events(self, state: PartitionState, messages: list[Any]) -> None:
        if not messages:
            return
        limits = state.service.config
        incoming = [
            _within(decode_event(m.key(), m.value(), state.partition, m.offset()), limits.max_steps)
            for m in messages
        ]
        events = [item.event for item in incoming if item.event is not None]
        answers: list[dict[str, Any]] = []
        for chunk in _chunks(events, limits.max_steps, limits.max_events):
            answers.extend(_step_or_each(state.service, chunk))
        stepped = iter(answers)
        for item in incoming:
            if item.event is not None:
                answer = next(stepped)
            else:
                answer = blank_answer(item.stream, "error", error=item.error)
                self.metrics.refused.inc()
            self._answer(state, item, answer)
        self.metrics.events.inc(len(incoming))

    def _step_columns(self, state: PartitionState, message: Any) -> None:
        service = state.service
        try:
            batch, ids = _decoded(message.value(), service.column_bounds)
            answer = service.step_columns(batch)  # refuses a batch past a limit as a whole
        except StatelineError as error:  # the whole message is refused: one error answer
            item = Incoming(state.partition, message.offset(), error=f"value: {error}")
            self._answer(state, item, blank_answer(None, "error", error=item.error))
            self.metrics.refused.inc()
            self.metrics.events.inc()
            return
        self.metrics.events.inc(len(batch))
        if message.offset() < state.replay_until:
            self.metrics.replayed.inc(len(batch))
            return
        self.metrics.error_answers.inc(int((answer.status == ERROR).sum()))
        self._produce(
            state,
            Incoming(state.partition, message.offset()),
            message.key() or self._fallback_key(state),
            answer_to_arrow(answer, stream=ids),
            [
                *answer_headers(state.partition, message.offset(), 0, len(batch)),
                ("content-type", ARROW.encode()),
            ],
        )

    def _step_in_transaction(self, state: PartitionState, messages: list[Any]) -> None:
        """--exactly-once: a partition's answers and its input progress in one transaction.
        If Kafka wants it aborted, the state goes back to its checkpoint and the input is
        read again from there (what the aborted transaction answered, nobody saw)."""
        from confluent_kafka import KafkaException, TopicPartition

        producer = self._transactional[state.partition]
        producer.begin_transaction()
        try:
            self._step_partition(state, messages)
            assert state.next_offset is not None
            producer.send_offsets_to_transaction(
                [TopicPartition(state.topic, state.partition, state.next_offset)],
                self.consumer.consumer_group_metadata(),
                30,
            )
            self._commit_transaction(producer)
        except KafkaException as error:
            problem = error.args[0]
            if not problem.txn_requires_abort():
                self.failure = (
                    f"a transaction of {state.topic}[{state.partition}] failed: {problem}"
                )
                raise StatelineError(self.failure) from None
            LOG.warning(
                "%s[%d]: transaction aborted (%s); back to the checkpoint at offset %s",
                state.topic, state.partition, problem, state.checkpoint_offset,
            )  # fmt: skip
            producer.abort_transaction(30)
            self.metrics.aborts.inc()
            self._rewind(state)
            return
        except BaseException:
            producer.abort_transaction(30)
            raise
        state.committed_offset = state.next_offset

    def _commit_transaction(self, producer: Any) -> None:
        producer.commit_transaction(30)

    def _rewind(self, state: PartitionState) -> None:
        """Put a partition back to its checkpoint and read its input again from there."""
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        fresh = PartitionState(self.config, state.topic, state.partition)
        fresh.committed_offset = state.committed_offset
        fresh.replay_until = max(state.committed_offset or 0, fresh.checkpoint_offset or 0)
        state.close()
        self.partitions[state.partition] = fresh
        start = OFFSET_BEGINNING if fresh.checkpoint_offset is None else fresh.checkpoint_offset
        self.consumer.seek(TopicPartition(state.topic, state.partition, start))

    def _answer(self, state: PartitionState, item: Incoming, answer: dict[str, Any]) -> None:
        if item.offset < state.replay_until:  # answered by an earlier owner
            self.metrics.replayed.inc()
            return
        answer.setdefault("error", None)
        if answer.get("status") == "error":
            self.metrics.error_answers.inc()
        key = self._fallback_key(state) if item.stream is None else item.stream.encode()
        self._produce(
            state,
            item,
            key,
            json.dumps(answer, allow_nan=False).encode(),
            answer_headers(state.partition, item.offset),
        )

    @staticmethod
    def _fallback_key(state: PartitionState) -> bytes:
        """The key of an answer that names no stream (a message with no key, or a bad one):
        one per input partition, so that an answer given again after a failover reaches the
        same output partition and :class:`~stateline.kafka.RepeatFilter` sees the repeat."""
        return f"{state.topic}-{state.partition}".encode()

    def _produce(
        self,
        state: PartitionState,
        item: Incoming,
        key: bytes | None,
        value: bytes,
        headers: list[Any],
    ) -> None:
        """Produce one answer; one too large for the topic becomes an error answer saying so."""
        from confluent_kafka import KafkaError, KafkaException

        producer = self._transactional.get(state.partition, self.producer)
        while True:
            try:
                producer.produce(
                    self.config.output, value=value, key=key, headers=headers,
                    on_delivery=self._delivered,
                )  # fmt: skip
                self.metrics.answers.inc()
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.05)
            except KafkaException as error:
                if error.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE:
                    raise
                reason = describe(
                    "answer",
                    "an answer that fits the output topic's message.max.bytes",
                    f"{len(value):,} bytes",
                    problem="is too large to produce.",
                    fix="Send fewer rows or steps per message (or raise message.max.bytes "
                    "with --kafka and on the topic).",
                )
                self.metrics.refused.inc()
                self.metrics.error_answers.inc()  # the answer produced in its place
                value = json.dumps(blank_answer(item.stream, "error", error=reason)).encode()
                headers = [header for header in headers if header[0] != "content-type"]

    # ------------------------------------------------- durability and progress
    def _commit(self, *, checkpoint: bool, only: list[int] | None = None) -> None:
        """Flush every answer, then (checkpoint and) commit the offsets after them."""
        from confluent_kafka import KafkaException, TopicPartition

        left = sum(
            producer.flush(30) for producer in [self.producer, *self._transactional.values()]
        )
        if left or self.failure is not None:
            self.failure = self.failure or (
                f"{left} answers could not be delivered to {self.config.output} within 30 s: "
                "the partitions' progress is not committed past them"
            )
            raise StatelineError(self.failure)
        chosen = list(self.partitions) if only is None else only
        offsets = []
        for partition in chosen:
            state = self.partitions[partition]
            if checkpoint and not state.changed:  # nothing new since the last one: durable
                state.checkpointed_at = time.time()
            elif checkpoint:  # changed: it has read something, so next_offset is set
                started = time.perf_counter()
                try:
                    state.checkpoint()
                except Exception as error:
                    self.metrics.checkpoint_failures.inc()
                    self.failure = (
                        f"the checkpoint of {state.topic}[{partition}] to {state.folder} failed: "
                        f"{type(error).__name__}: {error}; the worker stops (its partitions "
                        "restart from their last good checkpoints elsewhere)"
                    )
                    LOG.error("%s", self.failure)
                    raise StatelineError(self.failure) from error
                self.metrics.checkpoint_seconds.observe(time.perf_counter() - started)
            if state.next_offset is None:
                continue
            offsets.append(TopicPartition(self.config.input, partition, state.next_offset))
        if offsets and not self.config.exactly_once:  # else each transaction committed them
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as error:  # answers are out; a later commit catches up
                LOG.warning("committing offsets failed (retried next time): %s", error)
                self.metrics.commit_failures.inc()
        for state in self.partitions.values():
            self.metrics.observe_partition(state, self.consumer)
        self._last_commit = time.monotonic()
        if checkpoint and only is None:
            self._last_checkpoint = time.monotonic()

    def _delivered(self, error: Any, message: Any) -> None:
        from confluent_kafka import KafkaError

        if error is not None and error.code() == KafkaError._PURGE_QUEUE:
            return  # an aborted transaction's answer: withdrawn on purpose, given again later
        if error is not None:
            self.failure = (
                f"an answer could not be delivered to {message.topic()}: {error}; the worker "
                "stops so that no progress is committed past it (a restart answers again)"
            )
            LOG.error("%s", self.failure)
            self.metrics.delivery_failures.inc()

    def _kafka_error(self, error: Any) -> None:
        from confluent_kafka import KafkaError

        if error.code() == KafkaError._PARTITION_EOF:
            return
        LOG.warning("kafka: %s", error)
        self.metrics.kafka_errors.inc()
        if error.fatal():
            self.failure = f"a fatal Kafka error: {error}"

    # --------------------------------------------------------------- rebalance
    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        """Restore each new partition's checkpoint and read its input from the checkpoint's
        offset; how far an earlier owner answered is asked once the callback is over."""
        from confluent_kafka import OFFSET_BEGINNING

        if not partitions:  # a cooperative rebalance that gives this worker nothing new
            consumer.incremental_assign(partitions)
            return
        self.metrics.rebalances.inc()
        for assigned in partitions:
            try:
                state = PartitionState(self.config, assigned.topic, assigned.partition)
            except StatelineError as error:
                self.failure = str(error)
                self.stop()
                raise
            start = state.checkpoint_offset
            assigned.offset = OFFSET_BEGINNING if start is None else start
            self.partitions[assigned.partition] = state
            self._unresolved.add(assigned.partition)
            LOG.info(
                "took %s[%d]: %d streams from its checkpoint at offset %s",
                assigned.topic, assigned.partition, state.streams, start,
            )  # fmt: skip
        consumer.incremental_assign(partitions)

    def _resolve_answered(self) -> None:
        """For partitions just taken: the committed offset (answered up to there by an earlier
        owner). Asked outside the rebalance callback, where the group's offsets can be read;
        if they cannot, the events after the checkpoint are answered again (repeats, never
        losses)."""
        from confluent_kafka import KafkaException, TopicPartition

        pending = [p for p in self._unresolved if p in self.partitions]
        self._unresolved.clear()
        if not pending:
            return
        asked = [TopicPartition(self.config.input, p) for p in pending]
        try:
            committed = {
                tp.partition: tp.offset for tp in self.consumer.committed(asked, timeout=10)
            }
        except KafkaException as error:
            LOG.warning(
                "could not read committed offsets (answering again from the checkpoints): %s", error
            )
            committed = {}
        for partition in pending:
            state = self.partitions[partition]
            state.replay_until = max(committed.get(partition, -1), state.checkpoint_offset or 0)
            state.committed_offset = state.replay_until
            if self.config.exactly_once:
                self._transactional[partition] = self._transactional_producer(partition)
            LOG.info(
                "%s[%d]: answers from offset %d on (earlier ones were answered before)",
                state.topic, partition, state.replay_until,
            )  # fmt: skip

    def _transactional_producer(self, partition: int) -> Any:
        """The partition's own transactional producer: its id is the partition's, so starting
        it fences the producer of any earlier owner (its open transaction is aborted)."""
        from confluent_kafka import Producer

        config = self.config
        name = f"stateline-{config.group}-{config.input}-{partition}"
        producer = Producer({**self._producer_settings, "transactional.id": name})
        producer.init_transactions(30)
        return producer

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        """Checkpoint and commit what is being taken away, then stop answering for it."""
        if not partitions:
            consumer.incremental_unassign(partitions)
            return
        self.metrics.rebalances.inc()
        mine = [p.partition for p in partitions if p.partition in self.partitions]
        if mine and self.failure is None:
            self._commit(checkpoint=True, only=mine)
        for partition in mine:
            self.partitions.pop(partition).close()
            producer = self._transactional.pop(partition, None)
            if producer is not None:
                producer.flush(30)
        consumer.incremental_unassign(partitions)

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        """Partitions lost without a revoke (the session timed out): another worker may
        already own them, so nothing is checkpointed or committed for them."""
        self.metrics.rebalances.inc()
        for p in partitions:
            lost = self.partitions.pop(p.partition, None)
            if lost is not None:
                lost.close()
            self._transactional.pop(p.partition, None)  # its successor's producer fences it
        LOG.warning(
            "lost %s without a revoke: dropped their state", [p.partition for p in partitions]
        )
        consumer.incremental_unassign(partitions)

    def _check_topics(self) -> None:
        from confluent_kafka import KafkaException

        try:
            metadata = self.consumer.list_topics(timeout=CONNECT_TIMEOUT)
        except KafkaException as error:
            raise ConfigError(
                describe(
                    "brokers",
                    "reachable Kafka brokers",
                    f"{self.config.brokers} ({error})",
                    problem=f"could not be reached within {CONNECT_TIMEOUT:g} s.",
                    fix="Check --brokers (host:port[,host:port...]) and that Kafka is up.",
                )
            ) from None
        for name in (self.config.input, self.config.output):
            topic = metadata.topics.get(name)
            if topic is None or topic.error is not None:
                raise ConfigError(
                    describe(
                        "topic",
                        f"{name!r} on {self.config.brokers}",
                        "no such topic" if topic is None else str(topic.error),
                        problem="does not exist.",
                        fix="Create it (partitions: as many as workers you may run).",
                    )
                )


def _within(item: Incoming, max_steps: int) -> Incoming:
    """``item``, or its refusal when its event alone holds more than ``max_steps`` steps (no
    call could take it; the service would refuse the whole call it went into)."""
    if item.event is None or event_steps(item.event) <= max_steps:
        return item
    error = describe(
        "values",
        f"at most --max-steps {max_steps} steps in one event",
        f"{event_steps(item.event)} steps",
        problem="hold too many steps.",
        fix="Send the steps in several events.",
    )
    return Incoming(item.partition, item.offset, error=error, stream=item.stream)


def _step_or_each(service: StreamService, events: list[Event]) -> list[dict[str, Any]]:
    """The service's answers to ``events`` in one call; when it refuses the call as a whole
    (a limit of the call, such as more new streams than the store holds), each event alone,
    so that one event's refusal is its own answer and the worker goes on."""
    try:
        return service.step(events)
    except StatelineError as error:
        if len(events) == 1:
            return [blank_answer(events[0].stream, "error", error=str(error))]
    return [answer for event in events for answer in _step_or_each(service, [event])]


def _decoded(value: bytes, bounds: dict[str, int]) -> tuple[ColumnBatch, Any]:
    """:func:`arrow_request` of a message value; what Arrow itself cannot read is a
    DataError too (the message is answered with it, never stops the worker)."""
    try:
        return arrow_request(value, **bounds)
    except StatelineError:
        raise
    except Exception as error:  # pyarrow's own errors, on a body no check foresaw
        LOG.warning("an Arrow message Arrow could not read: %s: %s", type(error).__name__, error)
        raise DataError(
            describe(
                "value",
                "an Arrow batch of stateline's columns",
                f"{type(error).__name__}: {error}",
                problem="cannot be read.",
            )
        ) from error


def _chunks(events: list[Event], max_steps: int, max_events: int) -> list[list[Event]]:
    """Events in calls of at most ``max_events`` events and ``max_steps`` steps (each
    event holds at most ``max_steps``: :func:`_within` refused the others)."""
    chunks: list[list[Event]] = []
    current: list[Event] = []
    steps = 0
    for event in events:
        size = event_steps(event)
        if current and (steps + size > max_steps or len(current) == max_events):
            chunks.append(current)
            current, steps = [], 0
        current.append(event)
        steps += size
    if current:
        chunks.append(current)
    return chunks


_CONSUMER_ONLY = (
    "group.",
    "session.",
    "heartbeat.",
    "auto.offset",
    "isolation.",
    "partition.",
    "enable.auto",
    "max.poll",
)


def _producer_only(options: dict[str, Any]) -> dict[str, Any]:
    """The options a producer takes (the consumer's own are left out)."""
    return {k: v for k, v in options.items() if not k.startswith(_CONSUMER_ONLY)}
