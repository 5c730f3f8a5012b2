"""The UI's forms answer in sentences (never pydantic's raw text), and the
create-rollout form's Waves and percentages cannot contradict each other:
percentages, when given, are the waves."""

from __future__ import annotations

import html
import re
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI

from tests.integration.api.support import make_tenant, mint
from tests.integration.ui.support import post_form, signed_in
from xdp47_common.models import ALL_SCOPES

pytestmark = pytest.mark.integration

RAW = ("String should", "List should", "Input should", "Value error", "pattern '")


def _field_error(text: str, name: str) -> str:
    found = re.search(rf'id="{name}-error">([^<]*)<', text)
    assert found, (name, text[:300])
    message = html.unescape(found.group(1))
    assert not any(raw in message for raw in RAW), message
    return message


async def test_forms_say_what_is_wrong_in_words(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    tenant = await make_tenant(pool, "msg")
    async with signed_in(ui_app, await mint(pool, tenant, ALL_SCOPES)) as client:
        artifact = await post_form(
            client,
            "/ui/artifacts",
            "/ui/artifacts",
            {"uri": "https://x.example/a", "sha256": "nothex", "size": "big"},
        )
        assert artifact.status_code == 422
        assert _field_error(artifact.text, "sha256") == (
            "SHA256 must be 64 hexadecimal characters (0-9, a-f)"
        )
        assert _field_error(artifact.text, "size") == (
            "Size in bytes must be a whole number, not 'big'"
        )
        token = await post_form(
            client, "/ui/tenants", "/ui/tenants/tokens", {"name": "ci"}
        )
        assert token.status_code == 422
        assert _field_error(token.text, "scopes") == "Choose at least 1 scope"
        policy = await post_form(
            client,
            "/ui/policies",
            "/ui/policies",
            {"name": "p", "min_success_ratio": "2", "grace_seconds": "soon"},
        )
        assert policy.status_code == 422
        assert "at most 1" in _field_error(policy.text, "min_success_ratio")
        assert _field_error(policy.text, "grace_seconds") == (
            "Grace seconds must be a whole number"
        )
        analysed = await post_form(
            client,
            "/ui/policies",
            "/ui/policies",
            {"name": "a", "analysis_checks": "cpu: updated / baseline <= 1.3\nerr: x"},
        )
        assert analysed.status_code == 422
        assert _field_error(analysed.text, "analysis_checks") == (
            "Invalid check 'err: x': expected 'updated' at position 6, found 'x'"
        )
        created = await post_form(
            client,
            "/ui/policies",
            "/ui/policies",
            {
                "name": "no-worse",
                "analysis_checks": "error_rate: updated - baseline <= 0.02\n",
                "analysis_min_devices": "4",
            },
        )
        assert created.status_code == 303, created.text[:300]
        listed = (await client.get(created.headers["location"])).text
        assert "error_rate: updated - baseline &lt;= 0.02" in listed
        assert "min 4 devices a side" in listed
        rollout = await post_form(
            client,
            "/ui/rollouts",
            "/ui/rollouts",
            {"artifact_id": "", "percentages": "30, 30", "waves": "3"},
        )
        assert rollout.status_code == 422
        assert _field_error(rollout.text, "artifact_id") == "Choose an artifact"
        assert _field_error(rollout.text, "percentages") == (
            "Wave percentages must sum to 100, got 60"
        )
        assert 'id="waves-error"' not in rollout.text
        # the form comes back showing the wave count the percentages make
        assert re.search(r'name="waves" value="2"', rollout.text)


async def test_percentages_define_the_waves(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    tenant = await make_tenant(pool, "msg")
    async with signed_in(ui_app, await mint(pool, tenant, ALL_SCOPES)) as client:
        registered = await post_form(
            client,
            "/ui/artifacts",
            "/ui/artifacts",
            {"uri": "https://x.example/a", "sha256": "ab" * 32, "version": "1"},
        )
        artifact_id = registered.headers["location"].split("created=")[1]
        page = await client.get("/ui/rollouts")
        # the form's default is 3 waves ...
        assert re.search(r'name="waves" value="3"', page.text)
        for waves, percentages, expected in (
            ("3", "25, 75", [25, 75]),  # ... which percentages override
            ("", "10 20 70", [10, 20, 70]),
            ("4", "", None),
        ):
            created = await post_form(
                client,
                "/ui/rollouts",
                "/ui/rollouts",
                {
                    "artifact_id": artifact_id,
                    "waves": waves,
                    "percentages": percentages,
                },
            )
            assert created.status_code == 303, _field_error(created.text, "waves")
            rollout_id = created.headers["location"].rsplit("/", 1)[1]
            row = await pool.fetchrow(
                "SELECT waves, wave_percentages FROM rollouts WHERE id = $1",
                rollout_id,
            )
            assert row is not None
            assert row["wave_percentages"] == expected
            assert row["waves"] == (len(expected) if expected else int(waves))


async def test_a_second_policy_of_one_name_is_a_field_error_and_names_stay_distinct(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    tenant = await make_tenant(pool, "pname")
    async with signed_in(ui_app, await mint(pool, tenant, ALL_SCOPES)) as client:
        first = await post_form(
            client, "/ui/policies", "/ui/policies", {"name": "careful"}
        )
        assert first.status_code == 303, first.text[:300]
        again = await post_form(
            client,
            "/ui/policies",
            "/ui/policies",
            {"name": "careful", "grace_seconds": "5"},
        )
        assert again.status_code == 409
        assert _field_error(again.text, "name") == (
            "a policy named 'careful' already exists"
        )
        # the form keeps what was typed
        assert re.search(r'name="grace_seconds" value="5"', again.text)
        form = await client.get("/ui/rollouts")
        options = re.findall(r'<option value="[0-9a-f-]{36}"[^>]*>([^<]*)<', form.text)
    assert options.count("careful") == 1
