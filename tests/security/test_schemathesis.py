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
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import HypothesisException
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.python.asgi import shutdown_lifespans

from tests.integration.api.support import mint
from tests.security.support import (
    TenantData,
    api_app,
    api_settings,
    ingest_app,
    ingest_settings,
    make_tenant_data,
)
from tests.support.amqp import drop_namespace
from xdp47_common.models import ALL_SCOPES
from xdp47_common.tokens import hash_secret

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
# Invalid data must be refused: negative_data_rejection's defaults, plus 413 (a
# body over XDP47_MAX_BODY_BYTES is refused before it is parsed, e.g. a selector
# list far past its maxItems).
NEGATIVE_REFUSED = [
    "400",
    "401",
    "403",
    "404",
    "405",
    "406",
    "409",
    "413",
    "415",
    "422",
    "428",
    "429",
    "5xx",
]


def config_for(scheme: str, secret: str) -> SchemathesisConfig:
    """Bearer auth for the security scheme (``bearer`` on api, ``device`` on
    ingest), so negative cases that drop or break the header stay negative; all
    default checks."""
    return SchemathesisConfig.from_dict(
        {
            "auth": {"openapi": {scheme: {"bearer": secret}}},
            "checks": {
                "positive_data_acceptance": {"expected-statuses": POSITIVE_OK},
                "negative_data_rejection": {"expected-statuses": NEGATIVE_REFUSED},
            },
        }
    )


class Fuzz:
    """Runs cases of every operation and keeps the tally."""

    def __init__(self) -> None:
        self.cases = 0
        self.operations = 0
        self.failures: dict[str, str] = {}
        # (label, status) → answers: proves what the cases reached.
        self.statuses: Counter[tuple[str, int]] = Counter()

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
                response = case.call_and_validate()
                self.statuses[(label, response.status_code)] += 1
            except FailureGroup as exc:
                for failure in exc.exceptions:
                    key = f"{label}: {failure.title}"
                    self.failures.setdefault(key, str(exc)[:2000])

        try:
            one()
        except HypothesisException as exc:  # no case can be built for this mode
            if "Unsatisfiable" not in type(exc).__name__:
                raise

    def operation(
        self, op: Any, fixed: list[dict[str, str]], *, generate: bool = True
    ) -> None:
        """Cases of ``op``: generated ones (positive and negative) when
        ``generate``, and ones on each set of ``fixed`` ids it takes."""
        self.operations += 1  # counted once per tenant; halved in the figure
        label = f"{op.method.upper()} {op.path}"
        if generate:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                self.run(
                    op.as_strategy(generation_mode=mode), f"{label} [{mode.value}]"
                )
        names = {p.name for p in op.path_parameters}
        for values in fixed:
            chosen = {k: v for k, v in values.items() if k in names}
            if chosen:
                self.run(op.as_strategy(path_parameters=chosen), f"{label} [real ids]")

    def answered(self, label: str, status: int) -> int:
        return self.statuses[(label, status)]

    def report(self, service: str, figure: Callable[[str], None]) -> None:
        figure(
            f"SCHEMATHESIS {service} (schemathesis {schemathesis.__version__}): "
            f"operations={self.operations // 2} "
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
    # Revoking a token is fuzzed with a throwaway token of each tenant, aimed at
    # that token's own id: the run never revokes the token the rest of it uses
    # (every later case would be a 401 and test nothing).
    throwaway = {
        t.tenant: _run(_throwaway_token(security_db_url, t.tenant)) for t in tenants
    }
    fixed = [{**_ids(t), "token_id": throwaway[t.tenant][1]} for t in tenants]
    try:
        # Each tenant's token on both tenants' ids (its own reach the real path,
        # the other's must answer 404). Generated cases name no tenant's ids, so
        # they run under the first tenant's token only: a second token would
        # send the same kind of case down the same code again.
        for n, tenant in enumerate(tenants):
            for secret, revoking in (
                (tenant.token, False),
                (throwaway[tenant.tenant][0], True),
            ):
                config = config_for("bearer", secret)
                schema = schemathesis.openapi.from_asgi(
                    "/openapi.json", app, config=config
                )
                for result in schema.get_all_operations():
                    op = result.ok()  # type: ignore[union-attr]
                    # not health/metrics: no input
                    if op.path.startswith("/api/") and _revokes(op) == revoking:
                        fuzz.operation(op, fixed, generate=n == 0)
    finally:
        shutdown_lifespans()
        _run(drop_namespace(amqp_url, namespace))
    revoked = _run(_revoked(security_db_url, [t.token for t in tenants]))
    figure(f"SCHEMATHESIS api: own tokens revoked during the run={revoked}")
    fuzz.report("api", figure)
    assert revoked == 0


def _revokes(op: Any) -> bool:
    """The operations that revoke a token."""
    return bool(
        op.path.startswith("/api/tokens/{token_id}")
        and (op.method.upper() == "DELETE" or op.path.endswith(":revoke"))
    )


async def _throwaway_token(db_url: str, tenant: str) -> tuple[str, str]:
    """A token with every scope, made to be revoked: (secret, id)."""
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=1)
    try:
        secret = await mint(pool, tenant, ALL_SCOPES, name="fuzz-throwaway")
        token_id = await pool.fetchval(
            "SELECT id FROM api_tokens WHERE token_hash = $1", hash_secret(secret)
        )
    finally:
        await pool.close()
    return secret, str(token_id)


async def _revoked(db_url: str, secrets: list[str]) -> int:
    conn = await asyncpg.connect(db_url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM api_tokens WHERE token_hash = ANY($1) "
                "AND revoked_at IS NOT NULL",
                [hash_secret(s) for s in secrets],
            )
        )
    finally:
        await conn.close()


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
        # Generated cases under both devices' credentials (unlike the api): a
        # few seconds, and the heartbeat's 422 count below needs the numbers.
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
    # The heartbeat body is fuzzed, not just its path: generated bodies were
    # accepted (202, published) and broken ones refused (422).
    beat = "POST /api/devices/{device_id}/heartbeat"
    accepted = fuzz.answered(f"{beat} [real ids]", 202)
    refused = fuzz.answered(f"{beat} [negative]", 422)
    figure(f"SCHEMATHESIS ingest heartbeat bodies: 202={accepted} 422={refused}")
    fuzz.report("ingest", figure)
    assert accepted > 0
    assert refused > 0


def _run(coro: Any) -> Any:
    from tests.support.control_plane import run_async

    return run_async(coro)
