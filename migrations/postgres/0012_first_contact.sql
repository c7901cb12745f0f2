-- A DM3 user may write first to a Matrix user who never used the bridge (docs/engine.md,
-- "First contact"): the ghost opens a DM and invites them, and until they accept the portal
-- awaits their consent: at most `[engine] max_held_until_consent` messages from the DM3 user
-- wait in the room. NULL: consent given (the user joined, or opened the conversation).
ALTER TABLE portals ADD COLUMN awaiting_consent_since BIGINT;

-- The held messages of a portal are counted by its conversation (and a re-bound portal moves
-- its message map by it).
CREATE INDEX message_map_by_conversation ON message_map (network, conversation);
