"""A metrics URL whose name resolves to several addresses (a headless Service,
a compose service with replicas) is read at each address, once per replica."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from xdp47_api.ui.pages.system_feeds import _each_address


def _infos(*addresses: str) -> list[Any]:
    return [
        (
            socket.AF_INET6 if ":" in a else socket.AF_INET,
            socket.SOCK_STREAM,
            6,
            "",
            (a, 9090),
        )
        for a in addresses
    ]


@pytest.fixture
def resolves(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    table: dict[str, list[Any]] = {}
    loop = asyncio.get_running_loop

    async def getaddrinfo(host: str, port: int, **kw: Any) -> list[Any]:
        if host not in table:
            raise socket.gaierror(host)
        return table[host]

    def running() -> Any:
        real = loop()
        monkeypatch.setattr(real, "getaddrinfo", getaddrinfo)
        return real

    monkeypatch.setattr(asyncio, "get_running_loop", running)
    return table


async def test_each_replica_behind_a_name(resolves):
    resolves["scheduler"] = _infos("10.0.0.7", "10.0.0.3", "10.0.0.7", "fd00::5")
    assert await _each_address("http://scheduler:9090/metrics") == [
        "http://10.0.0.3:9090/metrics",
        "http://10.0.0.7:9090/metrics",
        "http://[fd00::5]:9090/metrics",
    ]


async def test_one_address_addresses_and_unknown_names_stay_as_listed(resolves):
    resolves["ingest"] = _infos("10.0.0.9")
    for url in (
        "http://ingest:8080/metrics",
        "http://10.0.0.1:8080/metrics",
        "http://nowhere:8080/metrics",
    ):
        assert await _each_address(url) == [url]
