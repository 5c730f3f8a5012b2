"""Selectors, device groups and compatibility as SQL fragments over ``devices AS d``.

The rules are the pure ones of ``xdp47_common.selectors`` (and of
``xdp47_common.compat``); migration 0016 compiles a stored selector to a jsonpath
predicate (``xdp47_selector_path``), and every fragment here compiles it once
per statement (a scalar subquery is an InitPlan) and evaluates it natively per
row with ``@@``. Parameters are given as SQL text (``"$4"``) so the fragments
fit the numbered statements of ``adapters.planning`` and the API's queries.

A rollout's devices are those its selector matches that are members of its group
(if it names one: a static group's list, or a dynamic group's saved selector,
evaluated whenever the rollout is planned) and that its artifact is compatible
with (``incompatible`` otherwise, whatever the selector says). A rollback
(``rollouts.rollback_of``) selects, besides, only the devices that applied the
undone rollout's artifact and still run it, with a previous artifact to go back
to (``rollback_member``).
"""

from __future__ import annotations

__all__ = [
    "compatible",
    "in_group",
    "matches",
    "reserving_columns",
    "reserving_match",
    "rollout_compatible",
    "rollout_selects",
]


def matches(selector: str, labels: str = "d.labels") -> str:
    """``labels`` match the selector (SQL text of a selector in a JSON form)."""
    return (
        f"{labels} @@ (SELECT xdp47_selector_path(({selector})::text::jsonb)::jsonpath)"
    )


def in_group(group_id: str, d: str = "d") -> str:
    """Device ``d`` is a member of the group (static or dynamic) with this id."""
    return f"""EXISTS (
        SELECT 1 FROM device_groups AS g
        WHERE g.id = ({group_id})::uuid AND CASE g.kind
            WHEN 'dynamic' THEN {d}.labels @@ xdp47_selector_path(g.selector)::jsonpath
            ELSE EXISTS (SELECT 1 FROM device_group_members AS m
                         WHERE m.group_id = g.id AND m.device_id = {d}.id
                           AND m.tenant = {d}.tenant)
        END)"""  # nosec B608


def compatible(compat: str, d: str = "d") -> str:
    """Device ``d``'s properties satisfy a compatibility object ``{key: [values]}``."""
    path = f"xdp47_compatible_path(({compat})::text::jsonb)::jsonpath"
    return f"{d}.properties @@ (SELECT {path})"


def rollback_member(source: str, artifact: str, d: str = "d") -> str:
    """Device ``d`` was a target of rollout ``source`` (which recorded what it ran
    before: another artifact) and runs ``artifact``, the undone release: a
    device a rollback sends back. Its target's state does not matter: a device
    judged unhealthy (``failed``) on the release runs it as much as one judged
    ``applied``; one that never applied it does not run it."""
    return f"""({d}.current_artifact_id = ({artifact}) AND EXISTS (
        SELECT 1 FROM rollout_targets AS s
        WHERE s.rollout_id = ({source}) AND s.tenant = {d}.tenant
          AND s.device_id = {d}.id
          AND s.from_artifact_id IS NOT NULL
          AND s.from_artifact_id <> {d}.current_artifact_id))"""  # nosec B608


def _rollback_of(rid: str) -> str:
    return f"(SELECT o.rollback_of FROM rollouts AS o WHERE o.id = ({rid})::uuid)"


def rollback_target_artifact(rid: str, d: str = "d") -> str:
    """What rollout ``rid`` sends device ``d`` to when it is a rollback: the
    artifact the device ran before the undone rollout (NULL for a rollout,
    whose targets take its own artifact). The rollout's kind is an InitPlan, so
    a plain rollout pays no probe per device."""
    return f"""CASE WHEN {_rollback_of(rid)} IS NULL THEN NULL ELSE (
        SELECT s.from_artifact_id FROM rollout_targets AS s
        WHERE s.rollout_id = {_rollback_of(rid)} AND s.tenant = {d}.tenant
          AND s.device_id = {d}.id) END"""  # nosec B608


def rollout_selects(rid: str, selector: str, d: str = "d") -> str:
    """Rollout ``rid``'s selector (given as ``selector``) and group hold for ``d``
    (and, for a rollback, ``rollback_member``).

    The group's path (dynamic) and id (static) are InitPlans, computed once; a
    rollout without a group pays one comparison per row; so does a rollout that
    is not a rollback (its ``rollback_of`` is an InitPlan too).
    """
    member = rollback_member(
        _rollback_of(rid),
        f"SELECT o.artifact_id FROM rollouts AS o WHERE o.id = ({rid})::uuid",
        d,
    )
    return f"""{d}.labels @@ (
        SELECT (xdp47_selector_path(({selector})::text::jsonb) || ' && '
                || xdp47_selector_path(coalesce(g.selector, '{{}}'::jsonb)))::jsonpath
        FROM (SELECT 1) AS one
        LEFT JOIN rollouts AS o ON o.id = ({rid})::uuid
        LEFT JOIN device_groups AS g ON g.id = o.group_id AND g.kind = 'dynamic')
    AND (NOT EXISTS (
            SELECT 1 FROM rollouts AS o JOIN device_groups AS g ON g.id = o.group_id
            WHERE o.id = ({rid})::uuid AND g.kind = 'static')
         OR EXISTS (
            SELECT 1 FROM rollouts AS o JOIN device_group_members AS m
                ON m.group_id = o.group_id
            WHERE o.id = ({rid})::uuid AND m.device_id = {d}.id
              AND m.tenant = {d}.tenant))
    AND ({_rollback_of(rid)} IS NULL OR {member})"""  # nosec B608


def rollout_compatible(rid: str, d: str = "d") -> str:
    """Rollout ``rid``'s artifact is compatible with device ``d``."""
    return f"""{d}.properties @@ (
        SELECT xdp47_compatible_path(a.compatible)::jsonpath
        FROM rollouts AS o JOIN artifacts AS a ON a.id = o.artifact_id
        WHERE o.id = ({rid})::uuid)"""  # nosec B608


def reserving_columns(o: str = "o") -> str:
    """Columns of the ``reserving`` CTE row of rollout ``o`` for ``reserving_match``:
    its whole target (selector and dynamic group) as one path, its static group
    and its artifact's compatibility."""
    return f"""{o}.channel, {o}.group_id, {o}.rollback_of,
        {o}.artifact_id AS rollback_artifact,
        (xdp47_selector_path({o}.selector) || ' && ' || xdp47_selector_path(
            coalesce((SELECT g.selector FROM device_groups AS g
                      WHERE g.id = {o}.group_id), '{{}}'::jsonb)))::jsonpath AS path,
        (SELECT xdp47_compatible_path(a.compatible) FROM artifacts AS a
         WHERE a.id = {o}.artifact_id)::jsonpath AS compat"""  # nosec B608


def reserving_match(v: str = "v", d: str = "d") -> str:
    """Device ``d`` is one the reserving rollout ``v`` would plan (channel aside)."""
    member = rollback_member(f"{v}.rollback_of", f"{v}.rollback_artifact", d)
    return f"""{d}.labels @@ {v}.path AND {d}.properties @@ {v}.compat
        AND ({v}.group_id IS NULL OR NOT EXISTS (
                 SELECT 1 FROM device_groups AS g
                 WHERE g.id = {v}.group_id AND g.kind = 'static')
             OR EXISTS (SELECT 1 FROM device_group_members AS m
                        WHERE m.group_id = {v}.group_id AND m.device_id = {d}.id
                          AND m.tenant = {d}.tenant))
        AND ({v}.rollback_of IS NULL OR {member})"""  # nosec B608
