"""``RateLimits`` with ``memory://``: clock-aligned fixed windows of this process."""

from __future__ import annotations

import pytest

from xdp47_common.tokens import SecretKind, new_secret
from xdp47_common.web.rate_limit import RateLimits


async def test_a_device_over_its_limit_waits_for_the_next_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1_000.2]
    monkeypatch.setattr("xdp47_common.web.rate_limit.time.time", lambda: clock[0])
    limits = RateLimits(token_limit="off", device_limit="3/2 seconds")
    mine, other = (new_secret(SecretKind.DEVICE_CREDENTIAL) for _ in range(2))
    assert [await limits.hit(mine) for _ in range(3)] == [None, None, None]
    verdict = await limits.hit(mine)
    assert verdict is not None
    assert verdict.limit.amount == 3
    assert verdict.retry_after == 2  # the window [1000, 1002) ends in 1.8 s
    assert await limits.hit(other) is None  # another device's own counter
    clock[0] = 1_002.0  # the next window: counters start again
    assert await limits.hit(mine) is None


async def test_every_limit_of_a_list_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [5_000.0]
    monkeypatch.setattr("xdp47_common.web.rate_limit.time.time", lambda: clock[0])
    limits = RateLimits(token_limit="2/second;3/minute", device_limit="off")
    token = new_secret(SecretKind.API_TOKEN)
    assert await limits.hit(token) is None
    assert await limits.hit(token) is None
    assert (await limits.hit(token)).limit.amount == 2  # type: ignore[union-attr]
    clock[0] += 1  # a new second; a refused request was not counted further
    assert await limits.hit(token) is None  # the minute's third
    verdict = await limits.hit(token)
    assert verdict is not None
    assert verdict.limit.amount == 3
    assert await limits.hit(new_secret(SecretKind.DEVICE_CREDENTIAL)) is None


async def test_malformed_or_unknown_kinds_are_not_counted() -> None:
    limits = RateLimits(token_limit="1/hour", device_limit="1/hour")
    for _ in range(3):
        assert await limits.hit("xdp47d_nope") is None
        assert await limits.hit("something-else") is None
