-- A selector's equality requirements (`k=v`, and `k in (v)` with one value) as
-- an object, and the jsonpath of the rest (NULL when every requirement is an
-- equality). Planning tests a device's labels with containment (`@>`, cheap per
-- row and served by the GIN index on labels) and runs the jsonpath only for
-- what containment cannot say, so an equality selector costs what it cost
-- before set-based selectors existed (bench B3). The split is exact: labels
-- match a selector iff they contain its equalities and match the rest's path
-- (tests/integration/scheduler/test_selector_sql.py holds it to the pure
-- evaluator). Two equalities on one key (`k=a,k=b`): the first is in the
-- object, the other stays in the rest, so the split still matches nothing.
CREATE FUNCTION xdp47_selector_is_equality(q jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT q->>'operator' = '='
        OR (q->>'operator' = 'in' AND jsonb_array_length(q->'values') = 1)
$$;

CREATE FUNCTION xdp47_selector_equalities(sel jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE jsonb_typeof(sel)
        WHEN 'object' THEN sel
        WHEN 'array' THEN coalesce(
            (SELECT jsonb_object_agg(e.k, e.v) FROM (
                 SELECT DISTINCT ON (r.q->>'key') r.q->>'key' AS k,
                        r.q->'values'->0 AS v
                 FROM jsonb_array_elements(sel) WITH ORDINALITY AS r(q, n)
                 WHERE xdp47_selector_is_equality(r.q)
                 ORDER BY r.q->>'key', r.n) AS e),
            '{}'::jsonb)
        ELSE '{}'::jsonb
    END
$$;

CREATE FUNCTION xdp47_selector_rest_path(sel jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT xdp47_selector_path(rest) FROM (
        SELECT jsonb_agg(r.q) AS rest
        FROM jsonb_array_elements(
            CASE WHEN jsonb_typeof(sel) = 'array' THEN sel ELSE '[]'::jsonb END
        ) AS r(q)
        WHERE NOT (xdp47_selector_is_equality(r.q)
                   AND xdp47_selector_equalities(sel)->(r.q->>'key') = r.q->'values'->0)
    ) AS parts
    WHERE rest IS NOT NULL
$$;
