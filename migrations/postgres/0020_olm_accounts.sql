-- Olm accounts, Olm sessions and inbound Megolm sessions of ghost devices; the same as
-- migrations/sqlite/0020_olm_accounts.sql.
CREATE TABLE matrix_olm_accounts (
    user_id          TEXT   NOT NULL PRIMARY KEY,
    device_id        TEXT   NOT NULL,
    sealed           BYTEA  NOT NULL,
    version          BIGINT NOT NULL,
    device_published BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE TABLE matrix_olm_sessions (
    user_id     TEXT   NOT NULL,
    sender_key  TEXT   NOT NULL,
    session_id  TEXT   NOT NULL,
    sealed      BYTEA  NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, sender_key, session_id)
);

CREATE TABLE matrix_megolm_inbound (
    user_id      TEXT   NOT NULL,
    room_id      TEXT   NOT NULL,
    session_id   TEXT   NOT NULL,
    sender_key   TEXT   NOT NULL,
    signing_key  TEXT   NOT NULL,
    sealed       BYTEA  NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, session_id)
);
