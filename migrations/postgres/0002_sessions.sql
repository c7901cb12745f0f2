-- Session tokens (issue 3); the same shape as migrations/sqlite/0002_sessions.sql. Only the
-- SHA-256 (hex) of each token is stored.
CREATE TABLE sessions (
    token_hash  TEXT   NOT NULL PRIMARY KEY,
    name        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE INDEX sessions_by_expiry ON sessions (expires_at);
