"""The service's metrics registry: valid Prometheus text, names kept, registries apart."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from stateline.serve._metrics import Registry


def samples(metrics: Registry) -> dict[str, list[Sample]]:
    """The rendered text, parsed back: samples by family name (as the parser names them)."""
    return {f.name: list(f.samples) for f in text_string_to_metric_families(metrics.render())}


def value(metrics: Registry, name: str, **labels: str) -> float | None:
    for family in samples(metrics).values():
        for sample in family:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def test_the_exposed_names_are_those_of_the_hand_written_format() -> None:
    text = Registry().render()
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert names == {
        "stateline_requests_total",
        "stateline_steps_total",
        "stateline_flags_total",
        "stateline_evictions_total",
        "stateline_snapshots_total",
        "stateline_snapshot_failures_total",
        "stateline_request_latency_seconds",
        "stateline_batch_events",
    }
    assert "_created" not in text
    # Counters without labels show 0 before their first increase; labelled ones show nothing.
    assert "stateline_evictions_total 0.0" in text and "stateline_steps_total{" not in text


def test_counters_count_per_label_set() -> None:
    metrics = Registry()
    metrics.requests.inc("/v1/steps", "200")
    metrics.requests.inc("/v1/steps", "200")
    metrics.requests.inc("/metrics", "401")
    metrics.steps.inc("ok", amount=3)
    metrics.steps.inc("gap")
    metrics.flags.inc(amount=2.0)
    metrics.snapshot_failures.inc()
    assert value(metrics, "stateline_requests_total", route="/v1/steps", code="200") == 2.0
    assert value(metrics, "stateline_requests_total", route="/metrics", code="401") == 1.0
    assert value(metrics, "stateline_steps_total", status="ok") == 3.0
    assert value(metrics, "stateline_steps_total", status="gap") == 1.0
    assert value(metrics, "stateline_flags_total") == 2.0
    assert value(metrics, "stateline_snapshot_failures_total") == 1.0
    assert value(metrics, "stateline_snapshots_total") == 0.0
    assert metrics.steps.value("ok") == 3.0 and metrics.steps.value("stale") == 0.0
    text = metrics.render()
    assert 'stateline_steps_total{status="ok"} 3.0' in text
    assert "stateline_snapshot_failures_total 1.0" in text


def test_histograms_have_cumulative_buckets_sum_and_count() -> None:
    metrics = Registry()
    for seconds in (0.003, 0.2, 0.25, 10.0):
        metrics.latency.observe(seconds)
    metrics.batch.observe(5)
    assert metrics.latency.count == 4 and metrics.batch.count == 1
    name = "stateline_request_latency_seconds"
    buckets = {
        s.labels["le"]: s.value for s in samples(metrics)[name] if s.name == name + "_bucket"
    }
    assert buckets["0.0025"] == 0 and buckets["0.005"] == 1 and buckets["0.1"] == 1
    assert buckets["0.25"] == 3 and buckets["2.5"] == 3 and buckets["+Inf"] == 4  # le: <=
    assert value(metrics, name + "_count") == 4
    assert value(metrics, name + "_sum") == pytest.approx(10.453)
    assert value(metrics, "stateline_batch_events_bucket", le="4.0") == 0
    assert value(metrics, "stateline_batch_events_bucket", le="8.0") == 1
    assert value(metrics, "stateline_batch_events_sum") == 5.0


def test_gauges_are_read_at_scrape_time() -> None:
    metrics = Registry()
    streams = [1.0]
    metrics.gauge("stateline_active_streams", "Streams in the state store.", lambda: streams[0])
    assert value(metrics, "stateline_active_streams") == 1.0
    streams[0] = 7
    assert value(metrics, "stateline_active_streams") == 7.0
    assert "# TYPE stateline_active_streams gauge" in metrics.render()
    with pytest.raises(ValueError, match="Duplicated"):
        metrics.gauge("stateline_active_streams", "Again.", lambda: 0.0)


def test_last_error_is_a_labelled_one_while_there_is_an_error() -> None:
    metrics = Registry()
    error: list[str | None] = [None]
    metrics.last_error("stateline_snapshot_last_error", "The last error.", lambda: error[0])
    assert samples(metrics)["stateline_snapshot_last_error"] == []
    assert "# TYPE stateline_snapshot_last_error gauge" in metrics.render()
    long = 'disk "full"\n' + "x" * 300
    error[0] = long
    (sample,) = samples(metrics)["stateline_snapshot_last_error"]
    assert sample.value == 1.0 and sample.labels == {"error": long[:200]}
    error[0] = ""
    assert samples(metrics)["stateline_snapshot_last_error"] == []


def test_two_registries_share_nothing() -> None:
    first, second = Registry(), Registry()
    first.requests.inc("/v1/steps", "200")
    first.evictions.inc(amount=3)
    first.gauge("stateline_active_streams", "Streams.", lambda: 5.0)
    second.gauge("stateline_active_streams", "Streams.", lambda: 2.0)  # same name: no clash
    assert value(first, "stateline_evictions_total") == 3.0
    assert value(second, "stateline_evictions_total") == 0.0
    assert value(second, "stateline_requests_total", route="/v1/steps", code="200") is None
    assert value(first, "stateline_active_streams") == 5.0
    assert value(second, "stateline_active_streams") == 2.0
    assert first.registry is not second.registry
