-- The admin's view of a virtual identity's conversations (src/store/portals/activity.rs): its
-- portals on every network, by their local name, and when each last bridged a message, one seek
-- per portal instead of a scan of the whole message map. Portals are written rarely; the message
-- map once per bridged message, one more index entry each.
CREATE INDEX portals_by_local_name ON portals (local_name);
-- Migration 0012 indexed the message map by (network, conversation) under this name for the
-- first contact's count; this index also covers that prefix, so it replaces that one.
DROP INDEX message_map_by_conversation;
CREATE INDEX message_map_by_conversation ON message_map (network, conversation, created_at);
