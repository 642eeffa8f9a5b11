"""--exactly-once on the mock cluster, as far as it goes: a transaction Kafka wants aborted is
aborted, its answers never reach a read_committed reader, and the partition goes back to its
checkpoint so that the answers given again equal a single in-process service's.

The mock shows read_committed readers the records of an aborted transaction that reached its
brokers (test_the_mock_shows_aborted_records_that_reached_it), so
here the answers stay in the producer (linger.ms) until the transaction commits or aborts: what
this shows is the worker's abort and rewind, not Kafka's read_committed filtering."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from stateline.anomaly import DetectorConfig
from stateline.kafka import AnswerReader, Worker, WorkerConfig, encode_event
from stateline.serve import Event, ServeConfig, StreamService

STREAMS, FIRST, SECOND = 5, 6, 6  # rounds before and after the checkpoint
DETECTOR = DetectorConfig(reference=4, warmup=1)


class AbortsOnce(Worker):
    """A worker whose first transaction after its first checkpoint is refused by 'Kafka'."""

    aborted = 0

    def _commit_transaction(self, producer: Any) -> None:
        from confluent_kafka import KafkaError, KafkaException

        checkpointed = any(s.checkpoint_offset for s in self.partitions.values())
        if checkpointed and not self.aborted:
            self.aborted += 1
            raise KafkaException(
                KafkaError(KafkaError._STATE, "injected by the test", txn_requires_abort=True)
            )
        super()._commit_transaction(producer)


def _value(stream: int, step: int) -> list[float]:
    return [float(15 + 5 * np.sin((step + 3 * stream) / 4))]


def _read(cluster: Any, count: int, *, committed: bool, seconds: float) -> tuple[list[Any], int]:
    """The answers a reader sees (each input position once), and how many repeats it dropped."""
    options = {} if committed else {"isolation.level": "read_uncommitted"}
    answers: list[Any] = []
    deadline = time.monotonic() + seconds
    with AnswerReader(cluster.bootstrap, "answers", options=options) as reader:
        while time.monotonic() < deadline and len(answers) < count:
            answers.extend(reader.poll(timeout=0.5))
        answers.extend(reader.poll(timeout=1.0))  # and anything more that is visible
        return answers, reader.repeats.dropped


def test_an_aborted_transaction_is_never_seen_and_the_state_goes_back(
    cluster: Any, model_dir: Path, tmp_path: Path
) -> None:
    from confluent_kafka import Producer

    config = WorkerConfig(
        model=str(model_dir), brokers=cluster.bootstrap, input="events", output="answers",
        group="stateline-txn", checkpoint_dir=str(tmp_path / "ck"), session_timeout_ms=3000,
        poll_ms=50, checkpoint_interval=0.5, exactly_once=True, detector=DETECTOR,
    )  # fmt: skip
    worker = AbortsOnce(config, kafka={"linger.ms": 5000})  # answers wait for the commit
    thread = threading.Thread(target=worker.run, kwargs={"seconds": 90}, daemon=True)
    thread.start()
    producer = Producer({"bootstrap.servers": cluster.bootstrap})

    def send(steps: range) -> None:
        for step in steps:
            for stream in range(STREAMS):
                value = encode_event(_value(stream, step), seq=step)
                producer.produce("events", key=f"s{stream}", value=value, partition=0)
        producer.flush(30)

    send(range(FIRST))
    first, _ = _read(cluster, STREAMS * FIRST, committed=True, seconds=60)
    assert len(first) == STREAMS * FIRST
    deadline = time.monotonic() + 30
    while not (tmp_path / "ck" / "events-0" / "state.pt").is_file():
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.1)
    send(range(FIRST, FIRST + SECOND))
    total = STREAMS * (FIRST + SECOND)
    committed, repeats = _read(cluster, total, committed=True, seconds=60)
    everything, _ = _read(cluster, total + 1, committed=False, seconds=5)
    worker.stop()
    thread.join(timeout=60)
    assert worker.aborted == 1
    keys = [(a.answer["stream"], a.answer["seq"]) for a in committed]
    assert len(keys) == len(set(keys)) == total and repeats == 0  # none of the aborted ones
    assert len(everything) == total  # the aborted answers never left the producer
    service = StreamService(
        ServeConfig(model=str(model_dir), snapshot_dir=str(tmp_path / "offline"), detector=DETECTOR)
    )
    expected = {}
    for step in range(FIRST + SECOND):
        events = [Event(f"s{s}", _value(s, step), seq=step) for s in range(STREAMS)]
        for answer in service.step(events):
            expected[(answer["stream"], answer["seq"])] = answer
    for answer in committed:
        got = answer.answer
        want = expected[(got["stream"], got["seq"])]
        assert got["status"] == want["status"] == "ok"
        for field in ("forecast", "scores", "anomaly_scores"):
            np.testing.assert_allclose(
                np.array(got[field], dtype=float), np.array(want[field], dtype=float), rtol=1e-4
            )


def test_the_mock_shows_aborted_records_that_reached_it(cluster: Any) -> None:
    """What docs/scaling.md says of the mock: aborted records it holds reach read_committed
    readers (a real broker hides them). If this starts failing, the mock got better."""
    from confluent_kafka import Consumer, Producer

    producer = Producer({"bootstrap.servers": cluster.bootstrap, "transactional.id": "probe"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce("answers", key=b"k", value=b"aborted", partition=0)
    producer.flush(30)
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce("answers", key=b"k", value=b"committed", partition=0)
    producer.commit_transaction(30)
    consumer = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "group.id": "probe",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe(["answers"])
    seen: list[bytes] = []
    deadline = time.monotonic() + 20
    while b"committed" not in seen and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            seen.append(message.value())
    consumer.close()
    assert seen == [b"aborted", b"committed"]
