"""Per-invocation state: the global options, where to reach the API, and the
injectable edges (HTTP transport, clock, sleep) that unit tests replace.

Resolution order for each of URL, token and tenant: the global option, then its
environment variable (``XDP47_URL``, ``XDP47_TOKEN``, ``XDP47_TENANT``; typer reads
those into the options), then the selected context (``--context`` /
``XDP47_CONTEXT``, else the current one) from the config file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import typer

from xdp47_cli.client import ApiClient
from xdp47_cli.config import Context, load_config
from xdp47_cli.errors import CliError

__all__ = ["Runtime", "runtime"]


@dataclass
class Runtime:
    url: str | None = None
    token: str | None = None
    tenant: str | None = None
    context: str | None = None
    transport: httpx.BaseTransport | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _stored: Context | None = field(default=None, init=False, repr=False)

    def stored(self) -> Context | None:
        """The selected stored context, if any."""
        if self._stored is None:
            config = load_config()
            name = self.context or config.current
            if name is not None:
                found = config.contexts.get(name)
                if found is None and self.context is not None:
                    raise CliError(f"no context named '{name}'; see `xdp47 context ls`")
                self._stored = found
        return self._stored

    def client(self) -> ApiClient:
        stored = self.stored()
        url = self.url or (stored.url if stored else None)
        token = self.token or (stored.token if stored else None)
        if not url or not token:
            raise CliError(
                "no API to talk to: run `xdp47 login --url URL --token TOKEN`, "
                "or set XDP47_URL and XDP47_TOKEN"
            )
        return ApiClient(url, token, transport=self.transport)

    def require_tenant(self, explicit: str | None = None) -> str:
        """The tenant to write into request bodies."""
        if explicit:
            return explicit
        if self.tenant:
            return self.tenant
        stored = self.stored()
        if stored is not None and stored.tenant:
            return stored.tenant
        raise CliError(
            "no tenant known for this context: pass --tenant, set XDP47_TENANT, "
            "or log in again with --tenant"
        )


def runtime(ctx: typer.Context) -> Runtime:
    """The Runtime the root callback put on the click context."""
    obj = ctx.find_root().obj
    if not isinstance(obj, Runtime):
        raise CliError("internal: the CLI was invoked without its root callback")
    return obj
