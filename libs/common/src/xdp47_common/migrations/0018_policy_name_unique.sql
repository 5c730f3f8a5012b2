-- A policy's name is unique in its tenant: people pick policies by name (the
-- UI's dropdown, `xdp47 rollouts create --policy NAME`), so two of one name
-- could not be told apart. The API answers 409 to a second one.
--
-- Names repeated before this migration: the oldest policy of each name keeps
-- it; every later one is renamed `<name> (<its id>)`, which no other policy can
-- hold. Rollouts point at policies by id and keep their snapshot, so nothing
-- else changes.
UPDATE policies AS p
SET name = p.name || ' (' || p.id::text || ')'
FROM (
    SELECT id,
           row_number() OVER (PARTITION BY tenant, name ORDER BY created_at, id) AS n
    FROM policies
) AS ranked
WHERE ranked.id = p.id AND ranked.n > 1;

CREATE UNIQUE INDEX policies_tenant_name ON policies (tenant, name);
