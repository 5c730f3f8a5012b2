"""The artifact upload form: a multipart upload streamed into the blob store and
saved as the REST upload route saves it (SHA256, size, download URI; devices can
download it), its own size limit, field errors next to their fields, CSRF and the
write scope; a refused upload stores nothing."""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tests.integration.api.support import auth, make_tenant, mint
from tests.integration.ui.conftest import MAX_BODY, MAX_UPLOAD
from tests.integration.ui.support import browser, csrf_of, signed_in
from xdp47_common.models import ALL_SCOPES, READ_SCOPES, Scope
from xdp47_common.settings import ControlSettings

pytestmark = pytest.mark.integration

UPLOAD = "/ui/artifacts/upload"
FORM_ACTION = f'action="{UPLOAD}"'


def _content(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _blobs(settings: ControlSettings) -> set[str]:
    return {p.name for p in Path(settings.blob_dir).rglob("*") if p.is_file()}


async def _upload(
    client: httpx.AsyncClient,
    content: bytes | None,
    fields: dict[str, str] | None = None,
    *,
    filename: str = "app.tar",
    csrf: str | None = "page",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Post the upload form as a browser does: text fields first, then the file
    (``content=None``: no file chosen, an empty part with an empty filename)."""
    data = dict(fields or {})
    if csrf == "page":
        data["csrf_token"] = csrf_of((await client.get("/ui/artifacts")).text)
    elif csrf is not None:
        data["csrf_token"] = csrf
    part = ("", b"") if content is None else (filename, content)
    return await client.post(
        UPLOAD,
        data=data,
        files={"file": (*part, "application/octet-stream")},
        headers=headers,
    )


async def test_upload_stores_the_file_and_devices_can_download_it(
    pool: asyncpg.Pool[Any], ui_app: FastAPI, ui_settings: ControlSettings
) -> None:
    tenant = await make_tenant(pool, "up")
    content = _content(MAX_BODY + 12_345, 1)  # over the general body limit
    async with signed_in(ui_app, await mint(pool, tenant, ALL_SCOPES)) as client:
        page = await client.get("/ui/artifacts")
        assert FORM_ACTION in page.text
        assert 'enctype="multipart/form-data"' in page.text
        answer = await _upload(
            client,
            content,
            {
                "version": "4.0.0-ui",
                "type": "firmware",
                "metadata": '{"notes": "from the form"}',
            },
            filename="app 4.0 (final).tar",
        )
        assert answer.status_code == 303, answer.text
        location = answer.headers["location"]
        assert location.startswith("/ui/artifacts?created=")
        artifact_id = location.split("created=")[1]
        listing = await client.get(location)
        assert 'data-flash="created"' in listing.text
        assert f'data-artifact="{artifact_id}"' in listing.text
        assert "4.0.0-ui" in listing.text
    token = await mint(pool, tenant, {Scope.ARTIFACTS_READ, Scope.DEVICES_WRITE})
    async with browser(ui_app) as api:
        artifact = (
            await api.get(f"/api/artifacts/{artifact_id}", headers=auth(token))
        ).json()
        assert artifact["sha256"] == hashlib.sha256(content).hexdigest()
        assert artifact["size"] == len(content)
        assert artifact["version"] == "4.0.0-ui"
        assert artifact["type"] == "firmware"
        assert artifact["metadata"] == {
            "notes": "from the form",
            "filename": "app 4.0 _final_.tar",
        }
        assert artifact["uri"].endswith(f"/api/artifacts/{artifact_id}/content")
        claimed = await api.post(
            "/api/devices/claim", headers=auth(token), json={"tenant": tenant}
        )
        assert claimed.status_code == 201, claimed.text
        device = claimed.json()["credential"]
        download = await api.get(
            f"/api/artifacts/{artifact_id}/content", headers=auth(device)
        )
        assert download.status_code == 200
        assert download.content == content
        assert (
            'filename="app 4.0 _final_.tar"' in download.headers["content-disposition"]
        )
    assert artifact["sha256"] in _blobs(ui_settings)


async def test_an_upload_of_exactly_the_limit_is_taken(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    tenant = await make_tenant(pool, "up")
    async with signed_in(ui_app, await mint(pool, tenant, ALL_SCOPES)) as client:
        answer = await _upload(client, _content(MAX_UPLOAD, 2), {"version": "limit"})
        assert answer.status_code == 303, answer.text


async def test_too_large_uploads_are_refused_and_nothing_is_stored(
    pool: asyncpg.Pool[Any], ui_app: FastAPI, ui_settings: ControlSettings
) -> None:
    tenant = await make_tenant(pool, "up")
    async with signed_in(ui_app, await mint(pool, tenant, ALL_SCOPES)) as client:
        before = _blobs(ui_settings)
        # Within the form's body limit, so the handler's own limit cuts it off
        # while it streams and the form comes back with the reason.
        too_big = {"version": "too-big"}
        over = await _upload(client, _content(MAX_UPLOAD + 1, 3), too_big)
        assert over.status_code == 413
        assert 'id="file-error"' in over.text
        assert f"larger than the limit of 64 KiB ({MAX_UPLOAD} bytes)" in over.text
        assert 'value="too-big"' in over.text  # the fields are kept
        # Far over: the body limit refuses it before the handler runs.
        far = await _upload(client, _content(4 * MAX_UPLOAD, 4), too_big)
        assert far.status_code == 413
        assert _blobs(ui_settings) == before
        listing = (await client.get("/ui/artifacts")).text
        assert "too-big" not in listing


async def test_bad_input_is_shown_next_to_its_field(
    pool: asyncpg.Pool[Any], ui_app: FastAPI, ui_settings: ControlSettings
) -> None:
    tenant = await make_tenant(pool, "up")
    async with signed_in(ui_app, await mint(pool, tenant, ALL_SCOPES)) as client:
        before = _blobs(ui_settings)
        cases: list[tuple[bytes | None, dict[str, str], dict[str, str]]] = [
            (None, {"version": "no-file"}, {"file": "choose a file"}),
            (b"", {"version": "empty"}, {"file": "the file is empty"}),
            (b"x" * 100, {"version": "v" * 129}, {"version": "at most 128"}),
            (b"x" * 100, {"metadata": "{oops"}, {"metadata": "not valid JSON"}),
            (b"x" * 100, {"metadata": "[1]"}, {"metadata": "must be a JSON object"}),
            (
                None,
                {"metadata": "{oops", "version": "both"},
                {"file": "choose a file", "metadata": "not valid JSON"},
            ),
        ]
        for content, fields, expected in cases:
            answer = await _upload(client, content, fields)
            assert answer.status_code == 422, (fields, answer.text[:300])
            assert "The artifact was not uploaded" in answer.text
            for name, message in expected.items():
                error = re.search(rf'id="{name}-error">([^<]*)<', answer.text)
                assert error, (name, fields)
                assert message in error.group(1), (name, error.group(1))
            # the upload form is open again, with what was typed
            assert '<details class="card create" id="upload" open>' in answer.text
        not_multipart = await client.post(
            UPLOAD,
            content=b"raw bytes",
            headers={
                "Content-Type": "application/octet-stream",
                "X-CSRF-Token": csrf_of((await client.get("/ui/artifacts")).text),
            },
        )
        assert not_multipart.status_code == 422
        assert "multipart/form-data" in not_multipart.text
        assert _blobs(ui_settings) == before


async def test_upload_needs_the_csrf_token_and_the_write_scope(
    pool: asyncpg.Pool[Any], ui_app: FastAPI, ui_settings: ControlSettings
) -> None:
    tenant = await make_tenant(pool, "up")
    content = _content(1000, 5)
    digest = hashlib.sha256(content).hexdigest()
    async with signed_in(ui_app, await mint(pool, tenant, ALL_SCOPES)) as client:
        for csrf in (None, "wrong"):
            refused = await _upload(client, content, {"version": "csrf"}, csrf=csrf)
            assert refused.status_code == 403, csrf
            assert "CSRF" in refused.text
        no_file = await _upload(client, None, csrf=None)
        assert no_file.status_code == 403  # refused before the fields are judged
        assert digest not in _blobs(ui_settings)
        # htmx sends the token as a header instead
        token = csrf_of((await client.get("/ui/artifacts")).text)
        ok = await _upload(client, content, csrf=None, headers={"X-CSRF-Token": token})
        assert ok.status_code == 303, ok.text
        assert digest in _blobs(ui_settings)
    async with signed_in(ui_app, await mint(pool, tenant, READ_SCOPES)) as reader:
        page = await reader.get("/ui/artifacts")
        assert page.status_code == 200
        assert FORM_ACTION not in page.text
        assert 'type="file"' not in page.text
        refused = await _upload(reader, _content(500, 6), {"version": "reader"})
        assert refused.status_code == 403
        assert "artifacts:write" in refused.text
