-- Steering a running rollout: pause/resume, approval gates, promote.
--
-- A hold is a sub-status of `running` (the status stays `running`, so the
-- desired state of devices already told is unchanged and ingest keeps serving
-- it): `paused` by an operator, or `awaiting_approval` of wave current_wave + 1
-- (the current wave's run is closed). While held the scheduler judges no gate
-- and starts no wave. `held_since` is when the hold began: resume shifts
-- `current_wave_started_at` by the time spent paused, so the wave's grace and
-- deadline do not run while paused. `grace_skipped`: the current wave was
-- promoted (judged without the rest of its grace); a wave start clears it.
-- `started_by`: who started the current attempt (the start or retry command's
-- requested_by, `token:<id>`), the token a four-eyes approval may not come from.
ALTER TABLE rollouts
    ADD COLUMN hold text CHECK (hold IN ('paused', 'awaiting_approval')),
    ADD COLUMN held_since timestamptz,
    ADD COLUMN grace_skipped boolean NOT NULL DEFAULT false,
    ADD COLUMN started_by text,
    ADD CONSTRAINT rollouts_hold_running CHECK (hold IS NULL OR status = 'running');

-- The waves (2 and up) that start only on an approve; NULL or empty: none.
ALTER TABLE policies
    ADD COLUMN approval_before_waves integer[]
        CHECK (2 <= ALL (approval_before_waves) AND 100 >= ALL (approval_before_waves));

-- Four-eyes: an approve must come from another token than the one that started
-- the rollout. Off by default; set by a platform operator (PATCH /api/tenants/{id}).
ALTER TABLE tenants
    ADD COLUMN four_eyes_approval boolean NOT NULL DEFAULT false;
