"""The device list pages on the server: 10,000 devices render one page."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI

from tests.integration.api.support import make_tenant, mint
from tests.integration.ui.support import insert_devices, signed_in
from xdp47_api.ui.pages.devices import PAGE_SIZE
from xdp47_common.models import READ_SCOPES

pytestmark = pytest.mark.integration

FLEET = 10_000
ROW = re.compile(r'<tr data-device="([^"]+)"')


async def test_ten_thousand_devices_render_one_page_at_a_time(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    tenant = await make_tenant(pool, "fleet")
    await insert_devices(pool, tenant, [f"d{n:05d}" for n in range(FLEET)])
    async with signed_in(ui_app, await mint(pool, tenant, READ_SCOPES)) as client:
        first = await client.get("/ui/devices")
        assert first.status_code == 200
        rows = ROW.findall(first.text)
        assert rows == [f"d{n:05d}" for n in range(PAGE_SIZE)]
        next_url = re.search(r'href="([^"]+)" rel="next"', first.text)
        assert next_url
        second = await client.get(next_url.group(1).replace("&amp;", "&"))
        assert ROW.findall(second.text) == [
            f"d{n:05d}" for n in range(PAGE_SIZE, 2 * PAGE_SIZE)
        ]
        # filters narrow on the server as well: an id prefix and a version
        narrowed = await client.get("/ui/devices", params={"q": "d0999"})
        assert ROW.findall(narrowed.text) == [f"d0999{n}" for n in range(10)]
        none = await client.get("/ui/devices", params={"version": "9.9.9"})
        assert ROW.findall(none.text) == []
        # the live refresh asks for the fragment only
        fragment = await client.get("/ui/devices", headers={"HX-Request": "true"})
        assert fragment.text.lstrip().startswith('<section id="devices-table"')
        assert len(ROW.findall(fragment.text)) == PAGE_SIZE
