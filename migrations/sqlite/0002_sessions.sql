-- Session tokens (issue 3). POST /profile/:name and POST /auth/:name hand out an opaque random
-- token; only its SHA-256 (hex) is kept, so a copy of the database logs nobody in. A token is
-- valid for `name` until `expires_at` (milliseconds since the Unix epoch).
CREATE TABLE sessions (
    token_hash  TEXT    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX sessions_by_expiry ON sessions (expires_at);
