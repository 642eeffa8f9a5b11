"""One worker in this process: malformed messages, Arrow batches, metrics, and clear errors for
an unreachable broker, a missing topic and a checkpoint of another model."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from stateline import StatelineError
from stateline.anomaly import DetectorConfig
from stateline.kafka import AnswerReader, Worker, WorkerConfig, encode_event
from stateline.serve import ColumnAnswer, ColumnBatch, batch_to_arrow

from ..serve.conftest import free_port


def _config(cluster: Any, model: Path, folder: Path, **kwargs: Any) -> WorkerConfig:
    settings: dict[str, Any] = {
        "model": str(model),
        "brokers": cluster.bootstrap,
        "input": "events",
        "output": "answers",
        "group": "stateline-unit",
        "checkpoint_dir": str(folder),
        "session_timeout_ms": 3000,
        "poll_ms": 50,
        "detector": DetectorConfig(reference=12, warmup=2),
    }
    return WorkerConfig(**(settings | kwargs))


def _running(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, kwargs={"seconds": 90}, daemon=True)
    thread.start()
    return thread


def _read(cluster: Any, count: int, seconds: float = 60) -> list[Any]:
    answers: list[Any] = []
    deadline = time.monotonic() + seconds
    with AnswerReader(cluster.bootstrap, "answers") as reader:
        while len(answers) < count and time.monotonic() < deadline:
            answers.extend(reader.poll(timeout=0.5))
    return answers


def test_every_message_is_answered_even_malformed_ones_and_metrics_show_them(
    cluster: Any, model_dir: Path, tmp_path: Path
) -> None:
    from confluent_kafka import Producer

    port = free_port()
    worker = Worker(_config(cluster, model_dir, tmp_path / "ck", metrics_port=port))
    thread = _running(worker)
    producer = Producer({"bootstrap.servers": cluster.bootstrap})
    sent: list[tuple[bytes | None, bytes]] = [
        (b"pump-1", encode_event([20.5], seq=0)),
        (b"pump-1", b"{not json"),
        (None, encode_event([20.5])),
        (b"bad/id", encode_event([20.5])),
        (b"pump-2", b'{"values": ["20.5"]}'),
        (b"pump-2", b'{"values": [20.5], "seq": -1}'),
        (b"pump-2", b'{"values": [20.5], "colour": "red"}'),
        (b"pump-2", b'{"values": [20.5], "stream": "pump-3"}'),
        (b"pump-2", b"[1, 2]"),
        (b"pump-1", encode_event([[21.0], [21.5]], seq=1)),  # two steps
    ]
    batch = ColumnBatch.of(
        ["col-1", "col/2", "col-3"], np.array([[1.0], [2.0], [np.nan]]), seq=[0, 0, 0]
    )
    sent.append((b"batch-7", batch_to_arrow(batch)))
    sent.append((b"batch-8", b"\xff\xff\xff\xffnot arrow at all"))
    for key, value in sent:
        producer.produce("events", key=key, value=value, partition=0)  # one partition: in order
    producer.flush(30)
    answers = _read(cluster, len(sent))
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    worker.stop()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert len(answers) == len(sent)
    by_offset = sorted(answers, key=lambda answer: answer.offset)
    json_answers = [a.answer for a in by_offset[:10]]
    assert [a["status"] for a in json_answers] == ["ok"] + ["error"] * 8 + ["ok"]
    reasons = [a["error"] or "" for a in json_answers]
    assert "is not readable" in reasons[1] and "key is missing" in reasons[2]
    assert "not a valid stream id" in reasons[3] and "values are not numbers" in reasons[4]
    assert "seq is invalid" in reasons[5] and "unknown fields" in reasons[6]
    assert "does not match the key" in reasons[7] and "is not an event" in reasons[8]
    assert json_answers[9]["seq"] == 2 and len(json_answers[9]["forecast"]) == 2
    columns = by_offset[10].answer
    assert isinstance(columns, ColumnAnswer)
    assert columns.status_names.tolist() == ["ok", "error", "error"]
    assert set(columns.errors) == {1, 2}
    garbage = by_offset[11].answer
    assert isinstance(garbage, dict) and garbage["status"] == "error"
    assert "value:" in garbage["error"]
    assert "stateline_worker_refused_events_total 9.0" in metrics
    assert 'stateline_worker_partition_streams{partition="0"}' in metrics


def test_an_unreachable_broker_and_a_missing_topic_are_named(
    cluster: Any, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stateline.kafka import _worker

    monkeypatch.setattr(_worker, "CONNECT_TIMEOUT", 2.0)
    nowhere = _config(cluster, model_dir, tmp_path, brokers=f"127.0.0.1:{free_port()}")
    with pytest.raises(StatelineError, match="brokers could not be reached"):
        Worker(nowhere).run(seconds=5)
    missing = _config(cluster, model_dir, tmp_path, input="no-such-topic")
    with pytest.raises(StatelineError, match=r"'no-such-topic'.*\n.*no such topic"):
        Worker(missing).run(seconds=5)


def test_a_checkpoint_of_another_model_stops_the_worker_with_the_reason(
    cluster: Any, model_dir: Path, tmp_path: Path
) -> None:
    from confluent_kafka import Producer

    from stateline.nn import ModelConfig, SequenceModel
    from stateline.stream import StateStore

    other = StateStore(SequenceModel(ModelConfig(inputs=1, hidden=3)))
    for partition in range(6):
        other.snapshot(
            tmp_path / "ck" / f"events-{partition}",
            meta={"topic": "events", "partition": partition, "offset": 0},
        )
    producer = Producer({"bootstrap.servers": cluster.bootstrap})
    producer.produce("events", key=b"pump-1", value=encode_event([20.5], seq=0))
    producer.flush(30)
    worker = Worker(_config(cluster, model_dir, tmp_path / "ck"))
    with pytest.raises(StatelineError, match="does not match the model"):
        worker.run(seconds=30)


def test_a_checkpoint_that_cannot_be_written_stops_the_worker_with_the_reason(
    cluster: Any, model_dir: Path, tmp_path: Path
) -> None:
    from confluent_kafka import Producer

    folder = tmp_path / "ck"
    folder.mkdir()
    for partition in range(6):  # a file where each partition's folder should go
        (folder / f"events-{partition}").write_text("not a folder")
    producer = Producer({"bootstrap.servers": cluster.bootstrap})
    producer.produce("events", key=b"pump-1", value=encode_event([20.5], seq=0))
    producer.flush(30)
    worker = Worker(_config(cluster, model_dir, folder, checkpoint_interval=0.5))
    with pytest.raises(StatelineError, match=r"checkpoint of events\[\d\] to .* failed"):
        worker.run(seconds=60)
    assert "stateline_worker_checkpoint_failures_total 1.0" in worker.metrics.text()


def _arrow(table: Any) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def test_poison_messages_are_answered_and_the_worker_goes_on(
    cluster: Any, model_dir: Path, tmp_path: Path
) -> None:
    """From a review: each of these once stopped every worker that took the partition. Now
    each is answered with an error, and the event after them is stepped as usual."""
    import pyarrow as pa
    from confluent_kafka import Producer

    def values(numbers: list[float], size: int) -> Any:
        return pa.FixedSizeListArray.from_arrays(pa.array(numbers, pa.float64()), size)

    many = pa.table({"stream": ["a"], "values": values([1.0] * 5000, 5000)})
    big = pa.table({"stream": [f"r{i}" for i in range(16)], "values": values([20.0] * 65536, 4096)})
    poison = [
        (b"p1", b'{"values": [1' + b"0" * 400 + b"]}"),  # an int past any float
        (b"b", _arrow(pa.table({"stream": ["a"], "values": values([1.0, 2.0, 3.0], 3)}))),
        (b"b", _arrow(many.replace_schema_metadata({b"steps": b"5000"}))),
        (b"b", _arrow(big.replace_schema_metadata({b"steps": b"4096"}))),  # answer > 1 MB
        (None, b"{not json"),  # no key: answered under the partition's own key
    ]
    producer = Producer({"bootstrap.servers": cluster.bootstrap})
    for key, value in [*poison, (b"p1", encode_event([20.5], seq=0))]:
        producer.produce("events", key=key, value=value, partition=0)
    producer.flush(30)
    worker = Worker(_config(cluster, model_dir, tmp_path / "ck", checkpoint_interval=0.5))
    thread = _running(worker)
    answers = sorted(_read(cluster, len(poison) + 1), key=lambda answer: answer.offset)
    time.sleep(1.0)  # a checkpoint of partition 0, and none of the others (they got nothing)
    metrics = worker.metrics.text()
    worker.stop()
    thread.join(timeout=60)
    assert worker.failure is None and len(answers) == len(poison) + 1
    reasons = [a.answer["error"] for a in answers[:-1]]
    assert all(a.answer["status"] == "error" for a in answers[:-1]), reasons
    assert "values" in reasons[0] and "values" in reasons[1] and "steps" in reasons[2]
    assert "answer is too large" in reasons[3] and answers[4].key == b"events-0"
    assert answers[-1].answer["status"] == "ok"
    assert f"stateline_worker_error_answers_total {float(len(poison))}" in metrics
    age = [
        line for line in metrics.splitlines() if line.startswith("stateline_worker_checkpoint_age")
    ]
    assert age and float(age[0].split()[-1]) < 30, age  # not +Inf for partitions with nothing


def test_what_the_service_refuses_for_a_whole_call_is_one_events_answer(
    cluster: Any, model_dir: Path, tmp_path: Path
) -> None:
    """From a review: an event of more steps than --max-steps (the default --max-event-steps
    is more) and Arrow integers past 2**53 each stopped the worker (every restart again on
    the same message). Each is answered now, and the events around them stepped."""
    import pyarrow as pa
    from confluent_kafka import Producer

    huge = pa.FixedSizeListArray.from_arrays(pa.array([2**62], pa.int64()), 1)
    messages = [
        (b"s1", encode_event([20.0], seq=0)),
        (b"s1", encode_event([[20.0]] * 20, seq=1)),  # 20 steps > --max-steps 10
        (b"s2", encode_event([20.0], seq=0)),
        (b"s3", encode_event([20.0], seq=0)),
        (b"s4", encode_event([20.0], seq=0)),
        (b"i", _arrow(pa.table({"stream": ["i"], "values": huge}))),
        (b"s1", encode_event([20.0], seq=1)),
    ]
    producer = Producer({"bootstrap.servers": cluster.bootstrap})
    for key, value in messages:
        producer.produce("events", key=key, value=value, partition=0)
    producer.flush(30)
    config = _config(cluster, model_dir, tmp_path / "ck", max_steps=10)
    worker = Worker(config)
    thread = _running(worker)
    answers = sorted(_read(cluster, len(messages)), key=lambda answer: answer.offset)
    worker.stop()
    thread.join(timeout=60)
    assert worker.failure is None and len(answers) == len(messages)
    statuses = [answer.answer.get("status") for answer in answers[:5]]
    assert statuses[1] == "error" and "--max-steps 10" in answers[1].answer["error"]
    assert statuses[0] == statuses[2] == statuses[3] == statuses[4] == "ok", statuses
    assert answers[-1].answer["status"] == "ok"  # s1 goes on at seq 1: the 20 steps were not
    metrics = worker.metrics.text()
    assert "stateline_worker_refused_events_total 1.0" in metrics
    assert "stateline_worker_error_answers_total 1.0" in metrics


def test_a_poll_that_fails_half_way_writes_no_checkpoint_on_the_way_out(
    cluster: Any, model_dir: Path, tmp_path: Path
) -> None:
    """From a review: the state had stepped events its offset did not cover yet; leaving the
    group then checkpointed that state with the old offset (the next owner stepped them
    twice). Now a failure leaves no checkpoint behind: the next owner starts from the last
    good one."""
    from confluent_kafka import Producer

    class Breaks(Worker):
        calls = 0

        def _step_events(self, state: Any, messages: list[Any]) -> None:
            super()._step_events(state, messages)
            Breaks.calls += 1
            if Breaks.calls == 2:
                raise RuntimeError("a bug after stepping")

    producer = Producer({"bootstrap.servers": cluster.bootstrap})
    folder = tmp_path / "ck"
    worker = Breaks(_config(cluster, model_dir, folder, checkpoint_interval=600))
    failed: list[BaseException] = []
    thread = threading.Thread(target=lambda: _catch(worker, failed), daemon=True)
    thread.start()
    producer.produce("events", key=b"a", value=encode_event([20.5], seq=0), partition=0)
    producer.flush(30)
    assert len(_read(cluster, 1)) == 1
    for seq in (1, 2):
        producer.produce("events", key=b"a", value=encode_event([21.0], seq=seq), partition=0)
    producer.flush(30)
    thread.join(timeout=60)
    assert failed and "a bug after stepping" in str(failed[0])
    assert worker.failure is not None and not list(folder.glob("*/state.pt"))


def _catch(worker: Worker, failed: list[BaseException]) -> None:
    try:
        worker.run(seconds=60)
    except BaseException as error:
        failed.append(error)


def test_online_learning_per_partition_goes_into_its_checkpoint_and_comes_back(
    cluster: Any, model_dir: Path, tmp_path: Path
) -> None:
    """--online: a partition's model learns from its streams; its weights are checkpointed
    with its state (in its state.pt) and a new owner learns on from them."""
    from confluent_kafka import Producer

    from stateline.online import OnlineConfig

    online = OnlineConfig(update_every=40, min_steps=8, lanes=4, chunk=8, buffer=32, cpu_share=1.0)
    folder = tmp_path / "ck"
    config = _config(cluster, model_dir, folder, checkpoint_interval=0.5, online=online)
    producer = Producer({"bootstrap.servers": cluster.bootstrap})
    streams, steps = 4, 40
    for step in range(steps):
        for stream in range(streams):
            value = encode_event([float(15 + 5 * np.sin(step / 3 + stream))], seq=step)
            producer.produce("events", key=f"s{stream}".encode(), value=value, partition=0)
    producer.flush(30)
    worker = Worker(config)
    thread = _running(worker)
    assert len(_read(cluster, streams * steps)) == streams * steps
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # an update, then a checkpoint holding it
        state = worker.partitions.get(0)
        learner = None if state is None else state.service.learner
        if learner is not None and learner.version > 0 and _learned(folder / "events-0"):
            break
        time.sleep(0.2)
    learned = worker.partitions[0].service.learner
    assert learned is not None and learned.version > 0
    worker.stop()
    thread.join(timeout=60)
    again = Worker(config)  # the next owner: the weights and the state come back together
    thread = _running(again)
    deadline = time.monotonic() + 60
    while 0 not in again.partitions and time.monotonic() < deadline:
        time.sleep(0.1)
    restored = again.partitions[0].service.learner
    assert restored is not None and restored.version == learned.version  # checkpointed on exit
    assert again.partitions[0].streams == streams
    again.stop()
    thread.join(timeout=60)


def _learned(folder: Path) -> int:
    """The online version the checkpoint in ``folder`` holds (0: none yet)."""
    import torch

    path = folder / "state.pt"
    if not path.is_file():
        return 0
    return int(torch.load(path, weights_only=True).get("online", {}).get("version", 0))
