-- The relay's tables (issue 3); the same shape as migrations/sqlite/0001_relay.sql.
-- Timestamps are milliseconds since the Unix epoch (BIGINT), as on SQLite, so that the
-- repository code binds the same values on both backends.

CREATE TABLE accounts (
    name        TEXT   NOT NULL PRIMARY KEY,
    address     TEXT   NOT NULL,
    profile     TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE envelopes (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    receiver      TEXT   NOT NULL,
    sender        TEXT   NOT NULL,
    message_hash  TEXT   NOT NULL,
    envelope      TEXT   NOT NULL,
    received_at   BIGINT NOT NULL,
    expires_at    BIGINT,
    UNIQUE (receiver, message_hash)
);

CREATE INDEX envelopes_by_conversation ON envelopes (receiver, sender, received_at);
CREATE INDEX envelopes_by_expiry ON envelopes (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE challenges (
    id          TEXT   NOT NULL PRIMARY KEY,
    name        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);

CREATE INDEX challenges_by_expiry ON challenges (expires_at);
