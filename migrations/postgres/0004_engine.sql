-- The bridge engine (docs/engine.md); the same shape as migrations/sqlite/0004_engine.sql,
-- where the columns are explained. Timestamps are milliseconds since the Unix epoch (BIGINT).
-- Replicas share these tables: the claim locks its rows with FOR UPDATE SKIP LOCKED, so two
-- replicas never take the same job.

CREATE TABLE bridge_jobs (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue            TEXT   NOT NULL CHECK (queue IN ('inbox', 'outbox')),
    idempotency_key  TEXT   NOT NULL,
    conversation     TEXT   NOT NULL,
    payload          TEXT   NOT NULL,
    state            TEXT   NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    attempts         BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    lease_until      BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    expires_at       BIGINT,
    finished_at      BIGINT,
    UNIQUE (queue, idempotency_key)
);

CREATE INDEX bridge_jobs_pending_by_id ON bridge_jobs (queue, id) WHERE state = 'pending';
CREATE INDEX bridge_jobs_pending_by_conversation
    ON bridge_jobs (queue, conversation, id) WHERE state = 'pending';
CREATE INDEX bridge_jobs_done_by_finish ON bridge_jobs (finished_at) WHERE state = 'done';

CREATE TABLE inbound_batches (
    network      TEXT   NOT NULL,
    batch_key    TEXT   NOT NULL,
    received_at  BIGINT NOT NULL,
    PRIMARY KEY (network, batch_key)
);

CREATE INDEX inbound_batches_by_age ON inbound_batches (received_at);

CREATE TABLE portals (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    network       TEXT   NOT NULL,
    conversation  TEXT   NOT NULL,
    local_name    TEXT   NOT NULL,
    remote_name   TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    UNIQUE (network, conversation),
    UNIQUE (network, local_name, remote_name)
);

CREATE TABLE message_map (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    network             TEXT   NOT NULL,
    dm3_hash            TEXT   NOT NULL,
    network_message_id  TEXT   NOT NULL,
    conversation        TEXT   NOT NULL,
    created_at          BIGINT NOT NULL,
    UNIQUE (network, dm3_hash),
    UNIQUE (network, network_message_id)
);
