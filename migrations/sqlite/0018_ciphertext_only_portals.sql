-- A portal whose conversation became end-to-end encrypted while the bridge cannot encrypt
-- (docs/engine.md, "Portal lifecycle"; issue 17) is suspended for everything in the clear, but
-- still carries what a DM3 client encrypted for the room itself (docs/bridge-payload.md §6): its
-- state stays `suspended`, with the reason, and this flag says that ciphertext still crosses.
ALTER TABLE portals ADD COLUMN ciphertext_only INTEGER NOT NULL DEFAULT 0 CHECK (ciphertext_only IN (0, 1));
