"""Readiness follows the artifact store: an api whose store cannot be written is
not ready (a probe object is written, read back and removed on each /readyz)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.integration.api.support import client_for, running_app
from tests.support.s3 import S3Server, new_bucket
from xdp47_common.settings import ControlSettings

pytestmark = pytest.mark.integration


async def _ready(settings: ControlSettings) -> tuple[int, dict[str, str]]:
    async with running_app(settings) as app, client_for(app) as c:
        r = await c.get("/readyz")
        return r.status_code, r.json()["checks"]


async def test_a_blob_dir_that_cannot_be_created_is_not_ready(
    api_settings: ControlSettings, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory should be")
    settings = api_settings.model_copy(update={"blob_dir": str(blocker / "blobs")})
    status, checks = await _ready(settings)
    assert status == 503
    assert checks["artifacts"].startswith("failed"), checks
    assert checks["postgres"] == "ok"


async def test_a_fresh_blob_dir_is_created_and_ready(
    api_settings: ControlSettings, tmp_path: Path
) -> None:
    root = tmp_path / "new" / "blobs"
    settings = api_settings.model_copy(update={"blob_dir": str(root)})
    status, checks = await _ready(settings)
    assert (status, checks["artifacts"]) == (200, "ok")
    assert [p for p in root.rglob("*") if p.is_file()] == []  # the probe is gone


def _s3(api: ControlSettings, s3: S3Server, bucket: str) -> ControlSettings:
    return api.model_copy(
        update={
            "blob_store": "s3",
            "s3_bucket": bucket,
            "s3_endpoint": s3.endpoint,
            "s3_access_key_id": s3.access_key,
            "s3_secret_access_key": SecretStr(s3.secret_key),
        }
    )


async def test_the_s3_store_is_ready_with_its_bucket_and_not_without(
    api_settings: ControlSettings, s3: S3Server
) -> None:
    status, checks = await _ready(_s3(api_settings, s3, new_bucket(s3)))
    assert (status, checks["artifacts"]) == (200, "ok")
    status, checks = await _ready(_s3(api_settings, s3, "xdp47-no-such-bucket"))
    assert status == 503
    assert checks["artifacts"] != "ok", checks
