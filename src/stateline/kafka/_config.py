"""The settings of ``stateline worker``: every field is a command-line flag."""

from __future__ import annotations

from dataclasses import dataclass, field

from .._errors import ConfigError, describe
from .._validate import plain_numbers, require_positive_int
from ..anomaly import DetectorConfig
from ..online import OnlineConfig

__all__ = ["WorkerConfig"]


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    """Settings of ``stateline worker``.

    ``brokers`` is Kafka's ``bootstrap.servers``; the worker reads events from
    ``input`` in consumer group ``group`` and writes one answer per event to
    ``output``. Each input partition's state is checkpointed to
    ``checkpoint_dir/<input>-<partition>`` every ``checkpoint_interval``
    seconds and when the partition is taken away; answers are flushed and the
    input offsets committed every ``commit_interval`` seconds. A poll takes up
    to ``max_poll`` events or waits ``poll_ms`` milliseconds. A worker that
    stops heartbeating for ``session_timeout_ms`` loses its partitions to the
    others. ``max_events`` (rows of one Arrow batch), ``max_steps`` (steps of
    one call) and ``max_event_steps`` (steps of one event) are the limits of
    ``stateline serve`` of the same names. ``metrics_port`` serves Prometheus
    text on ``metrics_host``
    (None: no metrics server). ``exactly_once`` writes each partition's
    answers and input progress in one Kafka transaction per poll (one
    transactional producer per input partition, so a new owner fences the
    old): ``read_committed`` readers then see each answer once, on a real
    broker (see docs/scaling.md for what the mock cluster keeps of it).
    ``online`` keeps each partition's model learning from that partition's
    streams (:class:`~stateline.online.OnlineLearner`, as ``serve --online``);
    its weights go into the partition's checkpoint with its state.
    """

    model: str
    brokers: str
    input: str
    output: str
    group: str
    checkpoint_dir: str
    checkpoint_interval: float = 10.0
    commit_interval: float = 1.0
    max_poll: int = 1000
    poll_ms: int = 100
    session_timeout_ms: int = 10_000
    capacity: int = 1_000_000
    max_events: int = 10_000
    max_steps: int = 65_536
    max_event_steps: int = 4_096
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    learn: bool = True
    exactly_once: bool = False
    detector: DetectorConfig = field(default_factory=lambda: DetectorConfig(reference=200))
    online: OnlineConfig | None = None

    def __post_init__(self) -> None:
        plain_numbers(self)
        for name in (
            "max_poll", "poll_ms", "session_timeout_ms", "capacity",
            "max_events", "max_steps", "max_event_steps",
        ):  # fmt: skip
            require_positive_int(name, getattr(self, name))
        require_positive_int("metrics_port", self.metrics_port, optional=True)
        for name in ("checkpoint_interval", "commit_interval"):
            if not getattr(self, name) > 0:
                raise ConfigError(
                    describe(name, "seconds > 0", repr(getattr(self, name)), problem="is invalid.")
                )
        if self.max_poll > self.capacity:
            raise ConfigError(
                describe(
                    "max_poll",
                    f"at most --capacity ({self.capacity}) events per poll",
                    str(self.max_poll),
                    problem="is too large.",
                )
            )
        for name in ("brokers", "input", "output", "group", "checkpoint_dir", "model"):
            if not str(getattr(self, name)).strip():
                raise ConfigError(
                    describe(name, "a value", "an empty string", problem="is missing.")
                )
        if self.input == self.output:
            raise ConfigError(
                describe(
                    "output",
                    f"a topic other than the input {self.input!r}",
                    repr(self.output),
                    problem="is the input topic.",
                    fix="Answers would be read back as events: name another topic.",
                )
            )
