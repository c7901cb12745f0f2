-- Which event stands for each reaction a Telegram user has on a message; the same shape as
-- migrations/sqlite/0006_telegram_reactions.sql, where the columns are explained.

CREATE TABLE telegram_reactions (
    network     TEXT   NOT NULL,
    slot        TEXT   NOT NULL,
    reaction    TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (network, slot)
);

CREATE INDEX telegram_reactions_by_age ON telegram_reactions (created_at);
