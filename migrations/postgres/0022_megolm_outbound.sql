-- Outbound Megolm sessions of ghost devices, the devices they were shared with, and room keys
-- not yet sent; the same as migrations/sqlite/0022_megolm_outbound.sql.
CREATE TABLE matrix_megolm_outbound (
    user_id     TEXT   NOT NULL,
    room_id     TEXT   NOT NULL,
    session_id  TEXT   NOT NULL,
    sealed      BYTEA  NOT NULL,
    created_at  BIGINT NOT NULL,
    messages    BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id)
);

CREATE TABLE matrix_megolm_shared (
    user_id       TEXT NOT NULL,
    room_id       TEXT NOT NULL,
    session_id    TEXT NOT NULL,
    target_user   TEXT NOT NULL,
    target_device TEXT NOT NULL,
    target_key    TEXT NOT NULL,
    PRIMARY KEY (user_id, room_id, session_id, target_user, target_device)
);

CREATE TABLE matrix_megolm_pending (
    user_id     TEXT   NOT NULL,
    room_id     TEXT   NOT NULL,
    txn_id      TEXT   NOT NULL,
    body        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, txn_id)
);
