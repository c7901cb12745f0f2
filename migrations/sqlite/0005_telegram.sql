-- The Telegram connector's per-chat state (docs/telegram.md): the bot chat multiplexes DM3
-- contacts, so the bridge remembers whom each chat writes to, whom it wrote to lately, and which
-- conversation each relayed message belongs to. Every table is keyed by `network` too (the
-- connector's id, `telegram` unless several bots run), because a Telegram user's private chat
-- has the same id with every bot. Timestamps are milliseconds since the Unix epoch, as in 0001.

-- Whom a chat writes to now: set by `/to`, a deep link, or choosing a contact.
CREATE TABLE telegram_chats (
    network          TEXT    NOT NULL,
    chat_id          INTEGER NOT NULL,
    current_contact  TEXT    NOT NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (network, chat_id)
) STRICT;

-- The contacts of a chat, one row each, for `/contacts` (most recent first). `last_used_at`
-- orders them and is strictly increasing within a chat (the store bumps it past the newest row
-- when the clock has not moved on), so two choices within the same millisecond keep their order.
-- The store keeps only the most recent few per chat.
CREATE TABLE telegram_contacts (
    network       TEXT    NOT NULL,
    chat_id       INTEGER NOT NULL,
    contact       TEXT    NOT NULL,
    last_used_at  INTEGER NOT NULL,
    PRIMARY KEY (network, chat_id, contact)
) STRICT;

CREATE INDEX telegram_contacts_by_use ON telegram_contacts (network, chat_id, last_used_at);

-- The conversation (`<chat id>/<DM3 name>`) of every relayed message, in either direction, so
-- that a Telegram reply goes back to the DM3 user whose message it answers. The first record of
-- a message stays: recording it again (a handler run twice after a crash) changes nothing.
CREATE TABLE telegram_routes (
    network             TEXT    NOT NULL,
    network_message_id  TEXT    NOT NULL,
    conversation        TEXT    NOT NULL,
    created_at          INTEGER NOT NULL,
    PRIMARY KEY (network, network_message_id)
) STRICT;

CREATE INDEX telegram_routes_by_age ON telegram_routes (created_at);
