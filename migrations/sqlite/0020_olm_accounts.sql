-- Olm accounts of ghost devices (issue 17; docs/engine.md, "Encrypted rooms: plan"): one row per
-- ghost that takes part in an encrypted room. `sealed` is the vodozemac account pickle sealed
-- under the master key (label `olm-account:<user_id>:<device_id>`), so a copy of the database
-- holds no private key. `version` is bumped by every save and a save names the version it read,
-- so two node processes never fork an account (one of them finds its save refused and sends
-- nothing). `device_published` = 1 once the homeserver has the device and its device keys.
CREATE TABLE matrix_olm_accounts (
    user_id          TEXT    NOT NULL PRIMARY KEY,
    device_id        TEXT    NOT NULL,
    sealed           BLOB    NOT NULL,
    version          INTEGER NOT NULL,
    device_published INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT;

-- Olm sessions of ghost devices with other devices (keyed by the other device's Curve25519
-- key), each pickle sealed under the master key (label `olm-session:<user_id>:<session_id>`).
-- Written in the same transaction as the account they were made with.
CREATE TABLE matrix_olm_sessions (
    user_id     TEXT    NOT NULL,
    sender_key  TEXT    NOT NULL,
    session_id  TEXT    NOT NULL,
    sealed      BLOB    NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, sender_key, session_id)
) STRICT;

-- Inbound Megolm sessions (room keys) a ghost device received over Olm (`m.room_key`), sealed
-- (label `megolm-inbound:<user_id>:<room_id>:<session_id>`). `sender_key` is the Curve25519
-- key of the Olm session that brought it and `signing_key` the Ed25519 key its sender claimed:
-- an event decrypted with the session is from that device.
CREATE TABLE matrix_megolm_inbound (
    user_id      TEXT    NOT NULL,
    room_id      TEXT    NOT NULL,
    session_id   TEXT    NOT NULL,
    sender_key   TEXT    NOT NULL,
    signing_key  TEXT    NOT NULL,
    sealed       BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, session_id)
) STRICT;
