-- Virtual identities (issue 4): the custodial DM3 identities the bridge holds for people on
-- other networks. Timestamps are milliseconds since the Unix epoch, as in 0001.

-- One row per identity. `name` is the full ENS name (label.sub-label.parent), normalized.
-- (network, network_user_id) is unique: one person on a network has one identity, and the
-- UNIQUE constraints are the last guard of the name scheme's promise of no collisions.
-- `address`, `key_version` and `profile` describe the current key version; `profile` is the
-- signed user profile as canonical JSON text (it is signed, so it is never re-serialized).
-- `disabled_at` is set while the identity is disabled (the gateway then answers "not found").
CREATE TABLE identities (
    name             TEXT    NOT NULL PRIMARY KEY,
    label            TEXT    NOT NULL,
    network          TEXT    NOT NULL,
    network_user_id  TEXT    NOT NULL,
    address          TEXT    NOT NULL,
    key_version      INTEGER NOT NULL,
    profile          TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    disabled_at      INTEGER,
    UNIQUE (network, network_user_id)
) STRICT;

-- Every key version of every identity: the wallet secret sealed under the master key
-- (ChaCha20-Poly1305, label `identity:<name>:v<version>`). The current version signs; retired
-- ones (retired_at set by a rotation) are kept only to open envelopes already in flight.
CREATE TABLE identity_keys (
    name        TEXT    NOT NULL REFERENCES identities (name) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    address     TEXT    NOT NULL,
    sealed      BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER,
    PRIMARY KEY (name, version)
) STRICT;
