-- To-device messages for ghost devices, kept before they are opened, and the since token of
-- each device's catch-up; the same as migrations/sqlite/0023_to_device_inbox.sql.
CREATE TABLE matrix_to_device_inbox (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     TEXT    NOT NULL,
    device_id   TEXT    NOT NULL,
    digest      TEXT    NOT NULL,
    sender      TEXT    NOT NULL,
    event_type  TEXT    NOT NULL,
    content     TEXT    NOT NULL,
    via         TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    attempts    BIGINT  NOT NULL,
    created_at  BIGINT  NOT NULL,
    UNIQUE (user_id, device_id, digest)
);

CREATE INDEX matrix_to_device_inbox_pending ON matrix_to_device_inbox (state, user_id, device_id, seq);
CREATE INDEX matrix_to_device_inbox_created ON matrix_to_device_inbox (created_at);

CREATE TABLE matrix_to_device_since (
    user_id     TEXT    NOT NULL,
    device_id   TEXT    NOT NULL,
    next_batch  TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (user_id, device_id)
);
