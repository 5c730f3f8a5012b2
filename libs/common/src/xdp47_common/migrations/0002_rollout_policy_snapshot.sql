-- The policy a rollout runs under is resolved (policy fields over scheduler
-- defaults) and frozen when it starts, so SQL that updates targets and the gate
-- judge the same numbers, and operators can see exactly which gate governed it.
ALTER TABLE rollouts ADD COLUMN effective_policy jsonb;

-- The wave whose gate is being judged started at this time (grace, deadline).
ALTER TABLE rollouts ADD COLUMN current_wave_started_at timestamptz;
