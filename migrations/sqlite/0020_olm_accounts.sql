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
