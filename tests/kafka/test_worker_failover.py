"""Three worker processes, six partitions: one is killed (SIGKILL) and one leaves cleanly while
events flow. Every event is answered; after dropping repeats by input position, exactly once;
and every answer equals a single in-process service's on the same events in each stream's order."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

import numpy as np

from stateline.anomaly import DetectorConfig
from stateline.kafka import AnswerReader, encode_event
from stateline.serve import Event, ServeConfig, StreamService

SCRIPT = shutil.which("stateline", path=str(Path(sys.executable).parent))
STREAMS, ROUNDS = 240, 36
REFERENCE, WARMUP = 12, 2


def _worker(cluster: Any, model: Path, checkpoints: Path, log: IO[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(SCRIPT), "worker", "--model", str(model), "--brokers", cluster.bootstrap,
         "--input", "events", "--output", "answers", "--group", "stateline-test",
         "--checkpoint-dir", str(checkpoints), "--session-timeout-ms", "3000",
         "--checkpoint-interval", "3", "--commit-interval", "1.5", "--poll-ms", "50",
         "--reference", str(REFERENCE), "--warmup", str(WARMUP)],
        stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip


def _values(stream: int, step: int) -> list[float]:
    """A daily-ish cycle per stream, with a jump now and then (the detector has work)."""
    value = 15 + 8 * np.sin(2 * np.pi * (step + stream) / 24) + (6 if step % 17 == 5 else 0)
    return [round(float(value), 3)]


def _expected(model: Path, tmp: Path) -> dict[tuple[str, int], dict[str, Any]]:
    service = StreamService(
        ServeConfig(
            model=str(model),
            snapshot_dir=str(tmp / "offline"),
            detector=DetectorConfig(reference=REFERENCE, warmup=WARMUP),
        )
    )
    answers = {}
    for step in range(ROUNDS):
        events = [Event(f"s{s}", _values(s, step), seq=step) for s in range(STREAMS)]
        for answer in service.step(events):
            answers[(answer["stream"], answer["seq"])] = answer
    return answers


def test_a_killed_and_a_leaving_worker_lose_and_double_nothing(
    cluster: Any, model_dir: Path, tmp_path: Path
) -> None:
    from confluent_kafka import Producer

    checkpoints = tmp_path / "checkpoints"
    logs = [tmp_path / f"worker-{i}.log" for i in range(3)]
    files = contextlib.ExitStack()
    workers = [
        _worker(cluster, model_dir, checkpoints, files.enter_context(log.open("w"))) for log in logs
    ]
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "linger.ms": 5})
    expected_count = STREAMS * ROUNDS
    unique: dict[tuple[str, int], dict[str, Any]] = {}
    per_stream_seqs: Counter[str] = Counter()

    def read(reader: AnswerReader, until: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and (until == 0 or len(unique) < until):
            for answer in reader.poll(timeout=0.2):
                content = answer.answer
                assert isinstance(content, dict)
                key = (content["stream"], content["seq"])
                assert key not in unique, f"{key} answered twice after dropping repeats"
                unique[key] = content
                per_stream_seqs[content["stream"]] += 1

    try:
        with AnswerReader(cluster.bootstrap, "answers") as reader:
            for step in range(ROUNDS):
                for s in range(STREAMS):
                    value = encode_event(_values(s, step), seq=step)
                    producer.produce("events", key=f"s{s}", value=value)
                producer.flush(30)
                if step == 0:  # the workers are up and answering
                    read(reader, STREAMS, 90)
                elif step == 14:
                    workers[0].send_signal(signal.SIGKILL)  # mid-stream: no checkpoint, no revoke
                elif step == 26:
                    workers[1].send_signal(signal.SIGTERM)  # a clean leave: checkpoint, revoke
                read(reader, 0, 0.25)  # the events flow while answers come back
            read(reader, expected_count, 120)
            repeats = reader.repeats.dropped
        assert workers[1].wait(timeout=60) == 0, logs[1].read_text()[-3000:]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)
        files.close()
    logs_text = "\n".join(log.read_text()[-2000:] for log in logs)
    assert len(unique) == expected_count, (len(unique), logs_text)
    assert workers[2].returncode == 0, logs_text
    print(f"\n{repeats} repeated answers dropped (the kill's cost); {len(unique)} unique answers")
    expected = _expected(model_dir, tmp_path)
    for key, want in expected.items():
        got = unique[key]
        assert got["status"] == want["status"] == "ok", (key, got, want)
        for field in ("forecast", "scores", "anomaly_scores"):
            np.testing.assert_allclose(
                np.array(got[field], dtype=float),
                np.array(want[field], dtype=float),
                rtol=1e-4,
                atol=1e-6,
                err_msg=f"{key} {field}",
            )
    assert json.dumps(sorted(set(per_stream_seqs.values()))) == json.dumps([ROUNDS])
