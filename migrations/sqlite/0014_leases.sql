-- Leases (docs/scaling.md): work that exactly one of the node processes sharing a database may
-- do at a time (Telegram's long poll, the expiry pass) is done by whoever holds its row here.
-- `owner` names the holding process (a new id at every start); `lease_until` (ms since the epoch,
-- by the database's clock, so that a replica whose clock is off cannot steal or keep a lease) is
-- when the row may be taken over unless the owner renewed it. One row per kind of work; a clean
-- stop deletes its rows so that another process takes over at once.
CREATE TABLE node_leases (
    name        TEXT    PRIMARY KEY,
    owner       TEXT    NOT NULL,
    lease_until INTEGER NOT NULL
) STRICT;
