-- The relay's tables (issue 3). Timestamps are milliseconds since the Unix epoch, the unit
-- of the postmark's incommingTimestamp. STRICT makes SQLite enforce the declared types, so
-- both backends reject the same wrong values.

-- Accounts registered with this node (POST /profile/:name). The signed profile is kept as
-- the JSON text received: it is signed, so it is never re-serialized.
CREATE TABLE accounts (
    name        TEXT    NOT NULL PRIMARY KEY,
    address     TEXT    NOT NULL,
    profile     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

-- Envelopes stored for retrieval (GET /delivery/messages/incoming/:name) until acknowledged
-- or expired. `envelope` is the stored JSON text as clients get it back (postmark included).
-- Dedup is per receiver and message hash: the same message arriving twice is stored once.
CREATE TABLE envelopes (
    id            INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    receiver      TEXT    NOT NULL,
    sender        TEXT    NOT NULL,
    message_hash  TEXT    NOT NULL,
    envelope      TEXT    NOT NULL,
    received_at   INTEGER NOT NULL,
    expires_at    INTEGER,
    UNIQUE (receiver, message_hash)
) STRICT;

CREATE INDEX envelopes_by_conversation ON envelopes (receiver, sender, received_at);
CREATE INDEX envelopes_by_expiry ON envelopes (expires_at) WHERE expires_at IS NOT NULL;

-- Login challenges (GET/POST /auth/:name): each one can be used once, before it expires.
CREATE TABLE challenges (
    id          TEXT    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
) STRICT;

CREATE INDEX challenges_by_expiry ON challenges (expires_at);
