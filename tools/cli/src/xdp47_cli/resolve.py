"""Names instead of UUIDs: what a person types, turned into the id the API wants,
and the ids of API answers turned back into what a person reads.

Every lookup goes through the API with the caller's token, so it only ever sees
the token's tenant: a version, name or prefix of another tenant matches nothing.

- an artifact: its id, or its ``version`` (several artifacts may share one: the
  CLI then lists them and asks for the id);
- a policy: its id, or its ``name`` (unique per tenant);
- a device group: its id, or its ``name`` (unique per tenant);
- a rollout: its id, its exact name, or a prefix of exactly one rollout's name
  (an ambiguous prefix lists the candidates).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from xdp47_cli.client import ApiClient
from xdp47_cli.errors import ApiError, CliError

__all__ = ["NameCache", "artifact_ref", "group_ref", "policy_ref", "rollout_ref"]

SHOWN_CANDIDATES = 10


def _uuid(ref: str) -> UUID | None:
    try:
        return UUID(ref)
    except ValueError:
        return None


def _candidates(rows: Sequence[Mapping[str, Any]], label: str) -> str:
    shown = [f"{r.get(label) or '-'} ({r['id']})" for r in rows[:SHOWN_CANDIDATES]]
    more = len(rows) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def artifact_ref(client: ApiClient, ref: str) -> UUID:
    """The id of the artifact named by ``ref``: an id, or a version."""
    found = _uuid(ref)
    if found is not None:
        return found
    rows = list(client.pages("/api/artifacts", params={"version": ref}))
    if not rows:
        raise CliError(
            f"no artifact with version '{ref}' (and it is not an id); "
            "see `xdp47 artifacts ls`"
        )
    if len(rows) > 1:
        raise CliError(
            f"{len(rows)} artifacts have version '{ref}'; give one's id: "
            + _candidates(rows, "created_at")
        )
    return UUID(rows[0]["id"])


def policy_ref(client: ApiClient, ref: str) -> UUID:
    """The id of the policy named by ``ref``: an id, or a name."""
    found = _uuid(ref)
    if found is not None:
        return found
    rows = [p for p in client.pages("/api/policies") if p.get("name") == ref]
    if not rows:
        raise CliError(
            f"no policy named '{ref}' (and it is not an id); see `xdp47 policies ls`"
        )
    if len(rows) > 1:  # names are unique per tenant; older data may repeat them
        raise CliError(
            f"{len(rows)} policies are named '{ref}'; give one's id: "
            + _candidates(rows, "name")
        )
    return UUID(rows[0]["id"])


def group_ref(client: ApiClient, ref: str) -> UUID:
    """The id of the device group named by ``ref``: an id, or a name (unique
    per tenant)."""
    found = _uuid(ref)
    if found is not None:
        return found
    rows = [g for g in client.pages("/api/groups") if g.get("name") == ref]
    if not rows:
        raise CliError(
            f"no device group named '{ref}' (and it is not an id); "
            "see `xdp47 groups ls`"
        )
    return UUID(rows[0]["id"])


def rollout_ref(client: ApiClient, ref: str) -> UUID:
    """The id of the rollout named by ``ref``: an id, a name, or a prefix of
    exactly one rollout's name (an exact name wins over longer names)."""
    found = _uuid(ref)
    if found is not None:
        return found
    rows = [r for r in client.pages("/api/rollouts") if (r.get("name") or "")]
    exact = [r for r in rows if r["name"] == ref]
    matches = exact or [r for r in rows if r["name"].startswith(ref)]
    if not matches:
        raise CliError(
            f"no rollout whose name starts with '{ref}' (and it is not an id); "
            "see `xdp47 rollouts ls`"
        )
    if len(matches) > 1:
        what = "are named" if exact else "have names starting with"
        raise CliError(
            f"{len(matches)} rollouts {what} '{ref}'; give more of the name or "
            f"the id: {_candidates(matches, 'name')}"
        )
    return UUID(matches[0]["id"])


class NameCache:
    """Artifact versions and policy names by id, each fetched once per command.

    An id the API no longer knows (a deleted artifact) stays an id.
    """

    def __init__(self, client: ApiClient) -> None:
        self._client = client
        self._seen: dict[tuple[str, str], str] = {}

    def _lookup(self, path: str, ident: str | None, field: str) -> str | None:
        if not ident:
            return None
        key = (path, ident)
        if key not in self._seen:
            try:
                answer = self._client.get(f"{path}/{ident}")
            except ApiError as exc:
                if exc.status != 404:
                    raise
                answer = {}
            self._seen[key] = str(answer.get(field) or ident)
        return self._seen[key]

    def artifact_version(self, artifact_id: str | None) -> str | None:
        return self._lookup("/api/artifacts", artifact_id, "version")

    def policy_name(self, policy_id: str | None) -> str | None:
        return self._lookup("/api/policies", policy_id, "name")
