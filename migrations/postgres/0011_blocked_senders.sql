-- Blocks; the same as migrations/sqlite/0011_blocked_senders.sql, where the table is explained.

CREATE TABLE blocked_senders (
    identity    TEXT   NOT NULL,
    sender      TEXT   NOT NULL,
    blocked_at  BIGINT NOT NULL,
    PRIMARY KEY (identity, sender)
);
