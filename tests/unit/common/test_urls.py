"""Service URLs: multi-host forms split into one URL per node, and described for
logs without credentials."""

from __future__ import annotations

import pytest

from xdp47_common.adapters.amqp_nodes import broker_urls
from xdp47_common.urls import describe_url, split_hosts


def test_one_url_is_one_node() -> None:
    assert split_hosts("amqp://u:p@rabbit:5672/") == ["amqp://u:p@rabbit:5672/"]


def test_multi_host_url_shares_credentials_path_and_query() -> None:
    assert split_hosts("amqp://u:p@r0:5672,r1,r2:5673/vh?heartbeat=5") == [
        "amqp://u:p@r0:5672/vh?heartbeat=5",
        "amqp://u:p@r1/vh?heartbeat=5",
        "amqp://u:p@r2:5673/vh?heartbeat=5",
    ]


def test_comma_separated_urls_are_kept_whole() -> None:
    assert split_hosts(" amqp://a:b@r0/ , amqps://c:d@r1:5671/x ") == [
        "amqp://a:b@r0/",
        "amqps://c:d@r1:5671/x",
    ]


@pytest.mark.parametrize(
    ("url", "described"),
    [
        ("postgresql://u:secret@db:5432/xdp47", "db:5432/xdp47"),
        (
            "postgresql://u:secret@db-a:5432,db-b:5433/x?target_session_attrs=read-write",
            "db-a:5432/x, db-b:5433/x",
        ),
        ("amqp://guest:secret@r0/,amqp://guest:secret@r1:5673/", "r0/, r1:5673/"),
        ("", "<empty URL>"),
    ],
)
def test_description_has_hosts_never_secrets(url: str, described: str) -> None:
    assert describe_url(url) == described
    assert "secret" not in describe_url(url)


def test_broker_urls_refuse_what_is_not_amqp() -> None:
    with pytest.raises(ValueError, match="not an amqp"):
        broker_urls("amqp://u:p@r0/,http://u:secret@r1/")
    with pytest.raises(ValueError, match="no RabbitMQ node"):
        broker_urls("  ")
    with pytest.raises(ValueError, match="not an amqp") as info:
        broker_urls("redis://u:secret@r0/")
    assert "secret" not in str(info.value)
