"""No credential survives into a log line: secrets by prefix, credential query
parameters, Authorization/Cookie headers in any rendering, URL passwords."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from xdp47_common.logging import configure_logging
from xdp47_common.redact import MASK, RedactingFormatter, redact, redact_value
from xdp47_common.tokens import SecretKind, new_secret

TOKEN = new_secret(SecretKind.API_TOKEN)
CREDENTIAL = new_secret(SecretKind.DEVICE_CREDENTIAL)
DEV = "devtoken-0123456789ab"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f'127.0.0.1:5 - "GET /api/devices?access_token={DEV} HTTP/1.1" 401', DEV),
        (f"GET /api/x?limit=5&token={DEV}&q=1", DEV),
        (f"GET /x?API_KEY={DEV}", DEV),
        (f"url=https://s3/bucket/a?X-Amz-Signature={DEV}&X-Amz-Date=1", DEV),
        (f"GET /api/devices?label=a%3Db&q={TOKEN}", TOKEN),
        (f"heartbeat refused for {CREDENTIAL}", CREDENTIAL),
        (f"Authorization: Bearer {DEV}", DEV),
        (f"authorization: {DEV}", DEV),
        (f"{{'authorization': 'Bearer {DEV}', 'host': 'x'}}", DEV),
        (f'{{"Authorization": "{DEV}"}}', DEV),
        (f"[(b'host', b'x'), (b'authorization', b'Basic {DEV}')]", DEV),
        (f"Cookie: xdp47_session={DEV}", DEV),
        (f"connecting to amqp://guest:{DEV}@broker:5672/", DEV),
        (f"postgresql://postgres:{DEV}@db/xdp47", DEV),
    ],
)
def test_each_rendering_is_masked(text, secret):
    masked = redact(text)
    assert secret not in masked
    assert MASK in masked


def test_what_is_not_a_credential_stays():
    for text in [
        "GET /api/devices?label=fleet%3Dacc&limit=5 HTTP/1.1",
        "claimed device dev-1 for tenant acme",
        "missing Authorization header",
        "https://example.com/a.tar",
        "amqp://broker:5672/",
    ]:
        assert redact(text) == text


def test_structures_are_walked_and_sensitive_keys_masked():
    value = {
        "headers": {"authorization": DEV, "host": "h"},
        "scope": [(b"cookie", DEV.encode())],
        "token": DEV,
        "n": 3,
    }
    masked = redact_value(value)
    assert DEV not in json.dumps(masked)
    assert masked["headers"]["host"] == "h"
    assert masked["n"] == 3


@pytest.fixture
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("XDP47_LOG_FORMAT", raising=False)
    monkeypatch.delenv("XDP47_LOG_LEVEL", raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


@pytest.mark.parametrize("as_json", [True, False])
def test_configured_logging_masks_messages_fields_and_tracebacks(
    restore_logging, as_json
):
    out = io.StringIO()
    configure_logging("api", json=as_json, stream=out)
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:1",
        "GET",
        f"/api/rollouts?access_token={TOKEN}",
        "1.1",
        401,
    )
    log = structlog.get_logger("xdp47.test")
    log.warning("request", headers={"authorization": f"Bearer {DEV}"}, url=CREDENTIAL)
    try:
        raise ValueError(f"bad url http://u:{DEV}@h/?token={DEV}")
    except ValueError:
        log.exception("failed")
    text = out.getvalue()
    assert "/api/rollouts?access_token=" in text
    assert "failed" in text
    for secret in (TOKEN, CREDENTIAL, DEV):
        assert secret not in text


def test_plain_formatter_masks_arguments_and_tracebacks():
    formatter = RedactingFormatter("%(message)s")
    try:
        raise RuntimeError(f"Bearer {DEV}")
    except RuntimeError as exc:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "GET %s", (f"/a?token={DEV}",), None
        )
        record.exc_info = (type(exc), exc, exc.__traceback__)
    text = formatter.format(record)
    assert "GET /a?token=" in text
    assert DEV not in text
