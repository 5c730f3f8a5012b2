"""Schemathesis against the OpenAPI documents of api and ingest, in process over
ASGI, with the real PostgreSQL and RabbitMQ behind.

Every operation gets positive and negative cases (bounded, so both services take
well under two minutes), with a token (api) or device credential (ingest) of one
of two tenants that hold data; operations with ids also get cases aimed at the
tenants' real objects, across tenants too. All default checks run: no 5xx,
declared status codes, content types and headers, response bodies valid against
their schemas, negative data rejected, auth not ignored. Failures are collected
over the whole run and reported together.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import HypothesisException
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.python.asgi import shutdown_lifespans

from tests.security.support import (
    TenantData,
    api_app,
    api_settings,
    drop_namespace,
    ingest_app,
    ingest_settings,
    make_tenant_data,
)

pytestmark = [pytest.mark.integration, pytest.mark.security]

# Examples per operation and generation mode (XDP47_FUZZ_EXAMPLES for a soak run).
EXAMPLES = int(os.environ.get("XDP47_FUZZ_EXAMPLES", "20"))
_ID_PARAMS = ("device_id", "artifact_id", "rollout_id", "policy_id", "token_id")


@pytest.fixture(scope="module")
async def tenants(security_pool: Any) -> list[TenantData]:
    return [
        await make_tenant_data(security_pool, "fuzz-a"),
        await make_tenant_data(security_pool, "fuzz-b"),
    ]


# Schema-valid data may still be refused with 422 by rules a JSON schema cannot
# state: an opaque cursor the server never issued, wave percentages that must sum
# to 100, an artifact_id that is no artifact of the tenant. Everything else of
# positive_data_acceptance's defaults stays.
POSITIVE_OK = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]


def config_for(scheme: str, secret: str) -> SchemathesisConfig:
    """Bearer auth for the security scheme (``bearer`` on api, ``device`` on
    ingest), so negative cases that drop or break the header stay negative; all
    default checks."""
    return SchemathesisConfig.from_dict(
        {
            "auth": {"openapi": {scheme: {"bearer": secret}}},
            "checks": {"positive_data_acceptance": {"expected-statuses": POSITIVE_OK}},
        }
    )


class Fuzz:
    """Runs cases of every operation and keeps the tally."""

    def __init__(self) -> None:
        self.cases = 0
        self.operations = 0
        self.failures: dict[str, str] = {}

    def run(self, strategy: Any, label: str) -> None:
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def one(case: Any) -> None:
            self.cases += 1
            try:
                case.call_and_validate()
            except FailureGroup as exc:
                for failure in exc.exceptions:
                    key = f"{label}: {failure.title}"
                    self.failures.setdefault(key, str(exc)[:2000])

        try:
            one()
        except HypothesisException as exc:  # no case can be built for this mode
            if "Unsatisfiable" not in type(exc).__name__:
                raise

    def operation(self, op: Any, fixed: list[dict[str, str]]) -> None:
        self.operations += 1  # counted once per tenant; halved in the figure
        label = f"{op.method.upper()} {op.path}"
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            self.run(op.as_strategy(generation_mode=mode), f"{label} [{mode.value}]")
        names = {p.name for p in op.path_parameters}
        for values in fixed:
            chosen = {k: v for k, v in values.items() if k in names}
            if chosen:
                self.run(op.as_strategy(path_parameters=chosen), f"{label} [real ids]")

    def report(self, service: str, figure: Callable[[str], None]) -> None:
        figure(
            f"SCHEMATHESIS {service}: operations={self.operations // 2} "
            f"cases={self.cases} failures={len(self.failures)}"
        )
        assert not self.failures, "\n\n".join(
            f"{k}\n{v}" for k, v in sorted(self.failures.items())
        )


def _ids(t: TenantData) -> dict[str, str]:
    return {
        "device_id": t.device_id,
        "artifact_id": t.artifact_id,
        "rollout_id": t.rollout_id,
        "policy_id": t.policy_id,
    }


def test_api_schema(
    security_db_url: str,
    amqp_url: str,
    amqp_namespace: str,
    tenants: list[TenantData],
    tmp_path: Path,
    figure: Callable[[str], None],
) -> None:
    namespace = f"{amqp_namespace}_fuzzapi"
    settings_ = api_settings(
        security_db_url, amqp_url, namespace, tmp_path / "blobs", rate_limit="off"
    )
    app = api_app(settings_)
    fuzz = Fuzz()
    fixed = [_ids(t) for t in tenants]
    try:
        for tenant in tenants:  # each tenant's token, on its own and on both ids
            config = config_for("bearer", tenant.token)
            schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
            for result in schema.get_all_operations():
                op = result.ok()  # type: ignore[union-attr]
                if op.path.startswith("/api/"):  # not health/metrics: no input
                    fuzz.operation(op, fixed)
    finally:
        shutdown_lifespans()
        _run(drop_namespace(amqp_url, namespace))
    fuzz.report("api", figure)


def test_ingest_schema(
    security_db_url: str,
    amqp_url: str,
    amqp_namespace: str,
    tenants: list[TenantData],
    figure: Callable[[str], None],
) -> None:
    namespace = f"{amqp_namespace}_fuzzing"
    app = ingest_app(
        ingest_settings(security_db_url, amqp_url, namespace, device_rate_limit="off")
    )
    fuzz = Fuzz()
    # Own device ids reach the real path (body validation, publish); the other
    # tenant's device id must answer 403.
    fixed = [{"device_id": t.device_id} for t in tenants]
    try:
        for tenant in tenants:
            config = config_for("device", tenant.device_credential)
            schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
            for result in schema.get_all_operations():
                op = result.ok()  # type: ignore[union-attr]
                if op.path.startswith("/api/"):
                    fuzz.operation(op, fixed)
    finally:
        shutdown_lifespans()
        _run(drop_namespace(amqp_url, namespace))
    fuzz.report("ingest", figure)


def _run(coro: Any) -> Any:
    from tests.support.control_plane import run_async

    return run_async(coro)
