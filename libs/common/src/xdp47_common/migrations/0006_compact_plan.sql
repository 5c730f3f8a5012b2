-- The plan of a started rollout as a compact description instead of one target row
-- per device (writing a million rows with their indexes costs far more than the
-- 3 s planning budget). A device's wave is width_bucket(rank key, firsts): the rank
-- key is md5(rollout || ':' || device) || device (planner's ordering, COLLATE "C"),
-- firsts[k] the rank key of wave k's first device when the rollout started ('' for
-- wave 1, '~' for an empty trailing wave: greater than every key). Wave k's target
-- rows are written when wave k starts; ``materialised`` is the last wave written.
CREATE TABLE rollout_plans (
    rollout_id    uuid PRIMARY KEY REFERENCES rollouts (id),
    total         integer NOT NULL CHECK (total >= 0),
    bounds        integer[] NOT NULL,
    firsts        text[] NOT NULL,
    materialised  integer NOT NULL DEFAULT 0 CHECK (materialised >= 0),
    planned_at    timestamptz NOT NULL DEFAULT now()
);
