-- Targeting: set-based selectors in SQL, device groups, artifact compatibility.

-- A selector (xdp47_common.selectors, either JSON form: the object of
-- equalities, or the list of {key, operator, values}) compiled to a jsonpath
-- predicate over a label object: `k in (a,b)` is `($."k" == "a" || $."k" ==
-- "b")`, notin/!= its negation (true when the label is absent, as the pure
-- evaluator says), exists/! are exists()/!exists(). Planning evaluates
-- `d.labels @@ (SELECT xdp47_selector_path($sel)::jsonpath)`: the path is
-- compiled once per statement and jsonpath runs natively per row (a SQL
-- function with a subquery per row is not inlined and costs several times
-- more at a million devices). tests/integration/scheduler/test_selector_sql.py
-- holds it to the pure evaluator.
CREATE FUNCTION xdp47_jsonpath_string(s text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '"' || replace(replace(s, '\', '\\'), '"', '\"') || '"'
$$;

CREATE FUNCTION xdp47_selector_path(sel jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(string_agg(p, ' && '), 'exists($)') FROM (
        SELECT '$.' || xdp47_jsonpath_string(e.key) || ' == '
               || xdp47_jsonpath_string(e.value) AS p
        FROM jsonb_each_text(
            CASE WHEN jsonb_typeof(sel) = 'object' THEN sel END) AS e
        UNION ALL
        SELECT CASE r.q->>'operator'
            WHEN 'exists' THEN 'exists($.' || xdp47_jsonpath_string(r.q->>'key') || ')'
            WHEN '!' THEN '!exists($.' || xdp47_jsonpath_string(r.q->>'key') || ')'
            ELSE CASE WHEN r.q->>'operator' IN ('!=', 'notin') THEN '!' ELSE '' END
                 || '(' || (
                     SELECT string_agg('$.' || xdp47_jsonpath_string(r.q->>'key')
                                       || ' == ' || xdp47_jsonpath_string(v), ' || ')
                     FROM jsonb_array_elements_text(r.q->'values') AS v) || ')'
            END
        FROM jsonb_array_elements(
            CASE WHEN jsonb_typeof(sel) = 'array' THEN sel END) AS r(q)
    ) AS parts
$$;

-- An artifact's compatibility {key: [values]} as a selector: every key must be
-- among the device's properties with one of the values (`key in (values)`).
CREATE FUNCTION xdp47_compatible_path(compat jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT xdp47_selector_path(coalesce(
        (SELECT jsonb_agg(jsonb_build_object(
             'key', c.key, 'operator', 'in', 'values', c.value))
         FROM jsonb_each(compat) AS c), '[]'::jsonb))
$$;

-- What an artifact runs on ({} = anything), and what a device is: the
-- properties its agent reports (XDP47_DEVICE_PROPERTIES), separate from the
-- labels operators select by, so a label typo cannot make hardware compatible.
ALTER TABLE artifacts ADD COLUMN compatible jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE devices ADD COLUMN properties jsonb NOT NULL DEFAULT '{}'::jsonb;

-- Named device groups per tenant: static (a list of devices) or dynamic (a
-- saved selector, evaluated whenever a rollout that targets it is planned).
CREATE TABLE device_groups (
    id          uuid PRIMARY KEY,
    tenant      text NOT NULL REFERENCES tenants (id),
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('static', 'dynamic')),
    selector    jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, name),
    UNIQUE (tenant, id),
    CHECK ((kind = 'dynamic') = (selector IS NOT NULL))
);

CREATE TABLE device_group_members (
    tenant     text NOT NULL,
    group_id   uuid NOT NULL,
    device_id  text NOT NULL,
    PRIMARY KEY (group_id, device_id),
    FOREIGN KEY (tenant, group_id) REFERENCES device_groups (tenant, id)
        ON DELETE CASCADE,
    FOREIGN KEY (tenant, device_id) REFERENCES devices (tenant, id)
        ON DELETE CASCADE
);

-- A rollout targets its selector and, when set, a group as well (both must
-- hold). A group named by a rollout cannot be deleted.
ALTER TABLE rollouts ADD COLUMN group_id uuid;
ALTER TABLE rollouts ADD FOREIGN KEY (tenant, group_id)
    REFERENCES device_groups (tenant, id);
CREATE INDEX rollouts_group ON rollouts (group_id) WHERE group_id IS NOT NULL;
