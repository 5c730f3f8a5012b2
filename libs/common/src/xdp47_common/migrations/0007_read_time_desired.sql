-- Starting a wave is a pointer flip (rollouts.current_wave); what a device should
-- run is derived when it asks (xdp47_common.adapters.desired), from its active
-- target and that target's rollout. A wave's targets are written ahead, as
-- pending, when the wave before it starts; this table keeps how many each wave
-- holds, so the run's ``eligible`` is known at the flip without counting the wave.
-- No foreign key: only the scheduler writes it, for a rollout it holds, and the
-- key-share lock of a foreign-key check would queue behind the rollout's row lock.
CREATE TABLE rollout_waves (
    rollout_id  uuid NOT NULL,
    wave        integer NOT NULL CHECK (wave >= 1),
    -- Targets written pending for the next start of this wave (written ahead, or
    -- planned again by a retry).
    pending     integer NOT NULL DEFAULT 0 CHECK (pending >= 0),
    PRIMARY KEY (rollout_id, wave)
);

-- The per-row foreign-key triggers of rollout_targets cost more than the insert
-- itself at fleet scale (a FOR KEY SHARE lock on the device and the rollout for
-- each of 100k rows). Integrity is kept by construction instead: targets are only
-- written by the planner's statements, which select existing devices of the
-- rollout's tenant inside a transaction holding the rollout; rollouts and
-- devices are never deleted (no DELETE exists for either), so a target cannot be
-- orphaned. A future device deletion must delete or deactivate its targets first.
ALTER TABLE rollout_targets DROP CONSTRAINT IF EXISTS rollout_targets_rollout_id_fkey;
ALTER TABLE rollout_targets
    DROP CONSTRAINT IF EXISTS rollout_targets_tenant_device_id_fkey;
