-- Artifacts whose bytes were uploaded to the control plane (POST
-- /api/artifacts/upload) and are served by it from the blob store, keyed by
-- sha256. Only these are served: knowing another tenant's digest must not let a
-- tenant read that content through an artifact of its own.
ALTER TABLE artifacts
    ADD COLUMN content_stored boolean NOT NULL DEFAULT false;
