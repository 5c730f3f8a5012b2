-- Sessions of the operator web UI (owner: api). The browser holds a random session
-- id in an HttpOnly cookie; only its SHA256 is stored here, together with the
-- SHA256 of the API token the operator signed in with (never the token itself), so
-- every page re-checks that token's revocation, expiry and scopes. csrf_token is
-- the synchronizer token every form and htmx request of the session must echo.
CREATE TABLE ui_sessions (
    id_hash      bytea PRIMARY KEY CHECK (length(id_hash) = 32),
    tenant       text NOT NULL REFERENCES tenants (id),
    token_hash   bytea NOT NULL CHECK (length(token_hash) = 32),
    csrf_token   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX ui_sessions_expires ON ui_sessions (expires_at);
