-- Bounds; the same as migrations/sqlite/0010_bounds.sql, where each change is explained.

UPDATE bridge_jobs SET payload = '' WHERE state = 'failed';

CREATE INDEX bridge_jobs_failed_by_finish ON bridge_jobs (finished_at) WHERE state = 'failed';

CREATE TABLE telegram_applied_updates (
    network     TEXT   NOT NULL,
    chat_id     BIGINT NOT NULL,
    update_id   BIGINT NOT NULL,
    applied_at  BIGINT NOT NULL,
    PRIMARY KEY (network, chat_id)
);

CREATE INDEX telegram_applied_updates_by_age ON telegram_applied_updates (applied_at);
