-- Encrypted rooms, Matrix → DM3 (issue 17; docs/engine.md, "Encrypted rooms: plan"): what a
-- room event decrypted with a kept room key must agree with.
--
-- `sender_user` is the Matrix user whose Olm-authenticated to-device message brought the room
-- key: an event is believed only if its `sender` is that user. Keys kept before this migration
-- have '' (unknown): they open nothing, and the same key received again replaces them.
ALTER TABLE matrix_megolm_inbound ADD COLUMN sender_user TEXT NOT NULL DEFAULT '';

-- Each message index of a room key is one event: the first event id decrypted at an index is
-- kept, and another event at the same index (a replay of the ciphertext) is refused.
CREATE TABLE matrix_megolm_indices (
    user_id        TEXT    NOT NULL,
    room_id        TEXT    NOT NULL,
    session_id     TEXT    NOT NULL,
    message_index  INTEGER NOT NULL,
    event_id       TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, session_id, message_index)
) STRICT;
