-- Roll back: a rollout that sends each device that applied a release back to
-- the artifact it ran before.
--
-- rollout_targets.from_artifact_id is what the device ran when its target was
-- written (the wave written ahead) and, if it changed meanwhile, when the wave
-- started (the follow-up's move to assigned): what a rollback sends it back to.
-- rollout_targets.artifact_id is the artifact this target sends the device to
-- when it is not the rollout's own (NULL: rollouts.artifact_id): a rollback's
-- targets each carry their own previous artifact. The read-time desired state
-- (xdp47_common.adapters.desired) and target progress read
-- coalesce(t.artifact_id, r.artifact_id).
ALTER TABLE rollout_targets ADD COLUMN from_artifact_id uuid;
ALTER TABLE rollout_targets ADD COLUMN artifact_id uuid;

-- A rollback is a rollout of kind 'rollback' naming the rollout it undoes; its
-- artifact_id is the undone rollout's (the release being taken back), its
-- targets carry the artifact each device goes back to.
ALTER TABLE rollouts ADD COLUMN kind text NOT NULL DEFAULT 'rollout'
    CHECK (kind IN ('rollout', 'rollback'));
ALTER TABLE rollouts ADD COLUMN rollback_of uuid REFERENCES rollouts (id);
ALTER TABLE rollouts ADD CONSTRAINT rollouts_rollback_of_kind
    CHECK ((kind = 'rollback') = (rollback_of IS NOT NULL));
CREATE INDEX rollouts_rollback_of ON rollouts (rollback_of)
    WHERE rollback_of IS NOT NULL;

-- What the scheduler does when a rollout ends failed: 'stop' (NULL: the
-- default, nothing more) or 'rollback' (start a rollback of it by itself).
ALTER TABLE policies ADD COLUMN on_failure text
    CHECK (on_failure IN ('stop', 'rollback'));
