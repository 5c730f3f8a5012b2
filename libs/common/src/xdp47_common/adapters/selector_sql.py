"""Selectors, device groups and compatibility as SQL fragments over ``devices AS d``.

The rules are the pure ones of ``xdp47_common.selectors`` (and of
``xdp47_common.compat``); migration 0016 compiles a stored selector to a jsonpath
predicate (``xdp47_selector_path``), and every fragment here compiles it once
per statement (a scalar subquery is an InitPlan) and evaluates it natively per
row with ``@@``. An equality selector (the object form) is a containment
instead (``@>``, what equality selectors always used; see ``_split_match``).
Parameters are given as SQL text (``"$4"``) so the fragments fit the numbered
statements of ``adapters.planning`` and the API's queries.

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
    sel = f"({selector})::text::jsonb"
    return _split_match(
        labels,
        sel,
        f"CASE {_EQUALITY_FORM.format(sel=sel)} "
        f"THEN NULL ELSE xdp47_selector_path({sel}) END",
    )


# The object form holds equalities only (``Selector.to_json`` gives it for every
# equality selector): containment says all of it.
_EQUALITY_FORM = "WHEN jsonb_typeof({sel}) = 'object'"


def _split_match(labels: str, sel: str, rest_path: str) -> str:
    """``labels`` match selector ``sel`` and the path ``rest_path`` (NULL: none).

    An equality selector (the object form) is a containment, as cheap per row
    as it ever was and, with the value known when the statement is planned,
    estimated from the column's statistics and served by the GIN index on
    labels when it is selective. Any other form, and a dynamic group, run as
    one jsonpath compiled once per statement (an InitPlan) and only then.
    """
    contains = f"CASE {_EQUALITY_FORM.format(sel=sel)} THEN {sel} ELSE '{{}}' END"
    return f"""({labels} @> ({contains})::jsonb
        AND ((SELECT {rest_path}) IS NULL
             OR {labels} @@ (SELECT ({rest_path})::jsonpath)))"""


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
    return f"(SELECT o.rollback_of FROM rollouts AS o WHERE o.id = ({rid})::uuid)"  # nosec B608


def rollback_target_artifact(rid: str, d: str = "d") -> str:
    """What rollout ``rid`` sends device ``d`` to when it is a rollback: the
    artifact the device ran before the undone rollout (NULL for a rollout,
    whose targets take its own artifact). The rollout's kind is an InitPlan, so
    a plain rollout pays no probe per device."""
    return f"""CASE WHEN {_rollback_of(rid)} IS NULL THEN NULL ELSE (
        SELECT s.from_artifact_id FROM rollout_targets AS s
        WHERE s.rollout_id = {_rollback_of(rid)} AND s.tenant = {d}.tenant
          AND s.device_id = {d}.id) END"""  # nosec B608


def rollout_selects(
    rid: str, selector: str, d: str = "d", *, group: bool = True, rollback: bool = True
) -> str:
    """Rollout ``rid``'s selector (given as ``selector``) and group hold for ``d``
    (and, for a rollback, ``rollback_member``).

    The selector as in ``matches``; a dynamic group's saved selector joins the
    path; a static group's members are looked up by primary key. ``group=False``
    leaves the group clauses out and ``rollback=False`` the rollback clause, for
    a rollout known to name no group or not to be a rollback
    (``planning.planning_form``): each is a predicate on InitPlan values
    PostgreSQL cannot estimate, and together they made it expect a handful of
    matched devices where the selector matches thousands.
    """
    sel = f"({selector})::text::jsonb"
    dynamic = (
        f""",
            (SELECT xdp47_selector_path(g.selector) FROM rollouts AS o
             JOIN device_groups AS g ON g.id = o.group_id AND g.kind = 'dynamic'
             WHERE o.id = ({rid})::uuid)"""  # nosec B608
        if group
        else ""
    )
    rest = f"""nullif(concat_ws(' && ',
            CASE {_EQUALITY_FORM.format(sel=sel)} THEN NULL
                 ELSE xdp47_selector_path({sel}) END{dynamic}), '')"""
    clauses = [_split_match(f"{d}.labels", sel, rest)]
    if group:
        clauses.append(f"""(NOT EXISTS (
            SELECT 1 FROM rollouts AS o JOIN device_groups AS g ON g.id = o.group_id
            WHERE o.id = ({rid})::uuid AND g.kind = 'static')
         OR EXISTS (
            SELECT 1 FROM rollouts AS o JOIN device_group_members AS m
                ON m.group_id = o.group_id
            WHERE o.id = ({rid})::uuid AND m.device_id = {d}.id
              AND m.tenant = {d}.tenant))""")  # nosec B608
    if rollback:
        member = rollback_member(
            _rollback_of(rid),
            f"SELECT o.artifact_id FROM rollouts AS o WHERE o.id = ({rid})::uuid",  # nosec B608
            d,
        )
        clauses.append(f"({_rollback_of(rid)} IS NULL OR {member})")
    return "\n    AND ".join(clauses)


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
