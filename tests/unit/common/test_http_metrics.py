"""The HTTP request metrics: plain counts exposed as the counter and histogram
families a Prometheus client would serve for the same observations."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from xdp47_common.web.metrics import LATENCY_BUCKETS, HttpMetrics


def samples(
    registry: CollectorRegistry,
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_counts_and_latency_buckets_as_the_text_format_serves_them() -> None:
    registry = CollectorRegistry()
    metrics = HttpMetrics(registry, "x")
    route = "/api/devices/{device_id}/heartbeat"
    # On a bound, below the first, between two, above the last.
    for seconds in (0.001, 0.0005, 0.003, 0.2, 3.0):
        metrics.observe("POST", route, 202, seconds)
    metrics.observe("POST", route, 503, 0.01)
    metrics.observe("GET", "/api/devices/{device_id}/desired", 304, 0.01)
    got = samples(registry)

    def post(**extra: str) -> frozenset[tuple[str, str]]:
        return frozenset({"method": "POST", "route": route, **extra}.items())

    assert got[("x_http_requests_total", post(status="202"))] == 5
    assert got[("x_http_requests_total", post(status="503"))] == 1
    get = frozenset(
        {
            "method": "GET",
            "route": "/api/devices/{device_id}/desired",
            "status": "304",
        }.items()
    )
    assert got[("x_http_requests_total", get)] == 1
    # A bucket counts the requests at or under its bound (cumulative).
    at_most = {0.001: 2, 0.0025: 2, 0.005: 3, 0.01: 4, 0.1: 4, 0.25: 5, 2.5: 5}
    for bound, n in at_most.items():
        assert (
            got[("x_http_request_duration_seconds_bucket", post(le=str(float(bound))))]
            == n
        )
    assert got[("x_http_request_duration_seconds_bucket", post(le="+Inf"))] == 6
    assert got[("x_http_request_duration_seconds_count", post())] == 6
    total = got[("x_http_request_duration_seconds_sum", post())]
    assert abs(total - 3.2145) < 1e-9
    # Every bucket of the histogram is served, and the creation times.
    buckets = [
        k
        for k in got
        if k[0] == "x_http_request_duration_seconds_bucket"
        and ("method", "POST") in k[1]
    ]
    assert len(buckets) == len(LATENCY_BUCKETS) + 1
    assert ("x_http_requests_created", post(status="202")) in got
    assert ("x_http_request_duration_seconds_created", post()) in got


def test_nothing_observed_serves_the_families_without_samples() -> None:
    registry = CollectorRegistry()
    HttpMetrics(registry, "x")
    text = generate_latest(registry).decode()
    assert "# TYPE x_http_requests_total counter" in text
    assert "# TYPE x_http_request_duration_seconds histogram" in text
    assert "x_http_requests_total{" not in text
