"""The API contract is exact: every ``$ref`` of both OpenAPI documents resolves,
every integer a client sends is bounded (so none overflows a database column),
and the request models refuse what the schema refuses, naming the field: NUL in
text, a blank name, ``true`` for a number, a number for a date-time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from tests.security.support import api_settings, ingest_settings
from xdp47_api.app import create_app
from xdp47_common.messages import HeartbeatBody
from xdp47_common.models import (
    ApiTokenCreate,
    ArtifactCreate,
    DeviceClaim,
    PolicyCreate,
    RolloutCreate,
    TenantCreate,
)
from xdp47_common.models.base import INT32_MAX
from xdp47_common.web.errors import format_validation_errors
from xdp47_ingest.app import create_app as create_ingest

_DB = "postgresql://nobody@127.0.0.1:1/none"
_AMQP = "amqp://nobody:nobody@127.0.0.1:1/"
_AID = "0e0e0e0e-0e0e-4e0e-8e0e-0e0e0e0e0e0e"


def _documents(tmp: Path) -> dict[str, dict[str, Any]]:
    api = create_app(api_settings(_DB, _AMQP, "contract", tmp / "blobs"))
    ingest = create_ingest(ingest_settings(_DB, _AMQP, "contract"))
    return {"api": api.openapi(), "ingest": ingest.openapi()}


def _walk(node: Any, path: str = "#") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}/{i}")


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


@pytest.mark.parametrize("service", ["api", "ingest"])
def test_every_reference_resolves(tmp_path: Path, service: str):
    doc = _documents(tmp_path)[service]
    refs = [
        (where, node["$ref"])
        for where, node in _walk(doc)
        if isinstance(node, dict) and isinstance(node.get("$ref"), str)
    ]
    assert refs
    unresolved = []
    for where, ref in refs:
        try:
            _resolve(doc, ref)
        except (KeyError, AssertionError):
            unresolved.append(f"{where}: {ref}")
    assert not unresolved


def test_heartbeat_body_is_described(tmp_path: Path):
    doc = _documents(tmp_path)["ingest"]
    op = doc["paths"]["/api/devices/{device_id}/heartbeat"]["post"]
    schema = _resolve(
        doc, op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    )
    assert set(schema["properties"]) >= {"seq", "last_apply", "metrics"}


def _request_schemas(doc: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Everything a client sends: request bodies (with what they reference)
    and parameters."""
    seen: set[str] = set()
    todo: list[tuple[str, Any]] = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for param in op.get("parameters", []):
                todo.append((f"{method} {path} {param['name']}", param["schema"]))
            for media in op.get("requestBody", {}).get("content", {}).values():
                todo.append((f"{method} {path} body", media["schema"]))
    while todo:
        where, schema = todo.pop()
        for inner_where, node in _walk(schema, where):
            if not isinstance(node, dict):
                continue
            ref = node.get("$ref")
            if isinstance(ref, str) and ref not in seen:
                seen.add(ref)
                todo.append((ref, _resolve(doc, ref)))
            yield inner_where, node


@pytest.mark.parametrize("service", ["api", "ingest"])
def test_every_integer_a_client_sends_is_bounded(tmp_path: Path, service: str):
    doc = _documents(tmp_path)[service]
    unbounded = [
        where
        for where, node in _request_schemas(doc)
        if node.get("type") == "integer"
        and not ("maximum" in node and "minimum" in node)
    ]
    assert not unbounded


def _refusal(model: type[BaseModel], data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        model.model_validate_json(json.dumps(data))
    return format_validation_errors(info.value.errors())[0]


_TOKEN = {"name": "ci", "scopes": ["rollouts:read"]}
_POLICY = {"tenant": "acme", "name": "p"}


@pytest.mark.parametrize(
    ("model", "data", "expected"),
    [
        (PolicyCreate, {**_POLICY, "name": "a\x00b"}, "name: must not"),
        (TenantCreate, {"id": "acme", "name": "x\x00"}, "name: must not"),
        (ApiTokenCreate, {**_TOKEN, "name": "\x00"}, "name: must not"),
        (
            ArtifactCreate,
            {
                "tenant": "acme",
                "uri": "https://a.test/x",
                "sha256": "a" * 64,
                "metadata": {"k": ["x\x00"]},
            },
            "metadata: must not contain the NUL character",
        ),
        (DeviceClaim, {"tenant": "acme", "labels": {"k": "v\x00"}}, "labels.k"),
        (HeartbeatBody, {"seq": 1, "current_version": "1\x00"}, "current_version"),
        (
            HeartbeatBody,
            {
                "seq": 1,
                "last_apply": {
                    "artifact_id": _AID,
                    "result": "failed",
                    "reason": "r\x00",
                },
            },
            "last_apply.reason: must not contain",
        ),
    ],
)
def test_nul_is_refused_naming_the_field(model, data, expected):
    assert expected in _refusal(model, data)


@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        (ApiTokenCreate, {**_TOKEN, "expires_in_days": True}, "expires_in_days"),
        (
            RolloutCreate,
            {"tenant": "acme", "artifact_id": _AID, "waves": True},
            "waves",
        ),
        (PolicyCreate, {**_POLICY, "grace_seconds": True}, "grace_seconds"),
        (PolicyCreate, {**_POLICY, "require_ok": "yes"}, "require_ok"),
        (
            PolicyCreate,
            {**_POLICY, "max_failures_per_wave": INT32_MAX + 1},
            "max_failures_per_wave",
        ),
        (HeartbeatBody, {"seq": True}, "seq"),
        (
            HeartbeatBody,
            {"seq": 1, "last_apply": {"artifact_id": _AID, "result": "ok", "at": 0}},
            "last_apply.at",
        ),
    ],
)
def test_no_coercion_surprises(model, data, field):
    assert _refusal(model, data).startswith(f"{field}:")


@pytest.mark.parametrize("model", [PolicyCreate, TenantCreate, ApiTokenCreate])
def test_a_blank_name_fails_the_schema_rule(model):
    """The schema's pattern refuses white space only, as the model does (it
    trims first), so a schema-valid name is never refused after trimming."""
    import re

    pattern = model.model_json_schema()["properties"]["name"]
    rule = pattern.get("pattern") or next(
        s["pattern"] for s in pattern["anyOf"] if "pattern" in s
    )
    assert re.search(rule, " \t ") is None
    assert re.search(rule, " a ") is not None
    base = (
        {"id": "acme"}
        if model is TenantCreate
        else (_TOKEN if model is ApiTokenCreate else _POLICY)
    )
    assert "name:" in _refusal(model, {**base, "name": "   "})
