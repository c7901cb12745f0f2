-- A portal is live only while its conversation is a direct chat between its two people
-- (docs/engine.md, "Portal lifecycle"). A portal that stops being one is suspended, with the
-- reason both sides are told, and nothing crosses it until it is live again or re-bound to
-- another conversation (a new DM, an upgraded room), which changes `conversation` in place:
-- the portal keeps its id, its pair of names and its message map.
ALTER TABLE portals ADD COLUMN state TEXT NOT NULL DEFAULT 'live' CHECK (state IN ('live', 'suspended'));
ALTER TABLE portals ADD COLUMN state_reason TEXT;
ALTER TABLE portals ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
