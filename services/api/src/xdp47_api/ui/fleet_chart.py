"""The devices page's "fleet by version" chart: how many of the devices a
selector matches run each version, and (split by a label) where each version
runs. Server-rendered bars (CSS widths), so it needs no script and no CDN."""

from __future__ import annotations

from dataclasses import dataclass, field

from xdp47_api.repositories.device_counts import PgDeviceCounts
from xdp47_common.selectors import Selector, SelectorError, SelectorJson

__all__ = ["Bar", "FleetChart", "fleet_chart"]

# Labels split the chart into at most this many values (the largest).
MAX_SPLIT = 8


@dataclass(frozen=True)
class Bar:
    value: str | None
    count: int
    percent: float
    # (label value, count) where this version runs, largest first.
    where: list[tuple[str | None, int]] = field(default_factory=list)


@dataclass(frozen=True)
class FleetChart:
    total: int
    bars: list[Bar]
    split: str | None
    split_error: str | None = None


async def fleet_chart(
    counts: PgDeviceCounts, tenant: str, selector: SelectorJson, split: str = ""
) -> FleetChart:
    """Counts per version of the matching devices, split by label ``split``."""
    total = await counts.count(tenant, selector)
    versions = await counts.buckets(tenant, selector, "version")
    error = None
    key = split.strip() or None
    if key is not None:
        try:
            Selector.from_json([{"key": key, "operator": "exists"}])
        except SelectorError as exc:
            error, key = str(exc), None
    where: dict[str | None, list[tuple[str | None, int]]] = {}
    if key is not None:
        for version, value, n in await counts.by_version_and_label(
            tenant, selector, key
        ):
            where.setdefault(version, []).append((value, n))
    bars = [
        Bar(
            b.value,
            b.count,
            100.0 * b.count / total if total else 0.0,
            where.get(b.value, [])[:MAX_SPLIT],
        )
        for b in versions
    ]
    return FleetChart(total=total, bars=bars, split=key, split_error=error)
