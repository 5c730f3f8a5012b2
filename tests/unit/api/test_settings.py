"""Control settings: the dev token is refused in production, placeholders and
environment names are the seed's."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from xdp47_common.settings import DEV_TOKEN_PLACEHOLDER, ControlSettings, Environment


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("XDP47_"):
            monkeypatch.delenv(name)


def test_defaults_are_production_without_dev_token():
    s = ControlSettings()
    assert s.env is Environment.PRODUCTION
    assert s.dev_token_enabled is False


def test_dev_token_refused_in_production(monkeypatch):
    monkeypatch.setenv("XDP47_DEV_TOKEN_ENABLED", "true")
    with pytest.raises(ValidationError, match="refused with XDP47_ENV=production"):
        ControlSettings()


def test_dev_token_allowed_in_development_with_placeholder(monkeypatch):
    monkeypatch.setenv("XDP47_DEV_TOKEN_ENABLED", "true")
    monkeypatch.setenv("XDP47_ENV", "development")
    s = ControlSettings()
    assert s.agent_token.get_secret_value() == DEV_TOKEN_PLACEHOLDER == "devtoken123"
    assert DEV_TOKEN_PLACEHOLDER not in repr(s)  # SecretStr hides it


def test_seed_names_are_read(monkeypatch):
    monkeypatch.setenv("XDP47_DB_URL", "postgresql://u@db:5432/x")
    monkeypatch.setenv("XDP47_AMQP_URL", "amqp://mq/")
    monkeypatch.setenv("XDP47_LISTEN_ADDR", "0.0.0.0:9000")
    monkeypatch.setenv("XDP47_AGENT_TOKEN", "other")
    s = ControlSettings()
    assert (s.db_url, s.amqp_url) == ("postgresql://u@db:5432/x", "amqp://mq/")
    assert (s.listen_host, s.listen_port) == ("0.0.0.0", 9000)
    assert s.agent_token.get_secret_value() == "other"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("XDP47_MAX_BODY_BYTES", "10"),
        ("XDP47_AMQP_NAMESPACE", "Has.Dots"),
        ("XDP47_ENV", "staging"),
        ("XDP47_PUBLISH_TIMEOUT", "0"),
    ],
)
def test_bad_values_are_refused_naming_the_field(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.removeprefix("XDP47_").lower()):
        ControlSettings()
