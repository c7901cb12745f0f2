-- Outbound Megolm sessions of ghost devices (issue 17; docs/engine.md, "Encrypted rooms: plan"):
-- the session a ghost encrypts its events in a room with, one per (ghost, room). `sealed` is the
-- vodozemac group-session pickle sealed under the master key (label
-- `megolm-outbound:<user_id>:<room_id>:<session_id>`); it is written, with the message count
-- that decides rotation, before any event encrypted with it is sent, and under the ghost's
-- account version (matrix_olm_accounts), so two node processes never fork it.
CREATE TABLE matrix_megolm_outbound (
    user_id     TEXT    NOT NULL,
    room_id     TEXT    NOT NULL,
    session_id  TEXT    NOT NULL,
    sealed      BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    messages    INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id)
) STRICT;

-- The devices a ghost's outbound session was shared with (its room key sent over Olm), so a
-- restart neither shares it again nor forgets a device. `target_key` is the device's
-- Curve25519 key: a device that comes back with other keys is a device gone, and rotates.
CREATE TABLE matrix_megolm_shared (
    user_id       TEXT NOT NULL,
    room_id       TEXT NOT NULL,
    session_id    TEXT NOT NULL,
    target_user   TEXT NOT NULL,
    target_device TEXT NOT NULL,
    target_key    TEXT NOT NULL,
    PRIMARY KEY (user_id, room_id, session_id, target_user, target_device)
) STRICT;

-- Room keys encrypted and saved but not yet acknowledged by the homeserver (`/sendToDevice`):
-- `body` is the request's `messages` (Olm ciphertext only), sent again with the same `txn_id`
-- before the ghost's next event in the room, so a crash between the save and the send loses
-- no key.
CREATE TABLE matrix_megolm_pending (
    user_id     TEXT    NOT NULL,
    room_id     TEXT    NOT NULL,
    txn_id      TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, txn_id)
) STRICT;
