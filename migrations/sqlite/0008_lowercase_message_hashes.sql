-- Envelopes are keyed by their message hash as the node writes it: `0x` and 64 lowercase hex
-- digits (the SDK's `MessageHash`, `src/store/ids.rs`). Before, the key was the text the sender
-- wrote, in whatever case; reference clients write lowercase (ethers' `hexlify`), but a row
-- written otherwise would no longer match its acknowledgement or a replay of its envelope.
-- Such rows are lowered here, unless the receiver also holds the lowercase twin (then the
-- envelope is stored already, and the other row simply expires).
UPDATE envelopes
SET message_hash = lower(message_hash)
WHERE message_hash <> lower(message_hash)
  AND NOT EXISTS (
      SELECT 1 FROM envelopes AS twin
      WHERE twin.receiver = envelopes.receiver AND twin.message_hash = lower(envelopes.message_hash)
  );
