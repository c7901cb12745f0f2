-- The Telegram connector's per-chat state; the same shape as migrations/sqlite/0005_telegram.sql,
-- where the columns are explained. Timestamps are milliseconds since the Unix epoch (BIGINT).

CREATE TABLE telegram_chats (
    network          TEXT   NOT NULL,
    chat_id          BIGINT NOT NULL,
    current_contact  TEXT   NOT NULL,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (network, chat_id)
);

CREATE TABLE telegram_contacts (
    network       TEXT   NOT NULL,
    chat_id       BIGINT NOT NULL,
    contact       TEXT   NOT NULL,
    last_used_at  BIGINT NOT NULL,
    PRIMARY KEY (network, chat_id, contact)
);

CREATE INDEX telegram_contacts_by_use ON telegram_contacts (network, chat_id, last_used_at);

CREATE TABLE telegram_routes (
    network             TEXT   NOT NULL,
    network_message_id  TEXT   NOT NULL,
    conversation        TEXT   NOT NULL,
    created_at          BIGINT NOT NULL,
    PRIMARY KEY (network, network_message_id)
);

CREATE INDEX telegram_routes_by_age ON telegram_routes (created_at);
