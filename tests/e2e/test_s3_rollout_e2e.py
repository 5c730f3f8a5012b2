"""Artifacts in an S3 bucket, downloaded by real agents through presigned URLs.

The api, ingest and scheduler run with ``XDP47_BLOB_STORE=s3`` against a real
S3-compatible server (``XDP47_TEST_S3_URL`` or moto's, ``tests.support.s3``); a
fleet of four devices. A release uploaded to the api lands in the bucket under its
SHA256; ingest answers each device a presigned URL of that object, and the rollout
completes with every agent having downloaded it from the bucket. Bytes changed in
the bucket afterwards are refused by every agent told to install them (the SHA256
comes from the desired state, not from the bucket) and the wave fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.fleet import Fleet, start_fleet
from tests.e2e.operator_api import Operator
from tests.support.control_plane import ControlPlane
from tests.support.processes import ProcessGroup, wait_until
from tests.support.s3 import S3Server, client, new_bucket, s3_settings

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture(scope="module")
def bucket(s3: S3Server) -> str:
    return new_bucket(s3)


@pytest.fixture(scope="module")
def e2e_plane_env(s3: S3Server, bucket: str) -> dict[str, str]:
    # Artifacts in the S3 store (the blob dir goes unused).
    return s3_settings(s3, bucket) | {"XDP47_S3_PREFIX": "artifacts/"}


@pytest.fixture(scope="module")
def e2e_fleet(e2e_plane: ControlPlane, e2e_group: ProcessGroup, e2e_dir: Path) -> Fleet:
    return start_fleet(
        e2e_plane,
        e2e_group,
        e2e_dir / "devices",
        name=f"s{uuid.uuid4().hex[:6]}",
        size=4,
    )


def _desired(plane: ControlPlane, device_state: Path) -> dict[str, Any]:
    """A device's desired state as ingest answers it, with its own credential."""
    identity = json.loads((device_state / "credential").read_text())
    r = httpx.get(
        f"{plane.ingest_url}/api/devices/{identity['device_id']}/desired",
        headers={"Authorization": f"Bearer {identity['credential']}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.fixture
def s3c(s3: S3Server) -> Any:
    return client(s3)


def test_a_release_in_the_bucket_rolls_out_through_presigned_urls(
    e2e_fleet: Fleet,
    e2e_plane: ControlPlane,
    operator: Operator,
    s3: S3Server,
    s3c: Any,
    bucket: str,
) -> None:
    content = os.urandom(256 * 1024)
    digest = hashlib.sha256(content).hexdigest()
    artifact = operator.upload(content, "5.0.0")
    assert artifact["sha256"] == digest
    key = f"artifacts/sha256/{digest[:2]}/{digest}"
    stored = s3c.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert stored == content
    rollout = operator.rollout(artifact["id"], e2e_fleet.label, waves=2, name="s3")
    operator.start(rollout["id"])
    operator.wait_status(rollout["id"], "completed", within=90)

    for device in e2e_fleet.devices:
        assert device.applied_version == "5.0.0"
        desired = _desired(e2e_plane, device.state_dir)
        assert desired["artifact_id"] == artifact["id"]
        assert desired["sha256"] == digest
        # Not the api's download URL: the bucket's object, signed and short-lived.
        uri = httpx.URL(desired["uri"])
        assert str(uri).startswith(f"{s3.endpoint}/{bucket}/{key}?"), uri
        assert "X-Amz-Signature" in uri.params
        assert uri.params["X-Amz-Expires"] == "3600"
        # The device's Range download of it works against the bucket.
        part = httpx.get(uri, headers={"Range": "bytes=10-19"}, timeout=10)
        assert part.status_code == 206
        assert part.content == content[10:20]


def test_bytes_changed_in_the_bucket_are_refused_by_every_agent(
    e2e_fleet: Fleet, operator: Operator, s3c: Any, bucket: str
) -> None:
    content = os.urandom(128 * 1024)
    digest = hashlib.sha256(content).hexdigest()
    artifact = operator.upload(content, "6.0.0-tampered")
    # Same size, other bytes: only the SHA256 check can tell.
    s3c.put_object(
        Bucket=bucket,
        Key=f"artifacts/sha256/{digest[:2]}/{digest}",
        Body=os.urandom(len(content)),
    )
    # The wave fails at its fourth failure: every device must have refused.
    policy = operator.policy(
        f"all-try-{uuid.uuid4().hex[:6]}",
        max_failures_per_wave=len(e2e_fleet.devices) - 1,
        min_success_ratio=0.0,
    )
    rollout = operator.rollout(
        artifact["id"],
        e2e_fleet.label,
        waves=1,
        policy_id=policy["id"],
        name="tampered",
    )
    operator.start(rollout["id"])
    final = operator.wait_status(rollout["id"], "failed", within=90)
    assert final["current_wave"] == 1, final

    def every_agent_refused() -> None:
        rows = e2e_fleet.rows()
        for device_id, row in rows.items():
            last = row["last_apply"]
            assert last is not None, device_id
            assert last["artifact_id"] == artifact["id"], (device_id, last)
            assert last["result"] == "failed", (device_id, last)
            assert last["code"] == "sha256_mismatch", (device_id, last)
            assert last["reason"].startswith("sha256 mismatch"), (device_id, last)

    wait_until(every_agent_refused, within=60)
    for device in e2e_fleet.devices:
        assert device.applied_version != "6.0.0-tampered"
        assert device.staging() == []
    runs = operator.runs(rollout["id"])
    assert [(r["wave"], r["outcome"]) for r in runs] == [(1, "failed")], runs
