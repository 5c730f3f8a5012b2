-- Deleting an artifact (DELETE /api/artifacts/{id}). A row no rollout names is
-- removed; one that a finished rollout still names (rollouts.artifact_id is a
-- NOT NULL foreign key, and a rollout's history keeps its release) gets
-- deleted_at instead and is hidden from every read of the catalogue. Whether
-- other rows still need the same bytes is asked by sha256 across tenants (the
-- blob store is content-addressed), hence the partial index.
ALTER TABLE artifacts
    ADD COLUMN deleted_at timestamptz;

CREATE INDEX artifacts_stored_sha256 ON artifacts (sha256)
    WHERE content_stored AND deleted_at IS NULL;
