-- The bridge engine (docs/engine.md): durable queues, remembered batch keys, portals and the
-- message map. Timestamps are milliseconds since the Unix epoch, as in 0001.

-- The inbox (DM3 → network) and the outbox (network → DM3) in one table: both are worked the
-- same way, and one table keeps the claim query and its indexes in one place.
-- - `id` ascending is the order of arrival; within a (queue, conversation) jobs run strictly in
--   that order, one at a time (a job runs only while no older job of its conversation is
--   pending).
-- - `idempotency_key` is unique per queue: a replayed submit or network event finds its key and
--   is not queued again. Done jobs are kept until pruned so that their keys still deduplicate.
-- - `state`: pending until done or failed. `attempts` counts claims (a crash counts too, so a
--   job that kills its worker cannot loop unnoticed); `next_attempt_at` is when it is due;
--   `lease_until` is set by a claim and cleared by the outcome: a worker that died leaves a
--   lease that simply runs out, and the job is claimed again.
-- - `expires_at`: the message's TTL; a job still pending then fails instead of retrying.
-- - `payload` is the JSON text the producer wrote; the queue never looks into it.
CREATE TABLE bridge_jobs (
    id               INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    queue            TEXT    NOT NULL CHECK (queue IN ('inbox', 'outbox')),
    idempotency_key  TEXT    NOT NULL,
    conversation     TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    attempts         INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    lease_until      INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    expires_at       INTEGER,
    finished_at      INTEGER,
    UNIQUE (queue, idempotency_key)
) STRICT;

-- The claim: pending jobs of a queue in id order (the candidates), and for each the probe
-- "is there an older pending job in its conversation?". Partial indexes keep both small: they
-- hold only pending jobs, however many done ones wait for pruning.
CREATE INDEX bridge_jobs_pending_by_id ON bridge_jobs (queue, id) WHERE state = 'pending';
CREATE INDEX bridge_jobs_pending_by_conversation
    ON bridge_jobs (queue, conversation, id) WHERE state = 'pending';
-- Pruning of done jobs by age.
CREATE INDEX bridge_jobs_done_by_finish ON bridge_jobs (finished_at) WHERE state = 'done';

-- Batch keys a connector handed in (a Matrix `<scope>.<txnId>`, a Telegram `update-<id>`),
-- stored in the same transaction as the batch's jobs: a redelivered batch finds its key and
-- queues nothing, even when it is empty.
CREATE TABLE inbound_batches (
    network      TEXT    NOT NULL,
    batch_key    TEXT    NOT NULL,
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (network, batch_key)
) STRICT;

CREATE INDEX inbound_batches_by_age ON inbound_batches (received_at);

-- A conversation on a network bridged to a DM3 conversation: `local_name` is the virtual
-- identity of the network user (the DM3 name that speaks for them), `remote_name` the DM3 user
-- they talk with. Both directions look a portal up: a network event by its conversation, a DM3
-- message by (receiver's identity, sender). Each pair has at most one portal per network.
CREATE TABLE portals (
    id            INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    network       TEXT    NOT NULL,
    conversation  TEXT    NOT NULL,
    local_name    TEXT    NOT NULL,
    remote_name   TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    UNIQUE (network, conversation),
    UNIQUE (network, local_name, remote_name)
) STRICT;

-- DM3 message hash ↔ network message id, per network: replies, edits, reactions and deletes
-- name their target by one and must be sent with the other. `conversation` is kept because some
-- networks need it to address a message (a Matrix redaction names the room).
CREATE TABLE message_map (
    id                  INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    network             TEXT    NOT NULL,
    dm3_hash            TEXT    NOT NULL,
    network_message_id  TEXT    NOT NULL,
    conversation        TEXT    NOT NULL,
    created_at          INTEGER NOT NULL,
    UNIQUE (network, dm3_hash),
    UNIQUE (network, network_message_id)
) STRICT;
