-- Encrypted rooms (issue 17; docs/engine.md, "Encrypted rooms: plan"): the device lists of the
-- Matrix users whose devices get ghosts' room keys, and the floor of each room key's replay
-- index.
--
-- A tracked user's list is current when `fetched_generation` is `generation`: a transaction's
-- MSC3202 `device_lists.changed` bumps `generation` (the list is outdated), and a `/keys/query`
-- answer is kept only under the generation read before the query was made, so a change marked
-- while the query ran is never overwritten by the older answer. `left` deletes the row.
CREATE TABLE matrix_device_lists (
    user_id            TEXT    NOT NULL PRIMARY KEY,
    generation         INTEGER NOT NULL,
    fetched_generation INTEGER,
    fetched_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
) STRICT;

-- The devices of a current list, each checked as `connectors/matrix/src/crypto/recipients.rs`
-- checks them (it names its user and device and is signed by its own Ed25519 key); `keys_json`
-- is the device's signed object as the homeserver relayed it.
CREATE TABLE matrix_devices (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    curve25519 TEXT NOT NULL,
    ed25519    TEXT NOT NULL,
    keys_json  TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id)
) STRICT;

-- Below `floor`, every message index of the room key counts as decrypted: the rows of
-- matrix_megolm_indices under it were pruned, and a ciphertext there is refused as a replay.
CREATE TABLE matrix_megolm_index_floors (
    user_id    TEXT    NOT NULL,
    room_id    TEXT    NOT NULL,
    session_id TEXT    NOT NULL,
    floor      INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, session_id)
) STRICT;
CREATE INDEX matrix_megolm_indices_created ON matrix_megolm_indices (created_at);
