"""The service's Prometheus metrics, kept by ``prometheus_client`` in a registry of their own.

Every :class:`Registry` owns its ``CollectorRegistry`` (never the global default one), so that
several services in one process count apart. The thin wrappers keep the call shapes of the
service: ``counter.inc(*label_values, amount=...)``, ``histogram.observe(x)``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence

import prometheus_client as prom
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = ["Counter", "Histogram", "LastError", "Registry"]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)


def _sample(metric: Collector, name: str, labels: dict[str, str]) -> float | None:
    for family in metric.collect():
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


class Counter:
    """A ``prometheus_client`` counter, increased as ``inc(*label_values, amount=1.0)``.

    The name is given without ``_total``; ``prometheus_client`` appends it.

    >>> requests = Counter(CollectorRegistry(), "requests", "Requests.", ("code",))
    >>> requests.inc("200"); requests.inc("200", amount=2); requests.value("200")
    3.0
    """

    def __init__(
        self, registry: CollectorRegistry, name: str, help_text: str, labels: Sequence[str] = ()
    ) -> None:
        self.labels = tuple(labels)
        self.metric = prom.Counter(name, help_text, self.labels, registry=registry)
        self._sample = name.removesuffix("_total") + "_total"

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        (self.metric.labels(*labels) if self.labels else self.metric).inc(amount)

    def value(self, *labels: str) -> float:
        """The count of one label set (0 until it is first increased)."""
        wanted = dict(zip(self.labels, labels, strict=True))
        return _sample(self.metric, self._sample, wanted) or 0.0


class Histogram:
    """A ``prometheus_client`` histogram: cumulative buckets, sum and count.

    >>> latency = Histogram(CollectorRegistry(), "latency_seconds", "Latency.", (0.1, 1.0))
    >>> latency.observe(0.05); latency.observe(0.5); latency.count
    2
    """

    def __init__(
        self, registry: CollectorRegistry, name: str, help_text: str, buckets: Sequence[float]
    ) -> None:
        self.metric = prom.Histogram(name, help_text, buckets=buckets, registry=registry)
        self._sample = name + "_count"

    def observe(self, value: float) -> None:
        self.metric.observe(value)

    @property
    def count(self) -> int:
        return int(_sample(self.metric, self._sample, {}) or 0)


class LastError(Collector):
    """The last error of something, as the ``error`` label of a gauge that is 1 (no sample
    while there is none), read at scrape time and cut to 200 characters.

    >>> registry = CollectorRegistry()
    >>> registry.register(LastError("job_last_error", "Last error.", lambda: "disk full"))
    >>> registry.get_sample_value("job_last_error", {"error": "disk full"})
    1.0
    """

    def __init__(self, name: str, help_text: str, read: Callable[[], str | None]) -> None:
        self.name, self.help, self.read = name, help_text, read

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(self.name, self.help, labels=("error",))]

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(self.name, self.help, labels=("error",))
        error = self.read()
        if error:
            family.add_metric((error[:200],), 1.0)
        return [family]


class _WithoutCreated(Collector):
    """A registry's metrics less the ``_created`` samples of counters and histograms (the
    switch ``prometheus_client`` has for them, ``disable_created_metrics``, is process-wide)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        for family in self.registry.collect():
            family = copy.copy(family)
            family.samples = [s for s in family.samples if s.name != family.name + "_created"]
            yield family


class Registry:
    """The service's metrics, rendered in the Prometheus text format (version 0.0.4).

    >>> metrics = Registry()
    >>> metrics.requests.inc("/v1/steps", "200")
    >>> metrics.gauge("streams", "Streams in the store.", lambda: 3)
    >>> text = metrics.render()
    >>> 'stateline_requests_total{code="200",route="/v1/steps"} 1.0' in text, "streams 3.0" in text
    (True, True)
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            r, "stateline_requests", "HTTP requests by route and status code.", ("route", "code")
        )
        self.steps = Counter(
            r,
            "stateline_steps",
            "Events by outcome (ok, gap, restarted, duplicate, stale, error).",
            ("status",),
        )
        self.flags = Counter(r, "stateline_flags", "Steps flagged as anomalous.")
        self.evictions = Counter(r, "stateline_evictions", "Streams evicted (capacity or ttl).")
        self.snapshots = Counter(r, "stateline_snapshots", "State snapshots written.")
        self.snapshot_failures = Counter(
            r, "stateline_snapshot_failures", "State snapshots that could not be written."
        )
        self.latency = Histogram(
            r, "stateline_request_latency_seconds", "Time to answer a request.", LATENCY_BUCKETS
        )
        self.batch = Histogram(r, "stateline_batch_events", "Events per step call.", BATCH_BUCKETS)

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """Add a gauge whose value is ``read()`` at every scrape."""
        prom.Gauge(name, help_text, registry=self.registry).set_function(read)

    def last_error(self, name: str, help_text: str, read: Callable[[], str | None]) -> None:
        """Add a :class:`LastError` gauge (``read()`` returns the error, or None)."""
        self.registry.register(LastError(name, help_text, read))

    def render(self) -> str:
        return generate_latest(_WithoutCreated(self.registry)).decode()
