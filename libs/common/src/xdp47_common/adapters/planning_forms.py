"""The forms of the planning statements: which conditions a rollout needs.

A condition that holds for every device of a rollout (no compatibility declared,
no group named, not a rollback) is left out of its statements: left in, each is
a predicate PostgreSQL cannot estimate, and a low estimate of the matched
devices turned a hash join into an index probe per device (docs/performance.md,
B3). ``planning`` and ``plan_preview`` build each statement once per form
(``by_form``) and run the one ``planning_form`` names, in the transaction it
readied.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, NamedTuple, TypeAlias
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

__all__ = [
    "FORMS",
    "FULL_FORM",
    "Connection",
    "PlanningForm",
    "by_form",
    "planning_form",
]

Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"


class PlanningForm(NamedTuple):
    """Which conditions a rollout's planning statements carry (``planning_form``).

    Each flag left False drops a condition that holds for every device of the
    rollout anyway: ``compat``, the per-device compatibility check (its artifact
    declares none); ``group``, the group membership (it names no group);
    ``rollback``, the rollback membership (it is not a rollback). Left in, each
    is a predicate PostgreSQL cannot estimate; dropped, the estimate of the
    matched devices is the selector's alone.
    """

    compat: bool = True
    group: bool = True
    rollback: bool = True


# Every form; the statements below are built once per form.
FORMS = tuple(
    PlanningForm(*flags) for flags in itertools.product((False, True), repeat=3)
)
# Every condition: right for any rollout.
FULL_FORM = PlanningForm()


def by_form(build: Callable[[PlanningForm], str]) -> dict[PlanningForm, str]:
    """A statement in each form."""
    return {form: build(form) for form in FORMS}


# Whether rollout $1's artifact declares a compatibility, whether it names a
# group and whether it is a rollback (no row: no such rollout), and custom
# plans for the rest of the transaction (``planning_form``).
_PLANNING_FORM = """
SELECT set_config('plan_cache_mode', 'force_custom_plan', true) AS custom, f.*
FROM (SELECT) AS one LEFT JOIN LATERAL (
    SELECT a.compatible <> '{}'::jsonb AS compat, o.group_id IS NOT NULL AS grp,
           o.rollback_of IS NOT NULL AS rollback
    FROM rollouts AS o JOIN artifacts AS a ON a.id = o.artifact_id
    WHERE o.id = $1
) AS f ON true
"""


async def planning_form(conn: Connection, rollout_id: UUID) -> PlanningForm:
    """Ready the transaction for the planning statements and say their form.

    Returns which conditions the rollout's statements need (``PlanningForm``):
    whether its artifact declares a compatibility (artifacts are immutable, so
    that holds for the rollout's life), whether it names a group and whether it
    is a rollback, as of this transaction; every condition for an unknown
    rollout, whose statements find nothing anyway. Sets
    ``plan_cache_mode = force_custom_plan`` until the transaction ends: from
    its sixth run on a connection PostgreSQL may keep a
    generic plan of a prepared statement, which cannot see the selector (its
    form, its containment's estimate, the GIN index) and evaluates the
    selector's CASE per device; that made a 25 % plan 1.6x as costly. Planning
    once per run is nothing next to a statement over every device.
    """
    row = await conn.fetchrow(_PLANNING_FORM, rollout_id)
    if row is None or row["compat"] is None:
        return FULL_FORM
    return PlanningForm(row["compat"], row["grp"], row["rollback"])
