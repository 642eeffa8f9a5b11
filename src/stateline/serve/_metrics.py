"""Prometheus text exposition for the service: counters, gauges and histograms, no dependency."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Sequence

__all__ = ["Counter", "Gauge", "Histogram", "LastError", "Registry"]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    pairs = ",".join(
        f'{name}="{_escape(value)}"' for name, value in zip(names, values, strict=True)
    )
    return "{" + pairs + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Counter:
    """A monotonically increasing count per label set.

    >>> requests = Counter("requests_total", "Requests.", ("code",))
    >>> requests.inc("200"); requests.inc("200"); requests.render()[-1]
    'requests_total{code="200"} 2.0'
    """

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name, self.help, self.labels = name, help_text, tuple(labels)
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self._values.get(labels, 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        if not self.labels and not self._values:
            lines.append(f"{self.name} 0.0")
        for labels, value in sorted(self._values.items()):
            lines.append(f"{self.name}{_labels(self.labels, labels)} {float(value)}")
        return lines


class Gauge:
    """A value read when the metrics are rendered."""

    def __init__(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self.name, self.help, self.read = name, help_text, read

    def render(self) -> list[str]:
        return [
            f"# HELP {self.name} {self.help}",
            f"# TYPE {self.name} gauge",
            f"{self.name} {float(self.read())}",
        ]


class Histogram:
    """Cumulative buckets, sum and count, as Prometheus histograms.

    >>> latency = Histogram("latency_seconds", "Latency.", (0.1, 1.0))
    >>> latency.observe(0.05); latency.observe(0.5)
    >>> latency.render()[2:]
    ['latency_seconds_bucket{le="0.1"} 1', 'latency_seconds_bucket{le="1.0"} 2', \
'latency_seconds_bucket{le="+Inf"} 2', 'latency_seconds_sum 0.55', 'latency_seconds_count 2']
    """

    def __init__(self, name: str, help_text: str, buckets: Sequence[float]) -> None:
        self.name, self.help = name, help_text
        self.buckets = tuple(float(b) for b in buckets)
        self._counts = [0] * (len(self.buckets) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            self._counts[bisect.bisect_left(self.buckets, value)] += 1
            self._sum += value

    @property
    def count(self) -> int:
        return sum(self._counts)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        running = 0
        for bound, count in zip(self.buckets, self._counts, strict=False):
            running += count
            lines.append(f'{self.name}_bucket{{le="{bound}"}} {running}')
        lines.append(f'{self.name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{self.name}_sum {round(self._sum, 9)}")
        lines.append(f"{self.name}_count {self.count}")
        return lines


class LastError:
    """The last error of something, as a label of a gauge that is 1 (nothing while none).

    >>> LastError("job_last_error", "Last error.", lambda: "disk full").render()[-1]
    'job_last_error{error="disk full"} 1'
    """

    def __init__(self, name: str, help_text: str, read: Callable[[], str | None]) -> None:
        self.name, self.help, self.read = name, help_text, read

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge"]
        error = self.read()
        if error:
            lines.append(f'{self.name}{{error="{_escape(error[:200])}"}} 1')
        return lines


class Registry:
    """The service's metrics, rendered in the Prometheus text format (version 0.0.4)."""

    def __init__(self) -> None:
        self.requests = Counter(
            "stateline_requests_total", "HTTP requests by route and status code.", ("route", "code")
        )
        self.steps = Counter(
            "stateline_steps_total",
            "Events by outcome (ok, gap, restarted, duplicate, stale, error).",
            ("status",),
        )
        self.flags = Counter("stateline_flags_total", "Steps flagged as anomalous.")
        self.evictions = Counter("stateline_evictions_total", "Streams evicted (capacity or ttl).")
        self.snapshots = Counter("stateline_snapshots_total", "State snapshots written.")
        self.snapshot_failures = Counter(
            "stateline_snapshot_failures_total", "State snapshots that could not be written."
        )
        self.latency = Histogram(
            "stateline_request_latency_seconds", "Time to answer a request.", LATENCY_BUCKETS
        )
        self.batch = Histogram("stateline_batch_events", "Events per step call.", BATCH_BUCKETS)
        self.gauges: list[Gauge | LastError] = []

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self.gauges.append(Gauge(name, help_text, read))

    def last_error(self, name: str, help_text: str, read: Callable[[], str | None]) -> None:
        self.gauges.append(LastError(name, help_text, read))

    def render(self) -> str:
        lines: list[str] = []
        metrics: tuple[Counter | Histogram | Gauge | LastError, ...] = (
            self.requests,
            self.steps,
            self.flags,
            self.evictions,
            self.snapshots,
            self.snapshot_failures,
            self.latency,
            self.batch,
            *self.gauges,
        )
        for metric in metrics:
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"
