-- Blocks (docs/relay.md, "Block and rate limits"): the DM3 senders a bridged user refused.
--
-- A row says that `identity` (a virtual identity of this node, the blocking network user's
-- DM3 name) takes nothing from `sender` (a DM3 name): the relay's submit refuses the sender's
-- envelopes for it, and the inbox drops the ones queued before the block. Kept until the user
-- unblocks, or until the identity is deleted. Keyed by the identity first: the submit's check
-- and the per-identity count (a bounded list) read by it.
CREATE TABLE blocked_senders (
    identity    TEXT    NOT NULL,
    sender      TEXT    NOT NULL,
    blocked_at  INTEGER NOT NULL,
    PRIMARY KEY (identity, sender)
) STRICT;
