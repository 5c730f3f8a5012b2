"""Token names where a person reads who did something.

Commands record who sent them as ``token:<id>`` (``Principal.actor``), and the
scheduler writes that into reasons ("aborted by token:…"): the id is unique and
never changes, so the API and the CLI keep it. The UI resolves it to the token's
name when it renders, in one query per page, so a rollout's status reason and its
runs read "aborted by token “ops-oncall”". An id that is not one of the tenant's
tokens stays as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from uuid import UUID

from xdp47_api.state import Services
from xdp47_api.usecases import tokens
from xdp47_common.models import Rollout, RolloutRun

__all__ = ["name_tokens", "named_rollouts", "token_names"]

_HEX = "[0-9a-fA-F]"
TOKEN_REF = re.compile(
    rf"token:({_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}})"
)


def _ids(texts: Iterable[str | None]) -> set[UUID]:
    return {UUID(m) for text in texts if text for m in TOKEN_REF.findall(text)}


async def token_names(
    services: Services, tenant: str, texts: Iterable[str | None]
) -> dict[UUID, str]:
    """The names of the tenant's tokens referred to in ``texts``."""
    ids = _ids(texts)
    if not ids:
        return {}
    return await tokens.names(services, tenant, ids)


def name_tokens(text: str | None, names: Mapping[UUID, str]) -> str | None:
    """``text`` with each ``token:<id>`` of ``names`` replaced by its name."""
    if not text:
        return text

    def named(match: re.Match[str]) -> str:
        name = names.get(UUID(match.group(1)))
        return match.group(0) if name is None else f"token “{name}”"

    return TOKEN_REF.sub(named, text)


async def named_rollouts(
    services: Services,
    tenant: str,
    rollouts: Sequence[Rollout],
    runs: Sequence[RolloutRun] = (),
) -> tuple[list[Rollout], list[RolloutRun]]:
    """Copies of ``rollouts`` and ``runs`` whose reasons name tokens by name."""
    names = await token_names(
        services, tenant, [r.reason for r in rollouts] + [r.reason for r in runs]
    )
    if not names:
        return list(rollouts), list(runs)
    return (
        [
            r.model_copy(update={"reason": name_tokens(r.reason, names)})
            for r in rollouts
        ],
        [r.model_copy(update={"reason": name_tokens(r.reason, names)}) for r in runs],
    )
