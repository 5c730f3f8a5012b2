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
with (``incompatible`` otherwise, whatever the selector says).
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


def rollout_selects(rid: str, selector: str, d: str = "d") -> str:
    """Rollout ``rid``'s selector (given as ``selector``) and group hold for ``d``.

    The group's path (dynamic) and id (static) are InitPlans, computed once; a
    rollout without a group pays one comparison per row.
    """
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
              AND m.tenant = {d}.tenant))"""  # nosec B608


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
    return f"""{o}.channel, {o}.group_id,
        (xdp47_selector_path({o}.selector) || ' && ' || xdp47_selector_path(
            coalesce((SELECT g.selector FROM device_groups AS g
                      WHERE g.id = {o}.group_id), '{{}}'::jsonb)))::jsonpath AS path,
        (SELECT xdp47_compatible_path(a.compatible) FROM artifacts AS a
         WHERE a.id = {o}.artifact_id)::jsonpath AS compat"""  # nosec B608


def reserving_match(v: str = "v", d: str = "d") -> str:
    """Device ``d`` is one the reserving rollout ``v`` would plan (channel aside)."""
    return f"""{d}.labels @@ {v}.path AND {d}.properties @@ {v}.compat
        AND ({v}.group_id IS NULL OR NOT EXISTS (
                 SELECT 1 FROM device_groups AS g
                 WHERE g.id = {v}.group_id AND g.kind = 'static')
             OR EXISTS (SELECT 1 FROM device_group_members AS m
                        WHERE m.group_id = {v}.group_id AND m.device_id = {d}.id
                          AND m.tenant = {d}.tenant))"""  # nosec B608
