-- To-device messages for ghost devices, kept before they are opened (issue 17; docs/engine.md,
-- "Encrypted rooms: plan", "room keys never lost on their way to the ghosts' devices").
--
-- Synapse keeps a transaction's to-device messages in memory only and sends a transaction
-- answered 500 again without them, so the route keeps them here (raw: the Olm ciphertext is
-- already encrypted) and answers 200; a worker opens them under the ghost's lease in arrival
-- order per device (`seq`). The same message fetched again by the catch-up (`/sync` as the
-- ghost's device) has the same `digest` and is not kept twice. `state`: 'pending' (not yet
-- opened, or waiting for an earlier message of its Olm session), 'opened' (its Olm step was
-- written in the transaction that set this), 'dropped' (it can never open). Settled rows are
-- pruned after a day.
CREATE TABLE matrix_to_device_inbox (
    seq         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    user_id     TEXT    NOT NULL,
    device_id   TEXT    NOT NULL,
    digest      TEXT    NOT NULL,
    sender      TEXT    NOT NULL,
    event_type  TEXT    NOT NULL,
    content     TEXT    NOT NULL,
    via         TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    attempts    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (user_id, device_id, digest)
) STRICT;

CREATE INDEX matrix_to_device_inbox_pending ON matrix_to_device_inbox (state, user_id, device_id, seq);
CREATE INDEX matrix_to_device_inbox_created ON matrix_to_device_inbox (created_at);

-- The `next_batch` of the last catch-up of each ghost device: the next one asks for what came
-- after it (and Synapse deletes what came before it from its device inbox).
CREATE TABLE matrix_to_device_since (
    user_id     TEXT    NOT NULL,
    device_id   TEXT    NOT NULL,
    next_batch  TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id)
) STRICT;
