-- Telegram username aliases (docs/names.md section 8): which Telegram account an alias
-- `u-<username>.tg.<parent>` is bound to, and since when. A start by the username's holder binds
-- it; a start by another account that holds the username later moves it (`moved` = 1), and
-- nothing received before `bound_at` reaches the account it moved to.
CREATE TABLE telegram_alias_bindings (
    alias          TEXT    NOT NULL PRIMARY KEY,
    telegram_user  TEXT    NOT NULL,
    bound_at       BIGINT NOT NULL,
    moved          BIGINT NOT NULL
);

-- The start links the bridge gave the DM3 senders of an alias, one per (alias, sender): the
-- token is keyed by the master key, so only whom the sender forwarded the link to can start
-- with it. `released_to`: the account that started with it, to which the sender's held
-- messages may go.
CREATE TABLE telegram_alias_links (
    token        TEXT    NOT NULL PRIMARY KEY,
    alias        TEXT    NOT NULL,
    sender       TEXT    NOT NULL,
    created_at   BIGINT NOT NULL,
    released_to  TEXT,
    UNIQUE (alias, sender)
);
