"""Form errors are sentences for people, from one mapping of pydantic's records:
no regular expression, no "List should have", no "Input should be"."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from xdp47_api.ui.forms import errors_from_validation
from xdp47_common.models import (
    ApiTokenCreate,
    ArtifactCreate,
    PolicyCreate,
    RolloutCreate,
)

RAW = ("String should", "List should", "Input should", "Value error", "pattern '")


def _errors(model: type[BaseModel], data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    errors = errors_from_validation(caught.value)
    for message in errors.values():
        assert not any(raw in message for raw in RAW), message
    return errors


def test_artifact_fields() -> None:
    errors = _errors(
        ArtifactCreate,
        {"tenant": "t", "uri": "ftp://x", "sha256": "nothex", "version": "v" * 129},
    )
    assert errors["sha256"] == "SHA256 must be 64 hexadecimal characters (0-9, a-f)"
    assert errors["uri"] == "URI must start with http:// or https://"
    assert errors["version"] == "Version must be at most 128 characters"
    fine = {"tenant": "t", "uri": "https://x", "sha256": "a" * 64}
    size = _errors(ArtifactCreate, {**fine, "size": -1})
    assert size == {"size": "Size in bytes must be at least 0"}


def test_token_fields() -> None:
    errors = _errors(ApiTokenCreate, {"name": "", "scopes": [], "expires_in_days": "x"})
    assert errors == {
        "name": "Name is required",
        "scopes": "Choose at least 1 scope",
        "expires_in_days": "Expires in days must be a whole number",
    }
    unknown = _errors(ApiTokenCreate, {"name": "a", "scopes": ["nope"]})
    assert unknown["scopes"].startswith("Scopes: 'nope' is not one of")


def test_rollout_and_policy_fields() -> None:
    errors = _errors(
        RolloutCreate,
        {
            "tenant": "t",
            "artifact_id": "zz",
            "channel": "BAD CH",
            "wave_percentages": [30, 30],
            "selector": {"a b": "c"},
        },
    )
    assert errors["artifact_id"] == "Artifact 'zz' is not a valid id"
    assert errors["channel"].startswith("Channel must be lowercase letters")
    assert errors["wave_percentages"] == "Wave percentages must sum to 100, got 60"
    # the one selector parser's own sentence (xdp47_common.selectors)
    assert errors["selector"].startswith("'a b' is not a label key")
    policy = _errors(
        PolicyCreate,
        {"tenant": "t", "name": "p", "min_success_ratio": "1.5", "grace_seconds": "x"},
    )
    assert policy == {
        "min_success_ratio": "Minimum success ratio must be at most 1.0",
        "grace_seconds": "Grace seconds must be a whole number",
    }
    whole = _errors(
        RolloutCreate,
        {
            "tenant": "t",
            "artifact_id": str(uuid.uuid4()),
            "waves": 3,
            "wave_percentages": [25, 75],
        },
    )
    assert "form" in whole  # a model-level error has no field: shown on the form
