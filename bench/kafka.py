"""Scale-out on Kafka: `stateline worker` throughput, failover time and checkpoint cost.

Everything runs on librdkafka's mock Kafka cluster (``stateline.kafka.MockCluster``),
started inside this process and reached by the workers on 127.0.0.1. A small
forecaster is trained on the bundled temperatures (``train_model`` of bench/serve.py).

1. Throughput. ``--streams`` streams x ``--rounds`` rounds of JSON events with
   seq (round r: seq r), keyed by stream id, go to a topic of ``--partitions``
   partitions, through 1 and then 2 `stateline worker` processes (a fresh
   cluster, group and checkpoint folder each). Once the group has settled
   (every partition taken, per the workers' logs) and a warm-up event per
   partition has been answered, every event is produced as fast as the
   producer goes, and the clock runs from the first produce to the last
   answer read back by an ``AnswerReader`` (repeats dropped by input
   position). Every event must get exactly one answer, ``ok``, with the
   forecast of the in-process peer. The peers, on the same events in the
   same process (1 compute thread, as each worker has): one ``StreamService``
   configured as a worker's partition state (same ``--reference``/``--warmup``)
   stepping each round with ``service.step`` (a list of ``Event``), and the
   bare engine (``StreamEngine.step`` on already scaled values, no detector).
   Events/s and the ratio worker / in-process service are printed.
2. Failover. Two workers, events produced at ``--kill-rate`` events/s
   (default: a third of the 1-worker rate just measured, lowered to what the
   mock's partitions hold); after ``--before-kill`` seconds one worker is
   SIGKILLed (``--checkpoint-interval`` is 3 s here, not the worker's 10, so
   that it has a checkpoint by then). Measured: the time from the kill until the
   survivor logs taking the dead worker's partitions, and until the first
   answer to an event produced after the kill arrives from those partitions
   (``Answer.partition``; for the first of them and for all of them). It
   includes ``--session-timeout-ms`` (the group notices the death), the
   rebalance, the restore of the checkpoint, the replay of the events after
   it (stepped, not answered), and the backlog. Every event must again be
   answered exactly once after dropping repeats.
3. Checkpoint cost. One partition's state (``PartitionState`` with a default
   ``WorkerConfig``) holding ``--checkpoint-streams`` streams (stepped once
   with ``step_columns``, in calls of at most ``max_events`` rows), written
   ``--checkpoint-repeats`` times (``state.pt``: every carry, seq and
   detector column, and the input offset; fsynced to the local disk), then
   restored as a new owner would (the time of a new ``PartitionState`` less
   that of one with no checkpoint, which is the model's load). Size, write
   and restore time are scaled per 100,000 streams.

What the mock cannot show is printed at the end. The bench exits non-zero if
an event is lost, answered twice (after dropping repeats), answered other than
``ok`` or differently from the in-process peer, or if the killed worker's
partitions are not served again.

Run: .venv/bin/python bench/kafka.py [--streams 500] [--rounds 60] [--partitions 6]
     [--session-timeout-ms 3000] [--checkpoint-streams 100000] [--skip-kill]
     [--skip-checkpoint]
The brokers, the workers, the producer and the answer reader share the
machine's cores (2 here): the rates are a floor, not what a cluster gives.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from rich.console import Console
from rich.table import Table

from serve import train_model  # bench/serve.py: bench/ is on sys.path when run as a script
from stateline.anomaly import DetectorConfig
from stateline.cli._serve import limit_threads
from stateline.kafka import Answer, AnswerReader, MockCluster, WorkerConfig, encode_event
from stateline.kafka._partition import PartitionState
from stateline.serve import ColumnBatch, Event, ServeConfig, StreamService
from stateline.stream._grouping import id_array

SCRIPT = shutil.which("stateline", path=str(Path(sys.executable).parent))
INPUT, OUTPUT, GROUP = "events", "answers", "stateline-bench"
MOCK_PARTITION_BYTES = 5 * 1024 * 1024  # the mock drops a partition's oldest messages past this
ANSWER_BYTES = 400  # about one answer on the topic (JSON, key, headers): for the memory budget
BUDGET = 0.6  # the share of a mock partition a run may fill (keys do not hash evenly)
WARM_PER_PARTITION = 2
START_TIMEOUT = 120.0  # workers up, group settled, warm-up answered
ANSWER_TIMEOUT = 120.0  # every answer read back after the last produce
STAMP = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+ \w+ "
TOOK = re.compile(
    STAMP + rf"took {INPUT}\[(\d+)\]: (\d+) streams from its checkpoint at offset (\S+)$", re.M
)
ANSWERS_FROM = re.compile(STAMP + rf"{INPUT}\[(\d+)\]: answers from offset (\d+) on", re.M)


def log_time(text: str) -> float:
    """A worker log line's time (logging's asctime, local) as time.time()."""
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def event_values(streams: int, rounds: int, inputs: int) -> np.ndarray:
    """(rounds, streams, inputs): a daily-ish cycle per stream, a jump now and then."""
    step = np.arange(rounds)[:, None, None]
    stream = np.arange(streams)[None, :, None]
    lane = np.arange(inputs)[None, None, :]
    cycle = 15 + 8 * np.sin(2 * np.pi * (step + stream + lane) / 24)
    return np.round(cycle + np.where(step % 17 == 5, 6.0, 0.0), 3)


def worker_like(model: Path, folder: Path, detector: DetectorConfig) -> ServeConfig:
    """The service a worker's partition state runs (no dashboard history), for the peers."""
    return ServeConfig(
        model=str(model),
        snapshot_dir=str(folder),
        history=1,
        history_streams=1,
        detector=detector,
    )


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def in_process(
    model: Path, folder: Path, detector: DetectorConfig, names: list[str], values: np.ndarray
) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, int], np.ndarray]]:
    """The peers on the same events: service.step per round, and the bare engine.

    Returns their rows and the service's forecast per (stream, seq), which the
    workers' answers must match.
    """
    rounds, streams, _ = values.shape
    service = StreamService(worker_like(model, folder / "peer-service", detector))
    bare = StreamService(worker_like(model, folder / "peer-engine", detector))
    warm = min(streams, 64)  # first calls pay for lazy set-up: on streams of their own
    service.step([Event(f"warm-{i}", values[0, i].tolist(), seq=0) for i in range(warm)])
    scaled = bare.served.scale(values).astype(np.float32)
    bare.engine.step(
        id_array([f"warm-{i}" for i in range(warm)]), scaled[0, :warm], seq=np.zeros(warm)
    )
    rows = [
        [Event(name, row, seq=r) for name, row in zip(names, values[r].tolist(), strict=True)]
        for r in range(rounds)
    ]
    forecasts: dict[tuple[str, int], np.ndarray] = {}
    not_ok = 0
    spent = 0.0
    for events in rows:
        for chunk in chunks(events, service.config.max_events):
            started = time.perf_counter()
            answers = service.step(chunk)
            spent += time.perf_counter() - started
            for answer in answers:
                not_ok += answer["status"] != "ok"
                forecasts[(answer["stream"], answer["seq"])] = np.ravel(
                    np.asarray(answer["forecast"], dtype=float)
                )
    ids = id_array(names)
    engine_spent = 0.0
    engine_not_ok = 0
    for r in range(rounds):
        seq = np.full(streams, r, dtype=np.int64)
        started = time.perf_counter()
        result = bare.engine.step(ids, scaled[r], seq=seq)
        engine_spent += time.perf_counter() - started
        engine_not_ok += int((np.asarray(result.status) != "ok").sum())
    events = rounds * streams
    return {
        "engine": {"events": events, "seconds": engine_spent, "not_ok": engine_not_ok},
        "service": {"events": events, "seconds": spent, "not_ok": not_ok},
    }, forecasts


class Workers:
    """`stateline worker` processes of one group, their logs, and who took which partition."""

    def __init__(
        self, count: int, bootstrap: str, model: Path, folder: Path, args: argparse.Namespace
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.logs = [folder / f"worker-{i}.log" for i in range(count)]
        self.killed: set[int] = set()
        self._files: list[IO[str]] = [log.open("w") for log in self.logs]
        command = [
            str(SCRIPT), "worker", "--model", str(model), "--brokers", bootstrap,
            "--input", INPUT, "--output", OUTPUT, "--group", GROUP,
            "--checkpoint-dir", str(folder / "checkpoints"),
            "--session-timeout-ms", str(args.session_timeout_ms),
            "--checkpoint-interval", str(args.checkpoint_interval),
            "--commit-interval", str(args.commit_interval),
            "--poll-ms", str(args.poll_ms), "--max-poll", str(args.max_poll),
            "--reference", str(args.reference), "--warmup", str(args.warmup),
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1", "STATELINE_LOG": "INFO"}
        self.procs = [
            subprocess.Popen(command, stdout=file, stderr=subprocess.STDOUT, env=env)
            for file in self._files
        ]

    def text(self, worker: int) -> str:
        self._files[worker].flush()
        return self.logs[worker].read_text(errors="replace")

    def tails(self, chars: int = 1500) -> str:
        return "\n".join(
            f"--- worker {i} (exit {p.poll()}):\n{self.text(i)[-chars:]}"
            for i, p in enumerate(self.procs)
        )

    def takes(self, worker: int) -> list[tuple[float, int, int, str]]:
        """(time, partition, streams restored, checkpoint offset) per partition it took."""
        return [
            (log_time(stamp), int(partition), int(streams), offset)
            for stamp, partition, streams, offset in TOOK.findall(self.text(worker))
        ]

    def owners(self) -> dict[int, int]:
        """partition -> the worker that took it last (revokes are not logged; takes are)."""
        latest: dict[int, tuple[float, int]] = {}
        for worker in range(len(self.procs)):
            for at, partition, _, _ in self.takes(worker):
                if partition not in latest or at >= latest[partition][0]:
                    latest[partition] = (at, worker)
        return {partition: worker for partition, (_, worker) in latest.items()}

    def check(self) -> None:
        """Raise if a worker not killed here has exited."""
        for i, proc in enumerate(self.procs):
            if i not in self.killed and proc.poll() is not None:
                raise RuntimeError(f"worker {i} exited ({proc.returncode}):\n{self.tails()}")

    def wait_settled(self, partitions: int, deadline: float) -> dict[int, int]:
        """Until every partition is held and every live worker holds some."""
        live = set(range(len(self.procs))) - self.killed
        while True:
            self.check()
            owners = self.owners()
            if set(owners) == set(range(partitions)) and set(owners.values()) == live:
                return owners
            if time.monotonic() > deadline:
                raise RuntimeError(f"the group did not settle ({owners}):\n{self.tails()}")
            time.sleep(0.2)

    def kill(self, worker: int) -> None:
        self.killed.add(worker)
        self.procs[worker].send_signal(signal.SIGKILL)

    def stop(self) -> list[int | None]:
        """SIGTERM the live ones (checkpoint, leave the group), then wait; kill the stuck."""
        for i, proc in enumerate(self.procs):
            if proc.poll() is None and i not in self.killed:
                proc.terminate()
        codes = []
        for proc in self.procs:
            try:
                codes.append(proc.wait(timeout=60))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
                codes.append(None)
        for file in self._files:
            file.close()
        return codes


@dataclass
class Tally:
    """Unique answers by (stream, seq), and what is wrong with them."""

    index: dict[str, int]  # the measured streams (warm-up ones are left out)
    expected: dict[tuple[str, int], np.ndarray] | None = None
    unique: set[tuple[str, int]] = field(default_factory=set)
    twice: int = 0
    not_ok: int = 0
    mismatched: int = 0
    last_at: float = 0.0

    def add(self, answer: Answer, now: float) -> tuple[str, int] | None:
        """Count one answer; its (stream, seq) if it is new and one of the measured streams."""
        content = answer.answer
        if not isinstance(content, dict) or content.get("stream") not in self.index:
            return None
        key = (content["stream"], content["seq"])
        if key in self.unique:
            self.twice += 1
            return None
        self.unique.add(key)
        self.last_at = now
        if content["status"] != "ok":
            self.not_ok += 1
        elif self.expected is not None:
            got = np.ravel(np.asarray(content["forecast"], dtype=float))
            want = self.expected.get(key)
            if want is None or not np.allclose(got, want, rtol=1e-4, atol=1e-4):
                self.mismatched += 1
        return key


def produce(producer: Any, key: bytes, value: bytes, partition: int | None = None) -> None:
    deadline = time.monotonic() + 60
    where = {} if partition is None else {"partition": partition}
    while True:
        try:
            producer.produce(INPUT, key=key, value=value, **where)
            return
        except BufferError:  # the local queue is full: let it drain
            if time.monotonic() > deadline:
                raise RuntimeError("the producer's queue stayed full for 60 s") from None
            producer.poll(0.05)


def warm_up(
    producer: Any, reader: AnswerReader, workers: Workers, partitions: int, inputs: int
) -> None:
    """An event on streams of their own in every partition, answered: workers and reader ready."""
    wanted = set()
    for partition in range(partitions):
        for j in range(WARM_PER_PARTITION):
            key = f"warm-{partition}-{j}"
            produce(producer, key.encode(), encode_event([15.0] * inputs, seq=0), partition)
            wanted.add(key)
    producer.flush(30)
    deadline = time.monotonic() + START_TIMEOUT
    while wanted:
        for answer in reader.poll(timeout=0.1):
            if isinstance(answer.answer, dict):
                wanted.discard(answer.answer.get("stream"))
        workers.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"warm-up answers missing: {sorted(wanted)}\n{workers.tails()}")


@dataclass
class Run:
    """A fresh mock cluster's settled workers, a producer and an answer reader."""

    workers: Workers
    producer: Any = None
    reader: Any = None
    owners: dict[int, int] = field(default_factory=dict)


@contextlib.contextmanager
def kafka_run(count: int, model: Path, folder: Path, args: argparse.Namespace, inputs: int) -> Any:
    """A fresh mock cluster, ``count`` settled and warmed-up workers, a producer and a reader."""
    from confluent_kafka import Producer

    topics = {INPUT: args.partitions, OUTPUT: args.partitions}
    with MockCluster(brokers=args.brokers, topics=topics) as cluster:
        run = Run(Workers(count, cluster.bootstrap, model, folder, args))
        try:
            run.producer = Producer({"bootstrap.servers": cluster.bootstrap, "linger.ms": 5})
            run.reader = AnswerReader(cluster.bootstrap, OUTPUT)
            run.owners = run.workers.wait_settled(args.partitions, time.monotonic() + START_TIMEOUT)
            warm_up(run.producer, run.reader, run.workers, args.partitions, inputs)
            yield run
        finally:
            if run.reader is not None:
                run.reader.close()
            if run.producer is not None:
                run.producer.flush(10)
            run.producer = run.reader = None  # gone before the brokers are
            run.workers.stop()


def read_until(
    reader: AnswerReader, tally: Tally, count: int, workers: Workers, seconds: float
) -> None:
    """Read answers until ``count`` unique ones (or ``seconds``), then 0.5 s more for doubles."""
    deadline = time.monotonic() + seconds
    while len(tally.unique) < count and time.monotonic() < deadline:
        answers = reader.poll(timeout=0.05, limit=2000)
        now = time.perf_counter()
        for answer in answers:
            tally.add(answer, now)
        workers.check()
    grace = time.monotonic() + 0.5
    while time.monotonic() < grace:
        for answer in reader.poll(timeout=0.1, limit=2000):
            tally.add(answer, time.perf_counter())


def through_workers(
    count: int,
    model: Path,
    folder: Path,
    args: argparse.Namespace,
    names: list[str],
    values: np.ndarray,
    expected: dict[tuple[str, int], np.ndarray],
) -> dict[str, Any]:
    rounds, streams, inputs = values.shape
    messages = [
        (names[s].encode(), encode_event(values[r, s].tolist(), seq=r))
        for r in range(rounds)
        for s in range(streams)
    ]
    tally = Tally({name: i for i, name in enumerate(names)}, expected)
    with kafka_run(count, model, folder, args, inputs) as run:
        dropped = run.reader.repeats.dropped
        started = time.perf_counter()
        for key, value in messages:
            produce(run.producer, key, value)
        run.producer.flush(60)
        produced = time.perf_counter() - started
        read_until(run.reader, tally, len(messages), run.workers, ANSWER_TIMEOUT)
        repeats = run.reader.repeats.dropped - dropped
    return {
        "events": len(messages),
        "seconds": tally.last_at - started if tally.unique else float("nan"),
        "produced_s": produced,
        "unique": len(tally.unique),
        "repeats": repeats,
        "lost": len(messages) - len(tally.unique),
        "twice": tally.twice,
        "not_ok": tally.not_ok,
        "mismatched": tally.mismatched,
    }


def failover_cap(args: argparse.Namespace) -> int:
    """The most events the failover run may produce (what the mock's partitions hold)."""
    return int(BUDGET * MOCK_PARTITION_BYTES * args.partitions / ANSWER_BYTES)


def failover(
    model: Path, folder: Path, args: argparse.Namespace, rate: float, inputs: int
) -> dict[str, Any]:
    """Two workers, events at ``rate``/s; one SIGKILLed; until its partitions answer again."""
    streams = args.streams
    names = [f"s{i}" for i in range(streams)]
    cap = failover_cap(args)
    tally = Tally({name: i for i, name in enumerate(names)})
    victim = 0
    timeout_s = args.session_timeout_ms / 1000
    with kafka_run(2, model, folder, args, inputs) as run:
        victims = sorted(p for p, w in run.owners.items() if w == victim)
        dropped = run.reader.repeats.dropped
        sent = 0
        kill_index: int | None = None
        killed_at = kill_wall = 0.0
        resumed: dict[int, float] = {}  # victim partition -> s from the kill to its first answer
        before = 0  # answers from the victim's partitions before the kill
        started = time.perf_counter()
        hard_stop = started + args.before_kill + timeout_s + 60
        stop_at: float | None = None
        while True:
            now = time.perf_counter()
            due = min(int((now - started) * rate), cap)
            while sent < due:
                step, stream = divmod(sent, streams)
                value = encode_event(
                    [round(15 + 8 * float(np.sin(2 * np.pi * (step + stream) / 24)), 3)] * inputs,
                    seq=step,
                )
                produce(run.producer, names[stream].encode(), value)
                sent += 1
            run.producer.poll(0)
            answers = run.reader.poll(timeout=0.02, limit=2000)
            now = time.perf_counter()
            for answer in answers:
                key = tally.add(answer, now)
                if key is None or answer.partition not in victims:
                    continue
                if kill_index is None:
                    before += 1
                elif (
                    key[1] * streams + tally.index[key[0]] >= kill_index
                    and answer.partition not in resumed
                ):
                    resumed[answer.partition] = now - killed_at
            if kill_index is None and now - started >= args.before_kill:
                if before == 0:
                    raise RuntimeError(
                        f"no answers from partitions {victims} before the kill:\n"
                        + run.workers.tails()
                    )
                kill_index, kill_wall, killed_at = sent, time.time(), time.perf_counter()
                run.workers.kill(victim)
            if stop_at is None and len(resumed) == len(victims):
                stop_at = now + 1.0
            if (stop_at is not None and now >= stop_at) or now > hard_stop:
                break
            if sent >= cap and kill_index is not None and sent == kill_index:
                break  # the budget ran out before the kill: nothing to measure with
            run.workers.check()
        run.producer.flush(60)
        read_until(run.reader, tally, sent, run.workers, ANSWER_TIMEOUT)
        repeats = run.reader.repeats.dropped - dropped
        survivor = 1 - victim
        taken = [t for t in run.workers.takes(survivor) if t[0] >= kill_wall and t[1] in victims]
        text = run.workers.text(survivor)
        answers_from = {
            int(p): int(o)
            for stamp, p, o in ANSWERS_FROM.findall(text)
            if log_time(stamp) >= kill_wall and int(p) in victims
        }
    checkpoints = {p: (None if o == "None" else int(o)) for _, p, _, o in taken}
    replayed = sum(answers_from.get(p, 0) - (checkpoints.get(p) or 0) for p in checkpoints)
    return {
        "victims": victims,
        "taken_s": max((t[0] for t in taken), default=float("nan")) - kill_wall
        if len({t[1] for t in taken}) == len(victims)
        else None,
        "first_s": min(resumed.values()) if resumed else None,
        "all_s": max(resumed.values()) if len(resumed) == len(victims) else None,
        "checkpoints": checkpoints,
        "replayed": replayed,
        "events": sent,
        "capped": sent >= cap,
        "rate": rate,
        "repeats": repeats,
        "lost": sent - len(tally.unique),
        "twice": tally.twice,
        "not_ok": tally.not_ok,
    }


def checkpoint_cost(
    model: Path, folder: Path, detector: DetectorConfig, streams: int, repeats: int, inputs: int
) -> dict[str, Any]:
    """One partition's state with ``streams`` streams: write its checkpoint, restore it."""
    config = WorkerConfig(
        model=str(model),
        brokers="unused:9092",
        input=INPUT,
        output=OUTPUT,
        group=GROUP,
        checkpoint_dir=str(folder),
        detector=detector,
    )
    state = PartitionState(config, INPUT, 0)
    service = state.service
    ids = id_array([f"s{i}" for i in range(streams)])
    values = event_values(streams, 1, inputs)[0]
    rows = service.config.max_events
    started = time.perf_counter()
    for start in range(0, streams, rows):
        end = min(streams, start + rows)
        batch = ColumnBatch.of(
            ids[start:end], values[start:end], seq=np.zeros(end - start, dtype=np.int64)
        )
        answer = service.step_columns(batch)
        if not (np.asarray(answer.status_names) == "ok").all():
            raise RuntimeError(f"stepping the streams: {list(answer.errors.values())[:1]}")
    step_s = time.perf_counter() - started
    state.next_offset = streams
    writes = []
    path = None
    for _ in range(repeats):
        started = time.perf_counter()
        path = state.checkpoint()
        writes.append(time.perf_counter() - started)
    assert path is not None
    size = path.stat().st_size
    del state, service
    started = time.perf_counter()
    PartitionState(config, INPUT, 1)  # no checkpoint there: what a new owner pays for the model
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    restored = PartitionState(config, INPUT, 0)
    restore_s = time.perf_counter() - started - load_s
    if restored.streams != streams or restored.checkpoint_offset != streams:
        raise RuntimeError(
            f"restored {restored.streams} streams at offset {restored.checkpoint_offset}, "
            f"expected {streams} at {streams}"
        )
    return {
        "streams": streams,
        "rows": rows,
        "step_s": step_s,
        "mb": size / 1e6,
        "write_s": statistics.median(writes),
        "writes": writes,
        "restore_s": restore_s,
        "load_s": load_s,
    }


def fmt_s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}"


def main_bench() -> None:
    parser = argparse.ArgumentParser(
        description="stateline worker on librdkafka's mock Kafka cluster: throughput, "
        "failover time and checkpoint cost"
    )
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=60, help="events per stream")
    parser.add_argument("--partitions", type=int, default=6, help="of the input and output topics")
    parser.add_argument("--brokers", type=int, default=3, help="mock brokers")
    parser.add_argument("--reference", type=int, default=50, help="the detector's --reference")
    parser.add_argument("--warmup", type=int, default=5, help="the detector's --warmup")
    parser.add_argument("--session-timeout-ms", type=int, default=3000)
    parser.add_argument(
        "--checkpoint-interval",
        type=float,
        default=3.0,
        help="seconds (the worker's default is 10; 3 gives the killed worker a checkpoint)",
    )
    parser.add_argument("--commit-interval", type=float, default=1.0, help="seconds")
    parser.add_argument("--poll-ms", type=int, default=100)
    parser.add_argument("--max-poll", type=int, default=1000)
    parser.add_argument(
        "--kill-rate",
        type=float,
        default=0.0,
        help="events/s produced in the failover run (0: a third of the 1-worker rate measured, "
        "at most what the mock holds)",
    )
    parser.add_argument(
        "--before-kill", type=float, default=5.0, help="seconds of events before the kill"
    )
    parser.add_argument("--checkpoint-streams", type=int, default=100_000)
    parser.add_argument("--checkpoint-repeats", type=int, default=3)
    parser.add_argument("--skip-kill", action="store_true")
    parser.add_argument("--skip-checkpoint", action="store_true")
    parser.add_argument(
        "--keep", action="store_true", help="keep the run's folder (worker logs, checkpoints)"
    )
    args = parser.parse_args()
    for name in ("streams", "rounds", "partitions", "brokers", "checkpoint_streams"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    per_partition = args.streams * args.rounds * ANSWER_BYTES / args.partitions
    if per_partition > BUDGET * MOCK_PARTITION_BYTES:
        parser.error(
            f"--streams x --rounds: about {per_partition / 1e6:.1f} MB of answers per partition; "
            f"the mock keeps {MOCK_PARTITION_BYTES / 2**20:.0f} MiB a partition (older messages "
            f"are dropped): stay under {BUDGET * MOCK_PARTITION_BYTES / 1e6:.1f} MB, or add "
            "--partitions"
        )
    console = Console(width=180)
    threads = limit_threads(1)  # the peers get what each worker has
    folder = Path(tempfile.mkdtemp(prefix="stateline-bench-kafka-"))
    detector = DetectorConfig(reference=args.reference, warmup=args.warmup)
    phases: dict[str, float] = {}
    clock = time.perf_counter()
    model = train_model(folder)
    phases["train"] = time.perf_counter() - clock

    clock = time.perf_counter()
    inputs = StreamService(worker_like(model, folder / "probe", detector)).served.inputs
    names = [f"s{i}" for i in range(args.streams)]
    values = event_values(args.streams, args.rounds, inputs)
    local, expected = in_process(model, folder, detector, names, values)
    phases["in-process"] = time.perf_counter() - clock

    runs: dict[int, dict[str, Any]] = {}
    for count in (1, 2):
        clock = time.perf_counter()
        runs[count] = through_workers(
            count, model, folder / f"workers-{count}", args, names, values, expected
        )
        phases[f"{count} worker(s)"] = time.perf_counter() - clock

    kill: dict[str, Any] | None = None
    if not args.skip_kill:
        clock = time.perf_counter()
        seconds = runs[1]["seconds"]
        rate = args.kill_rate or min(
            runs[1]["events"] / seconds / 3 if seconds > 0 else 1000.0,
            failover_cap(args) / (args.before_kill + args.session_timeout_ms / 1000 + 10),
        )
        kill = failover(model, folder / "failover", args, rate, inputs)
        phases["failover"] = time.perf_counter() - clock

    cost: dict[str, Any] | None = None
    if not args.skip_checkpoint:
        clock = time.perf_counter()
        cost = checkpoint_cost(
            model,
            folder / "checkpoint",
            detector,
            args.checkpoint_streams,
            args.checkpoint_repeats,
            inputs,
        )
        phases["checkpoint"] = time.perf_counter() - clock

    # ------------------------------------------------------------------ tables
    service_rate = local["service"]["events"] / local["service"]["seconds"]
    table = Table(
        title=f"stateline worker on the mock cluster ({args.brokers} brokers, "
        f"{args.partitions} partitions): {args.streams:,} streams x {args.rounds} rounds = "
        f"{args.streams * args.rounds:,} JSON events, {os.cpu_count()} cores"
    )
    for column in ("run", "events", "seconds", "events/s", "vs in-process service",
                   "unique answers", "repeats dropped", "lost", "answered twice", "not ok",
                   "!= in-process"):  # fmt: skip
        table.add_column(column, justify="left" if column == "run" else "right")
    labels = {
        "engine": "in-process engine, no detector",
        "service": "in-process StreamService.step",
    }
    for mode, label in labels.items():
        row = local[mode]
        rate = row["events"] / row["seconds"]
        table.add_row(
            label, f"{row['events']:,}", f"{row['seconds']:.2f}", f"{rate:,.0f}",
            f"{rate / service_rate:.2f}x", "", "", "", "", str(row["not_ok"]), "",
        )  # fmt: skip
    for count, row in runs.items():
        rate = row["events"] / row["seconds"] if row["seconds"] > 0 else 0.0
        table.add_row(
            f"{count} stateline worker{'s' if count > 1 else ''}",
            f"{row['events']:,}", f"{row['seconds']:.2f}", f"{rate:,.0f}",
            f"{rate / service_rate:.2f}x", f"{row['unique']:,}", f"{row['repeats']:,}",
            str(row["lost"]), str(row["twice"]), str(row["not_ok"]), str(row["mismatched"]),
        )  # fmt: skip
    console.print(table)
    rate1, rate2 = (runs[n]["events"] / runs[n]["seconds"] for n in (1, 2))
    console.print(
        "workers: from the first event produced to the last answer read back; in-process: the "
        "step calls only, one per round (the engine on values scaled beforehand)"
    )
    console.print(
        f"2 workers / 1 worker: {rate2 / rate1:.2f}x; producing all events took "
        f"{runs[1]['produced_s']:.2f} s (1 worker run), {runs[2]['produced_s']:.2f} s (2); "
        f"workers: 1 compute thread each, --poll-ms {args.poll_ms}, --max-poll {args.max_poll}, "
        f"--commit-interval {args.commit_interval:g}, --checkpoint-interval "
        f"{args.checkpoint_interval:g}; peers: {threads} compute thread, this process; "
        f"detector --reference {args.reference} --warmup {args.warmup} everywhere"
    )

    if kill is not None:
        table = Table(title="failover: 2 workers, one SIGKILLed while events flow")
        table.add_column("measure")
        table.add_column("value", justify="right")
        rows = {
            "--session-timeout-ms": f"{args.session_timeout_ms:,}",
            "events/s produced": f"{kill['rate']:,.0f}",
            "the killed worker's partitions": ", ".join(map(str, kill["victims"])),
            "kill -> all taken over (survivor's log), s": fmt_s(kill["taken_s"]),
            "kill -> first answer to a new event from them, s": fmt_s(kill["first_s"]),
            "kill -> every one of them answering new events, s": fmt_s(kill["all_s"]),
            "events replayed by the survivor (stepped, not answered)": f"{kill['replayed']:,}",
            "events produced": f"{kill['events']:,}",
            "repeated answers dropped": f"{kill['repeats']:,}",
            "lost": str(kill["lost"]),
            "answered twice (after dropping repeats)": str(kill["twice"]),
            "not ok": str(kill["not_ok"]),
        }
        for name, value in rows.items():
            table.add_row(name, value)
        console.print(table)
        console.print(
            f"killed after {args.before_kill:g} s of events; a new event: one produced after the "
            "kill; the survivor restored "
            "checkpoints at offsets "
            + ", ".join(f"[{p}] {o}" for p, o in sorted(kill["checkpoints"].items()))
            + (
                " (None: no checkpoint yet, replayed from the start)"
                if None in kill["checkpoints"].values()
                else ""
            )
            + ("; the event budget of the mock ran out" if kill["capped"] else "")
        )

    if cost is not None:
        scale = 100_000 / cost["streams"]
        table = Table(title="checkpoint of one partition's state (state.pt, local disk, fsynced)")
        for column in ("streams", "stepping once s", "state.pt MB", "write s (median)",
                       "restore s", "MB / 100k streams", "write s / 100k",
                       "restore s / 100k"):  # fmt: skip
            table.add_column(column, justify="right")
        table.add_row(
            f"{cost['streams']:,}", f"{cost['step_s']:.2f}", f"{cost['mb']:.1f}",
            f"{cost['write_s']:.3f}", f"{cost['restore_s']:.3f}", f"{cost['mb'] * scale:.1f}",
            f"{cost['write_s'] * scale:.3f}", f"{cost['restore_s'] * scale:.3f}",
        )  # fmt: skip
        console.print(table)
        console.print(
            f"stepped with step_columns in calls of {cost['rows']:,} rows "
            "(the worker's max_events); "
            f"writes: {', '.join(f'{w:.3f}' for w in cost['writes'])} s; restore: a new "
            f"PartitionState reading it back, less one made where there is no checkpoint "
            f"({cost['load_s']:.3f} s: the model's load); --reference {args.reference}"
        )
    console.print(
        "wall time: " + ", ".join(f"{name} {spent:.0f} s" for name, spent in phases.items())
    )
    console.print(
        "What the mock cannot show: it is librdkafka's mock cluster, in-memory brokers inside "
        "this bench's own process on loopback. No disk (no log segments, no fsync), no "
        "replication (an acknowledged write waits for no follower), no network (no latency, "
        f"bandwidth or loss), and it keeps about {MOCK_PARTITION_BYTES / 2**20:.0f} MiB a "
        "partition (older messages are dropped), so runs stay small. Throughput is bounded by "
        f"the {os.cpu_count()} cores shared by the brokers, the workers, the producer and the "
        "answer reader (this process decodes every answer): on a real cluster the brokers and "
        "clients run elsewhere, and the network and the brokers' disks add their latency. The "
        "failover time is the mock coordinator's view of --session-timeout-ms and the rebalance "
        "on an idle loopback; checkpoints go to the local disk here, not the shared storage "
        "(NFS, EFS, ...) a real --checkpoint-dir needs."
    )

    failed = False
    for count, row in runs.items():
        if row["lost"] or row["twice"] or row["not_ok"] or row["mismatched"]:
            failed = True
            console.print(
                f"[red]FAILED[/red] {count} worker(s): {row['lost']} lost, {row['twice']} "
                f"answered twice, {row['not_ok']} not ok, {row['mismatched']} != in-process"
            )
    if kill is not None:
        if kill["lost"] or kill["twice"] or kill["not_ok"]:
            failed = True
            console.print(
                f"[red]FAILED[/red] failover: {kill['lost']} lost, {kill['twice']} answered "
                f"twice, {kill['not_ok']} not ok"
            )
        if kill["all_s"] is None:
            failed = True
            console.print("[red]FAILED[/red] failover: the killed worker's partitions did not "
                          "all answer new events again")  # fmt: skip
    if local["service"]["not_ok"] or local["engine"]["not_ok"]:
        failed = True
        console.print("[red]FAILED[/red] the in-process peers answered other than ok")
    console.print("every event answered exactly once" if not failed else "see FAILED above")
    if args.keep:
        console.print(f"kept {folder} (worker logs: */worker-*.log)")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main_bench()
