-- Bounds (docs/engine.md, "Bounds"; docs/telegram.md §5).
--
-- A failed job keeps its key, conversation and `last_error` (what an operator needs to see why
-- it failed), but not its payload: the failure report is queued before the job is marked
-- failed, so nothing reads the payload again, and a large event would otherwise stay as a large
-- row for as long as the job is kept. The rows that failed before this version drop theirs here.
-- Failed jobs are pruned by age like done ones, through this index.
UPDATE bridge_jobs SET payload = '' WHERE state = 'failed';

CREATE INDEX bridge_jobs_failed_by_finish ON bridge_jobs (finished_at) WHERE state = 'failed';

-- The newest Telegram update of each chat whose state changes (current contact, routes,
-- reactions) were made, and when. An update of the chat older than it is served again (a
-- webhook retried after its answer was lost, a server that re-serves what was confirmed), and its
-- state changes are skipped, even after a restart: they would undo the later update's. Kept a
-- week at most, like the batch keys (Telegram restarts its numbering only after a week without
-- updates).
CREATE TABLE telegram_applied_updates (
    network     TEXT    NOT NULL,
    chat_id     INTEGER NOT NULL,
    update_id   INTEGER NOT NULL,
    applied_at  INTEGER NOT NULL,
    PRIMARY KEY (network, chat_id)
) STRICT;

CREATE INDEX telegram_applied_updates_by_age ON telegram_applied_updates (applied_at);
