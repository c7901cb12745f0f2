-- Which event stands for each reaction a Telegram user has on a message (docs/telegram.md,
-- "Reactions"). Telegram reports only the user's list of reactions before and after a change, so
-- when an emoji is taken back the bridge looks up here the reaction event that added it, and
-- sends a DM3 DELETE_REQUEST of that REACTION. `slot` is `<chat>:<message>:reacted-<user>-<emoji
-- as hex>`, `reaction` the id of the event that added it last (one per addition, so a reaction
-- added again after being taken back is a new DM3 REACTION). Pruned with the message routes.
CREATE TABLE telegram_reactions (
    network     TEXT    NOT NULL,
    slot        TEXT    NOT NULL,
    reaction    TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (network, slot)
) STRICT;

CREATE INDEX telegram_reactions_by_age ON telegram_reactions (created_at);
