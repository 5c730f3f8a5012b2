"""Published contracts cannot change by accident.

Every message model on RabbitMQ, and the device protocol bodies, has its JSON
schema stored under ``tests/contract/schemas/``. A change to a published model
fails here. Adding an optional field keeps the version: regenerate the snapshot
consciously with ``XDP47_UPDATE_CONTRACTS=1 uv run pytest tests/contract`` and
commit it. Renaming, removing or retyping a field needs a new ``…V2`` model with
``version: Literal[2]``, decoded beside the old one until it retires; give it its
own snapshot and leave the old one untouched.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import BaseModel

from xdp47_common.messages import (
    AbortRollout,
    ApproveRollout,
    DesiredState,
    Envelope,
    HeartbeatBatch,
    HeartbeatBody,
    HeartbeatReceived,
    PauseRollout,
    PromoteRollout,
    ResumeRollout,
    RetryRollout,
    RollbackRollout,
    RolloutEvent,
    StartRollout,
    WebhookJob,
)

SCHEMAS = Path(__file__).parent / "schemas"
UPDATE = os.environ.get("XDP47_UPDATE_CONTRACTS") == "1"

PUBLISHED: list[type[BaseModel]] = [
    HeartbeatReceived,
    HeartbeatBatch,
    StartRollout,
    RetryRollout,
    AbortRollout,
    RollbackRollout,
    PauseRollout,
    ResumeRollout,
    ApproveRollout,
    PromoteRollout,
    RolloutEvent,
    WebhookJob,
    # The device protocol: agents in the field speak these and update slowly.
    HeartbeatBody,
    DesiredState,
]


def _schema(model: type[BaseModel]) -> str:
    return json.dumps(
        model.model_json_schema(mode="validation"), indent=2, sort_keys=True
    )


@pytest.mark.parametrize("model", PUBLISHED, ids=lambda m: m.__name__)
def test_schema_matches_snapshot(model: type[BaseModel]) -> None:
    path = SCHEMAS / f"{model.__name__}.json"
    current = _schema(model) + "\n"
    if UPDATE:
        SCHEMAS.mkdir(exist_ok=True)
        path.write_text(current)
    assert path.exists(), (
        f"no snapshot for {model.__name__}: run XDP47_UPDATE_CONTRACTS=1 "
        "uv run pytest tests/contract and commit the new file"
    )
    assert path.read_text() == current, (
        f"the published schema of {model.__name__} changed. Adding an optional "
        "field: regenerate with XDP47_UPDATE_CONTRACTS=1 uv run pytest "
        "tests/contract. Renaming, removing or retyping: add a "
        f"{model.__name__}V2 model with the next version instead."
    )


@pytest.mark.parametrize(
    "model",
    [m for m in PUBLISHED if issubclass(m, Envelope)],
    ids=lambda m: m.__name__,
)
def test_envelope_pins_type_and_version(model: type[BaseModel]) -> None:
    """Every envelope states its type and version as constants, so decoding is exact."""
    schema = model.model_json_schema()
    assert "const" in schema["properties"]["type"]
    assert "const" in schema["properties"]["version"]
