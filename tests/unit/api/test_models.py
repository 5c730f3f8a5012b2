"""Validation of the API's write models: field rules and unknown fields."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from xdp47_common.models import (
    ApiTokenCreate,
    ArtifactCreate,
    DeviceClaim,
    PolicyCreate,
    RolloutCreate,
    TenantCreate,
)

SHA = "AB" * 32
ART = {"tenant": "acme", "uri": "https://e.com/a", "sha256": SHA}


def _fields(exc: ValidationError) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in exc.errors()}


def test_artifact_sha_is_lowered():
    assert ArtifactCreate(**ART).sha256 == SHA.lower()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sha256": "a" * 63}, "sha256"),
        ({"uri": "file:///etc/passwd"}, "uri"),
        ({"tenant": "Upper"}, "tenant"),
        ({"metadata": {"k": "x" * 20_000}}, "metadata"),
        ({"nope": 1}, "nope"),
    ],
)
def test_artifact_rejects(change, field):
    with pytest.raises(ValidationError) as exc:
        ArtifactCreate(**(ART | change))
    assert field in _fields(exc.value)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tenant": "acme", "labels": {"k": "a=b"}}, "labels.k"),
        ({"tenant": "acme", "device_id": "../etc"}, "device_id"),
        ({"tenant": "acme", "extra": True}, "extra"),
    ],
)
def test_claim_rejects(body, field):
    with pytest.raises(ValidationError) as exc:
        DeviceClaim(**body)
    assert any(f.startswith(field) for f in _fields(exc.value))


def test_rollout_waves_follow_percentages():
    r = RolloutCreate(
        tenant="acme", artifact_id=uuid.uuid4(), wave_percentages=[20, 80]
    )
    assert r.waves == 2
    with pytest.raises(ValidationError, match="sum to 100"):
        RolloutCreate(tenant="acme", artifact_id=uuid.uuid4(), wave_percentages=[20])
    with pytest.raises(ValidationError, match="waves is 3"):
        RolloutCreate(
            tenant="acme", artifact_id=uuid.uuid4(), waves=3, wave_percentages=[50, 50]
        )


def test_policy_bounds():
    with pytest.raises(ValidationError) as exc:
        PolicyCreate(tenant="acme", name="p", min_success_ratio=1.5, grace_seconds=-1)
    assert _fields(exc.value) == {"min_success_ratio", "grace_seconds"}


def test_token_and_tenant_create():
    assert ApiTokenCreate(name="n", scopes=["devices:write"]).expires_in_days == 90
    with pytest.raises(ValidationError):
        ApiTokenCreate(name="n", scopes=["root"])
    with pytest.raises(ValidationError):
        TenantCreate(id="-leading-dash")
