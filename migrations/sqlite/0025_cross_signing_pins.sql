-- Encrypted rooms (docs/engine.md, "Encrypted rooms: plan"): `[matrix] sender_trust =
-- "cross-signed"` believes a Matrix user's encrypted message only from a device they signed
-- with their cross-signing identity.
--
-- The user's master and self-signing key objects, as the `/keys/query` answer that gave their
-- device list relayed them, kept with the list under its generation: a device-list change
-- outdates both. NULL: the user published none (or the list was kept before this migration,
-- and is fetched again when it is next outdated or an hour old).
ALTER TABLE matrix_device_lists ADD COLUMN cross_signing_json TEXT;

-- Each user's master key (unpadded base64) as first seen vouching for a device: a later master
-- key is refused until an admin drops the pin (DELETE /admin/matrix/cross-signing/{userId}),
-- so a homeserver that publishes a new master key in a user's name cannot vouch for a device
-- of its own.
CREATE TABLE matrix_cross_signing_pins (
    user_id    TEXT    NOT NULL PRIMARY KEY,
    master_key TEXT    NOT NULL,
    pinned_at  INTEGER NOT NULL
) STRICT;
