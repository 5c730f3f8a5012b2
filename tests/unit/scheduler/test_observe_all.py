"""``observe_all`` leaves a histogram as one ``observe`` per value would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

from xdp47_scheduler.metrics import HEARTBEAT_LAG, observe_all


def _samples(histogram: Histogram) -> dict[str, float]:
    return {
        f"{s.name}{sorted(s.labels.items())}": s.value
        for metric in histogram.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


def _pair() -> tuple[Histogram, Histogram]:
    buckets = HEARTBEAT_LAG._upper_bounds[:-1]  # the lag's own bounds
    one, many = CollectorRegistry(), CollectorRegistry()
    return (
        Histogram("lag", "x", buckets=buckets, registry=one),
        Histogram("lag", "x", buckets=buckets, registry=many),
    )


def test_same_buckets_count_and_sum_as_observe() -> None:
    # On a bound, between bounds, below the first, past the last, and zero.
    values = [0.0, 0.005, 0.0051, 0.01, 0.3, 0.3, 2.5, 59.9, 60.0, 61.0, 1e9]
    single, bulk = _pair()
    for value in values:
        single.observe(value)
    observe_all(bulk, values)
    assert _samples(bulk) == _samples(single)
    assert _samples(bulk)["lag_count[]"] == len(values)
    assert _samples(bulk)["lag_bucket[('le', '0.005')]"] == 2  # le is inclusive


def test_no_values_change_nothing() -> None:
    single, bulk = _pair()
    observe_all(bulk, [])
    assert _samples(bulk) == _samples(single)
